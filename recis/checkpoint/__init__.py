"""Checkpoints of embedding tables: safetensors files plus a JSON index, written atomically.

A checkpoint is one directory::

    index.json                          what is where, and a sha256 of every file
    sparse-00000.safetensors, ...       the rows of the logical tables, keyed by (table, id)
    dense-00000.safetensors, ...        named dense arrays, when there are any
    extra.json, extra.safetensors, ...  files a front end adds (listed and checked like the rest),
                                        e.g. state trees (:mod:`~.state_tree`): never pickles

**Sparse tensors** are named after the *logical* table (a child of a merged physical table), so a
checkpoint loads into any grouping of tables; rows are keyed by id, not by position:

=========================== ===================================================================
``<table>/id``              int64 ``[n]``: the table's ids, in row order
``<table>/row``             int64 ``[n]``: each id's row in its physical table
``<table>/embedding``       ``[n, dim]`` in the storage dtype (float32, float16 or bfloat16)
``<table>/<slot>``          ``[n, *shape]``: optimizer slots and policy slots (e.g. last use)
``<table>/@<key>``          per-id policy state, e.g. ``@admission.keys`` and
                            ``@admission.counts`` of ids still waiting for admission
``<physical>/@<key>``       state of a physical table: its row allocator (``@rows.high_water``,
                            ``@rows.free``) and eviction clock (``@eviction.step``)
=========================== ===================================================================

A large logical table is split by rows into parts of at most ``max_file_bytes`` each, in files of
their own; small tables share files. Every file is an ordinary safetensors file (bfloat16 as
``BF16``) that the ``safetensors`` library opens.

**index.json** holds ``format`` (``"recis.checkpoint"``), ``version`` (1), ``metadata`` (e.g. the
global step), ``files`` (name → ``bytes``, ``sha256``), ``tensors`` (name → ``dtype``, ``shape``
and ``files``: the files holding its consecutive row ranges), ``tables`` (physical table →
``children``, ``dim``, ``dtype``, ``fields`` with dtype, shape and kind — ``embedding``,
``optimizer`` or ``policy`` —, ``state`` keys and ``lookup_stats``), ``logical`` (logical table →
physical ``table``, ``tag``, ``ids``, ``state`` keys), ``dense`` (names), and ``sha256``, the
digest of the rest of the index as canonical JSON.

**Sharded checkpoints.** When the tables are sharded over ``W`` ranks, every rank writes its
own shard (``sparse-r<rank>-<n>.safetensors``, and files of its own such as ``rank-r<rank>.json``)
into one temporary directory; rank 0 merges the ranks' index parts — a logical table's tensors
become consecutive row ranges over the ranks' files — and publishes it
(:mod:`~recis.checkpoint.sharded`). Its index also holds ``world_size`` (absent: 1). The row
allocators of the ranks are not kept (``<table>/row`` is an id's row in its rank's shard), eviction
clocks are the latest of the ranks' and lookup statistics their sum. A single process writes
exactly the files above, without ``world_size``.

**Atomicity.** Files go to a hidden directory ``.tmp-<name>-<random>`` beside the target; every file
and the directory are fsynced, then it is renamed into place, so a reader sees a whole checkpoint
or none. :class:`CheckpointDirectory` keeps a run's checkpoints and the ``checkpoint`` file that
lists them (rewritten atomically, newest last), deleting the oldest beyond ``max_to_keep``.

**Loading** checks each file's size and sha256 before reading it; a truncated or corrupt file
raises :class:`CheckpointError` naming it. Every file name the index or a run's list gives must
be a plain name of a real file or directory inside it (:mod:`~.candidates`), and a run's
rotation deletes only its own checkpoint directories. :func:`load_tables` restores a physical
table exactly (same rows, allocator, policy state and counters) when one process loads a
checkpoint of one process whose layout matches, and
otherwise re-inserts each logical table's ids with new rows, values and slots preserved, one file
at a time. Given a communicator of ``M`` ranks, each rank loads only the ids it owns
(:func:`recis.distributed.sharding.owners` at ``M``), so a checkpoint saved by any number of ranks
loads on any other.

Modules: ``files`` (names, fsync, seals), ``table_state`` (a table's state split by logical
table), ``writer``, ``sharded`` (writing by several ranks), ``reader``, ``loading`` (plans and
loads), ``directory`` (a run's list and rotation), ``candidates`` (which checkpoints of a run
are used or deleted), ``state_tree`` (non-tensor state as JSON and arrays). Only NumPy and
safetensors are used, so every front end shares this code.

>>> import tempfile
>>> import numpy as np
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("item", dim=2)
>>> _ = table.find_or_insert(np.array([7, 3]))
>>> path = save_tables(f"{tempfile.mkdtemp()}/ckpt", {"item": table}, metadata={"step": 1})
>>> checkpoint = Checkpoint(path)
>>> checkpoint.metadata, checkpoint.read_tensor("item/id").tolist()
({'step': 1}, [7, 3])
>>> fresh = EmbeddingTable("item", dim=2)
>>> _ = load_tables(checkpoint, {"item": fresh}, plan_load(checkpoint, {"item": fresh}))
>>> fresh.find(np.array([3, 7])).tolist()
[1, 0]
"""

from recis.checkpoint.directory import CheckpointDirectory
from recis.checkpoint.files import (
    INDEX,
    LIST_FILE,
    MAX_FILE_BYTES,
    CheckpointError,
    rank_name,
    read_checkpoint_list,
    write_text_atomic,
)
from recis.checkpoint.loading import Source, load_tables, merge_counters, plan_load
from recis.checkpoint.reader import Checkpoint, resolve_checkpoint
from recis.checkpoint.sharded import (
    ShardedCheckpointWriter,
    checkpoint_writer,
    gather_max,
    read_rank_json,
    write_rank_json,
)
from recis.checkpoint.table_state import OPTIMIZER, field_kind
from recis.checkpoint.writer import CheckpointWriter, save_tables
from recis.core.row_store import EMBEDDING

__all__ = [
    "EMBEDDING",
    "INDEX",
    "LIST_FILE",
    "MAX_FILE_BYTES",
    "OPTIMIZER",
    "Checkpoint",
    "CheckpointDirectory",
    "CheckpointError",
    "CheckpointWriter",
    "ShardedCheckpointWriter",
    "Source",
    "checkpoint_writer",
    "field_kind",
    "gather_max",
    "load_tables",
    "merge_counters",
    "plan_load",
    "rank_name",
    "read_checkpoint_list",
    "read_rank_json",
    "resolve_checkpoint",
    "save_tables",
    "write_rank_json",
    "write_text_atomic",
]
