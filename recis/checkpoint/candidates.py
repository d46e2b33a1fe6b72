"""Which checkpoints of a run may be resumed from or deleted: paths never lead outside the run.

An entry of a run's ``checkpoint`` list is used only when it is a plain name (no ``/``, not
``..``, not absolute) of a real directory (not a link) inside the run; directories named
``ckpt_<step>`` that the list does not name are noticed, and used only when no listed one is.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "checkpoint").write_text("../elsewhere\\n")
>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     print(pick(root, lambda path: path))
None
>>> "outside" in str(caught[0].message)
True
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from recis.checkpoint.files import (
    CHECKPOINT_NAME,
    FORMAT,
    INDEX,
    CheckpointError,
    check_plain_name,
    read_checkpoint_list,
)

T = TypeVar("T")


def listed_problem(root: Path, name: str) -> str | None:
    """Why the list entry ``name`` of run ``root`` cannot be used, or None."""
    try:
        check_plain_name(name, root / "checkpoint")
    except CheckpointError as error:
        return str(error)
    path = root / name
    if path.is_symlink():
        return f"{str(path)!r} is a link, which is not followed (it may lead outside the run)"
    if not path.is_dir():
        return f"{str(path)!r} does not exist"
    if not (path / INDEX).exists():
        return f"{str(path / INDEX)!r} is missing: the checkpoint is incomplete or damaged"
    return None


def unlisted(root: Path, names: list[str]) -> list[Path]:
    """Checkpoint directories ``ckpt_<step>`` of ``root`` with an index that ``names`` does not
    list, newest (largest step) first."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if CHECKPOINT_NAME.fullmatch(p.name) and p.name not in names and is_own_checkpoint(p)
    ]
    return sorted(found, key=lambda p: int(p.name.removeprefix("ckpt_")), reverse=True)


def pick(root, open_checkpoint: Callable[[Path], T]) -> T | None:
    """``open_checkpoint(path)`` of the best checkpoint of run ``root`` that opens: the listed
    ones newest first, then those the list does not name, newest first. A checkpoint that
    cannot be used (a bad list entry, or ``open_checkpoint`` raising
    :class:`CheckpointError`) is passed over, and the fallback is warned about, naming both;
    so are checkpoints the list does not name. None when there is none."""
    root = Path(root)
    names = read_checkpoint_list(root)
    extra = unlisted(root, names)
    if extra:
        where = "names none" if not names else f"names {names}"
        warnings.warn(
            f"{str(root)!r} holds checkpoints its list does not name: "
            f"{[p.name for p in extra]} (the list {where}); they are used only when no listed "
            f"one is",
            stacklevel=2,
        )
    passed_over = []
    entries = [(name, listed_problem(root, name)) for name in reversed(names)]
    entries += [(path.name, None) for path in extra]
    for name, problem in entries:
        path = root / name
        if problem is None:
            try:
                opened = open_checkpoint(path)
            except CheckpointError as error:
                problem = str(error)
        if problem is None:
            if passed_over:
                warnings.warn(
                    f"falling back to checkpoint {path.name!r} of {str(root)!r}, passing over "
                    f"{'; '.join(passed_over)}",
                    stacklevel=2,
                )
            return opened
        passed_over.append(f"{name!r} ({problem})")
    if passed_over:
        warnings.warn(
            f"no usable checkpoint in {str(root)!r}: {'; '.join(passed_over)}", stacklevel=2
        )
    return None


def is_own_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a real directory (not a link) named ``ckpt_<step>`` holding a RecIS
    checkpoint index: the only kind of directory rotation deletes."""
    if path.is_symlink() or not path.is_dir() or not CHECKPOINT_NAME.fullmatch(path.name):
        return False
    try:
        return json.loads((path / INDEX).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
