"""One module object under two names: its home in the torch backend and RecIS's import path.

RecIS's hook and monitor modules are patched by name in RecIS's tests and scripts
(``patch("recis.hooks.profiler_hook.schedule")``). A re-export module would take the patch on
its own copy of the name, unseen by the code that runs; so the backend module is installed as
the RecIS path itself: ``sys.modules`` and the parent package both name it.

>>> import sys, types
>>> home = types.ModuleType("recis.backends.torch.example_home")
>>> sys.modules[home.__name__] = home
>>> serve_at_recis_path(home.__name__, "recis.example_path")
>>> sys.modules["recis.example_path"] is home
True
>>> del sys.modules[home.__name__], sys.modules["recis.example_path"]
>>> del sys.modules["recis"].example_path
"""

from __future__ import annotations

import sys


def serve_at_recis_path(module_name: str, recis_path: str) -> None:
    """Make ``recis_path`` import as the (already imported) module ``module_name``."""
    module = sys.modules[module_name]
    sys.modules[recis_path] = module
    parent_name, _, leaf = recis_path.rpartition(".")
    parent = sys.modules.get(parent_name)
    if parent is not None:
        setattr(parent, leaf, module)
