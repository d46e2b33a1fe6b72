"""RecIS's ``get_file_system(path)``: the file system a checkpoint path lives on.

RecIS's checkpoint code reaches files through an object with ``exists``, ``open``, ``rm``,
``makedirs``, ``ls``, ``isdir`` and ``mv``. Local paths (plain, or ``file://``) are served here;
other schemes (RecIS's internal stores) are refused by name.

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> fs = get_file_system(root)
>>> with fs.open(os.path.join(root, "checkpoint"), "w") as f:
...     _ = f.write("ckpt_1\\n")
>>> fs.exists(os.path.join(root, "checkpoint")), fs.ls(root)
(True, ['checkpoint'])
>>> fs.rm(root, recursive=True); fs.exists(root)
False
"""

from __future__ import annotations

import os
import shutil
from typing import IO

LOCAL_PREFIX = "file://"


class LocalFileSystem:
    """The local disk, with the file-system methods RecIS's checkpoint code calls."""

    def exists(self, path) -> bool:
        return os.path.exists(_local(path))

    def isdir(self, path) -> bool:
        return os.path.isdir(_local(path))

    def open(self, path, mode: str = "rb") -> IO:
        """Open ``path``; writing creates its directory first."""
        path = _local(path)
        if any(flag in mode for flag in "wax"):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, mode)

    def makedirs(self, path, exist_ok: bool = True) -> None:
        os.makedirs(_local(path), exist_ok=exist_ok)

    def ls(self, path) -> list[str]:
        """The names in directory ``path``, sorted."""
        return sorted(os.listdir(_local(path)))

    def rm(self, path, recursive: bool = False) -> None:
        """Remove a file, or a directory with everything in it when ``recursive``."""
        path = _local(path)
        if os.path.isdir(path):
            if not recursive:
                raise IsADirectoryError(f"{path!r} is a directory: pass recursive=True")
            shutil.rmtree(path)
        else:
            os.remove(path)

    def mv(self, source, target) -> None:
        os.replace(_local(source), _local(target))


def get_file_system(path) -> LocalFileSystem:
    """The file system of ``path`` (a local path or ``file://`` URL)."""
    _local(path)
    return LocalFileSystem()


def _local(path) -> str:
    path = os.fspath(path)
    if path.startswith(LOCAL_PREFIX):
        return path[len(LOCAL_PREFIX) :]
    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme:
        raise ValueError(
            f"file system of {path!r}: scheme {scheme!r} is not supported (local paths only)"
        )
    return path
