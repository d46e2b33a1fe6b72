"""``CheckpointDirectory``: a run's checkpoints, listed newest last and rotated."""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from recis.checkpoint.candidates import is_own_checkpoint, listed_problem, pick
from recis.checkpoint.files import (
    LIST_FILE,
    OLD_PREFIX,
    TEMP_PREFIX,
    check_plain_name,
    read_checkpoint_list,
    write_text_atomic,
)
from recis.checkpoint.reader import Checkpoint
from recis.checkpoint.sharded import agree, checkpoint_writer
from recis.checkpoint.writer import CheckpointWriter
from recis.distributed.communicator import Communicator


class CheckpointDirectory:
    """A run's checkpoints: ``<root>/ckpt_<step>/`` and the ``checkpoint`` file listing them.

    >>> import tempfile
    >>> from recis.core.table import EmbeddingTable
    >>> run = CheckpointDirectory(tempfile.mkdtemp(), max_to_keep=2)
    >>> for step in (1, 2, 3):
    ...     _ = run.save(step, lambda writer: writer.write_tables({"t": EmbeddingTable("t", 2)}))
    >>> run.names(), run.latest().name
    (['ckpt_2', 'ckpt_3'], 'ckpt_3')
    """

    def __init__(self, root, max_to_keep: int | None = 5) -> None:
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep}")
        self.root = Path(root)
        self.max_to_keep = max_to_keep

    def names(self) -> list[str]:
        """The listed checkpoints, oldest first."""
        return read_checkpoint_list(self.root)

    def latest(self) -> Path | None:
        """The newest usable checkpoint, or None: listed entries that lead outside the run, are
        links, or lack a valid index are passed over with a warning, falling back to the
        previous one; checkpoints the list does not name are used when no listed one is
        (:func:`~recis.checkpoint.candidates.pick`)."""
        return pick(self.root, lambda path: Checkpoint(path).path)

    def path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` lives."""
        return self.root / f"ckpt_{step}"

    def save(
        self,
        step: int,
        fill: Callable[[CheckpointWriter], None],
        metadata: Mapping | None = None,
        communicator: Communicator | None = None,
        name: str | None = None,
        **writer_options,
    ) -> Path:
        """Write ``ckpt_<step>`` (or ``name``; ``fill(writer)`` adds its content), list it, drop
        old ones (only ``ckpt_<step>`` ones are deleted; others are unlisted).

        A checkpoint of the same step is replaced; it is unlisted while that happens, so a
        crash at any point leaves the list naming only whole checkpoints. With a
        ``communicator`` of several ranks every rank calls this together, each writing its
        shard (:mod:`~recis.checkpoint.sharded`); rank 0 alone keeps the list and removes
        old checkpoints, and every rank returns once the checkpoint is listed.
        """
        path = self.path(step) if name is None else self.root / name
        if name is not None:
            check_plain_name(name, self.root / LIST_FILE)
        names = agree(
            communicator, partial(self._prepare, path.name), f"preparing to save {path.name!r}"
        )
        with checkpoint_writer(path, communicator, **writer_options) as writer:
            fill(writer)
            writer.commit({"step": step, **(metadata or {})}, then=partial(self._list, names))
        return path

    def _prepare(self, name: str) -> list[str]:
        """Clear what interrupted saves left, unlist ``name``; return the names still listed."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        names = self.names()
        if name in names:
            names.remove(name)
            self._write_list(names)
        return names

    def _list(self, names: list[str], path: Path) -> None:
        """List ``path`` after ``names``; delete the oldest beyond ``max_to_keep``.

        Only list entries that are checkpoints of this run's layout are deleted
        (:func:`~recis.checkpoint.candidates.is_own_checkpoint`); other entries are merely
        unlisted. A checkpoint is first renamed to a hidden ``.old-`` name, so a kill while it
        is deleted leaves nothing half-deleted under its name (the next save clears it).
        """
        names = [n for n in names if listed_problem(self.root, n) is None] + [path.name]
        keep = len(names) if self.max_to_keep is None else self.max_to_keep
        self._write_list(names[-keep:])
        for old in names[:-keep]:
            if is_own_checkpoint(self.root / old):
                doomed = self.root / f"{OLD_PREFIX}{old}-{secrets.token_hex(4)}"
                (self.root / old).rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)

    def _write_list(self, names: list[str]) -> None:
        write_text_atomic(self.root / LIST_FILE, "".join(f"{n}\n" for n in names))

    def _remove_leftovers(self) -> None:
        """Delete temporary directories and files of saves that were interrupted."""
        for path in self.root.iterdir():
            if path.name.startswith((TEMP_PREFIX, OLD_PREFIX)):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
