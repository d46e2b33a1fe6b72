"""Files of a checkpoint: names, atomic writes, fsync, sha256 seals and checks.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "note"
>>> write_text_atomic(path, "hello")
>>> seal(path)["sha256"][:12]
'2cf24dba5fb0'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

FORMAT = "recis.checkpoint"
VERSION = 1
INDEX = "index.json"
LIST_FILE = "checkpoint"
MAX_FILE_BYTES = 1 << 30
TEMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
CHECKPOINT_NAME = re.compile(r"ckpt_(\d+)")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or corrupt, or does not fit the tables given; the
    message names the file or table."""


def rank_name(name: str, rank: int) -> str:
    """The name of rank ``rank``'s own file or file prefix ``name`` in a sharded checkpoint.

    >>> rank_name("sparse", 1), rank_name("rank.pt", 12)
    ('sparse-r00001', 'rank-r00012.pt')
    """
    stem, dot, suffix = name.partition(".")
    return f"{stem}-r{rank:05d}{dot}{suffix}"


def check_plain_name(name: str, where) -> None:
    """Raise :class:`CheckpointError` unless ``name`` is a plain file name (no directory part,
    not ``.``/``..``), so that ``where / name`` stays inside ``where``.

    >>> check_plain_name("ckpt_3", "run")
    >>> try:
    ...     check_plain_name("../x", "run")
    ... except CheckpointError as error:
    ...     print(error)
    'run' names '../x', which is not a plain file name: it would lead outside 'run'
    """
    if not isinstance(name, str) or not name or name in (".", "..") or re.search(r"[/\\\0]", name):
        raise CheckpointError(
            f"{str(where)!r} names {name!r}, which is not a plain file name: it would lead "
            f"outside {str(where)!r}"
        )


def seal(path: Path) -> dict:
    """fsync ``path``; return its size and sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def fsync(path: Path) -> None:
    """Flush ``path`` (a file or a directory) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def index_digest(index: Mapping) -> str:
    """sha256 of the canonical JSON of ``index`` without its own ``sha256`` entry."""
    body = {k: v for k, v in index.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_text_atomic(path, text: str) -> None:
    """Replace the file ``path`` with ``text`` atomically (temporary file, fsync, rename).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "note"
    >>> write_text_atomic(path, "ckpt_1\\n"); path.read_text()
    'ckpt_1\\n'
    """
    path = Path(path)
    temp = path.parent / f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}"
    try:
        with open(temp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
    fsync(path.parent)


def check_file(path: Path, expected: Mapping) -> None:
    """Raise :class:`CheckpointError` naming ``path`` unless it exists with the ``bytes`` and
    ``sha256`` of ``expected`` (see :func:`seal`)."""
    if not path.exists():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} has {size} bytes, the index says "
            f"{expected['bytes']}: it is truncated or was overwritten"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != expected["sha256"]:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt: sha256 mismatch")


def read_checkpoint_list(root) -> list[str]:
    """Names listed in ``<root>/checkpoint``, oldest first (empty when there is none)."""
    path = Path(root) / LIST_FILE
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
