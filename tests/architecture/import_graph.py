"""The package's import graph, read from the source (nothing is imported).

A module's imports are every ``import``/``from … import`` statement in it, at any depth (lazy
imports inside functions count). Folders are the layers of ``docs/architecture.md``: a top-level
package of ``recis`` (``recis.core``, ``recis.io``, …), with ``recis.backends.torch`` and
``recis.backends.jax`` as folders of their own. RecIS's re-export modules (only imports from
``recis.backends`` and ``__all__``) sit above every layer and are left out of the folder graph.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "recis"
FRAMEWORKS = frozenset({"torch", "jax", "jaxlib", "flax", "optax", "orbax", "grain"})


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: frozenset[str]
    reexport: bool

    @property
    def folder(self) -> str:
        return folder_of(self.name)


def folder_of(name: str) -> str:
    """The folder of a module: ``recis.backends.torch.x`` → ``recis.backends.torch``,
    ``recis.core.y.z`` → ``recis.core``."""
    parts = name.split(".")
    depth = 3 if parts[:2] == ["recis", "backends"] and len(parts) > 2 else 2
    return ".".join(parts[:depth])


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        tree = ast.parse(path.read_text(encoding="utf-8"))
        name = ".".join(parts)
        found.append(Module(name, path, _imports(tree, name, path), _is_reexport(tree)))
    return tuple(found)


def _imports(tree: ast.AST, name: str, path: Path) -> frozenset[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


def _is_reexport(tree: ast.Module) -> bool:
    """Only a docstring, imports from ``recis.backends`` (and ``__future__`` or ``recis``), and
    ``__all__`` or alias assignments."""
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    imported = [n.module or "" for n in body if isinstance(n, ast.ImportFrom)]
    assigned = [n for n in body if isinstance(n, ast.Assign)]
    only_names = all(isinstance(n.value, ast.List | ast.Name) for n in assigned)
    plain = len(imported) + len(assigned) == len(body) and only_names
    from_recis = all(m == "__future__" or m.startswith("recis.") for m in imported)
    return plain and from_recis and any(m.startswith("recis.backends.") for m in imported)


def framework_imports(module: Module) -> set[str]:
    return {name for name in module.imports if name.split(".")[0] in FRAMEWORKS}


def folder_graph() -> dict[str, set[str]]:
    """Folder → the other folders its (non-re-export) modules import."""
    graph: dict[str, set[str]] = {}
    for module in modules():
        if module.reexport:
            continue
        targets = {folder_of(n) for n in module.imports if n.startswith("recis.")}
        graph.setdefault(module.folder, set()).update(targets - {module.folder, "recis"})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first = last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
