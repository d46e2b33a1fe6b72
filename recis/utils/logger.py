"""``Logger``: a named logger with rank-0-only variants of its methods (RecIS API).

INFO and DEBUG records go to standard output, warnings and errors to standard error (whichever
streams ``sys.stdout``/``sys.stderr`` are when a record is written), formatted as
``[time] [LEVEL] [name] message``. The ``*_rank0`` methods log only on rank 0 of
torch.distributed when it is initialised, and in every process otherwise.

>>> logger = Logger("recis.example")
>>> logger.info_rank0("step %d of %d", 10, 100)  # doctest: +ELLIPSIS
[...] [INFO] [recis.example] step 10 of 100
>>> is_rank_zero(), distributed_rank()
(True, 0)
"""

from __future__ import annotations

import logging
import sys

FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"


def distributed_rank() -> int:
    """This process's rank in torch.distributed, or 0 when it is not initialised.

    torch is looked up, not imported: a process that never imported it has no process group.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def is_rank_zero() -> bool:
    """True on rank 0 of torch.distributed, and in every process when it is not initialised."""
    return distributed_rank() == 0


class Logger:
    """Wraps ``logging.getLogger(name)``, giving it the handlers above once.

    Args:
        name: the logger's name.
        level: the lowest level logged.
    """

    def __init__(self, name: str = "recis", level: int = logging.INFO) -> None:
        self._logger = logging.getLogger(name)
        self._logger.setLevel(level)
        if not self._logger.handlers:
            self._logger.addHandler(_StandardStreamHandler("stdout", below=logging.WARNING))
            self._logger.addHandler(_StandardStreamHandler("stderr", below=None))
            self._logger.propagate = False

    def debug(self, *args, **kwargs) -> None:
        self._logger.debug(*args, **kwargs)

    def info(self, *args, **kwargs) -> None:
        self._logger.info(*args, **kwargs)

    def warning(self, *args, **kwargs) -> None:
        self._logger.warning(*args, **kwargs)

    def error(self, *args, **kwargs) -> None:
        self._logger.error(*args, **kwargs)

    def info_rank0(self, *args, **kwargs) -> None:
        if is_rank_zero():
            self._logger.info(*args, **kwargs)

    def warning_rank0(self, *args, **kwargs) -> None:
        if is_rank_zero():
            self._logger.warning(*args, **kwargs)

    def error_rank0(self, *args, **kwargs) -> None:
        if is_rank_zero():
            self._logger.error(*args, **kwargs)


class _StandardStreamHandler(logging.StreamHandler):
    """Writes to ``sys.<stream_name>`` as it is at each record; with ``below``, only records
    under that level, else only records at or above WARNING."""

    def __init__(self, stream_name: str, below: int | None) -> None:
        super().__init__()
        self._stream_name = stream_name
        self.setFormatter(logging.Formatter(FORMAT))
        if below is None:
            self.setLevel(logging.WARNING)
        else:
            self.addFilter(lambda record: record.levelno < below)

    @property
    def stream(self):
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, _value) -> None:
        """Ignored: the stream is looked up at each record."""
