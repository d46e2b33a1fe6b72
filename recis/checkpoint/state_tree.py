"""Non-tensor state (counters, RNG states, optimizer state, data positions) as JSON plus
arrays — never pickle.

A *state tree* is nested dicts, lists and tuples of ``None``, booleans, numbers, strings and
arrays. :func:`write_state` stores it as ``<name>.json`` (the structure, every array replaced by
a reference) and ``<name>.safetensors`` (the arrays); :func:`read_state` gives it back with the
same types: tuples stay tuples, integer dict keys stay integers, float NaN and infinity
survive. A front end's own array type (e.g. torch tensors) passes through a :class:`Codec`.

>>> import tempfile
>>> from recis.checkpoint.writer import CheckpointWriter
>>> from recis.checkpoint.reader import Checkpoint
>>> state = {"step": 3, "betas": (0.9, 0.99), "slots": {0: np.arange(3)}, "rng": None}
>>> with CheckpointWriter(f"{tempfile.mkdtemp()}/ckpt") as writer:
...     write_state(writer, "extra", state)
...     path = writer.commit()
>>> back = read_state(Checkpoint(path), "extra")
>>> back["betas"], back["slots"][0].tolist(), back["rng"]
((0.9, 0.99), [0, 1, 2], None)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes  # noqa: F401  (registers bfloat16 for safetensors' NumPy reader)
import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from recis.checkpoint.files import CheckpointError, rank_name
from recis.checkpoint.reader import Checkpoint

ARRAY, TENSOR, TUPLE, ITEMS = "$array", "$tensor", "$tuple", "$items"


@dataclass(frozen=True)
class Codec:
    """How a front end's tensors become NumPy arrays and back: ``is_tensor(x)``,
    ``to_array(x)`` and ``from_array(a)``."""

    is_tensor: Callable[[object], bool]
    to_array: Callable[[object], np.ndarray]
    from_array: Callable[[np.ndarray], object]


NUMPY_ONLY = Codec(lambda value: False, np.asarray, lambda array: array)


def encode(tree, codec: Codec = NUMPY_ONLY, where: str = "state"):
    """``(structure, arrays)``: ``tree`` as JSON-able structure with its arrays named apart."""
    arrays: dict[str, np.ndarray] = {}

    def visit(value, path: str):
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int | float) and not isinstance(value, np.generic):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if codec.is_tensor(value):
            return {TENSOR: add(codec.to_array(value))}
        if isinstance(value, np.ndarray):
            return {ARRAY: add(value)}
        if isinstance(value, tuple):
            return {TUPLE: [visit(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [visit(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: visit(v, f"{path}.{k}") for k, v in value.items()}
            return {ITEMS: [[visit(k, path), visit(v, f"{path}.{k}")] for k, v in value.items()]}
        raise CheckpointError(
            f"{path} is a {type(value).__name__}, which a checkpoint does not hold (state is "
            f"kept as JSON and arrays: dicts, lists, tuples, numbers, strings, None, arrays)"
        )

    def add(array: np.ndarray) -> str:
        name = str(len(arrays))
        arrays[name] = np.require(array, requirements="C")  # (0-d arrays stay 0-d)
        return name

    return visit(tree, where), arrays


def decode(structure, arrays: dict[str, np.ndarray], codec: Codec = NUMPY_ONLY):
    """The tree :func:`encode` took apart."""
    if isinstance(structure, list):
        return [decode(v, arrays, codec) for v in structure]
    if not isinstance(structure, dict):
        return structure
    if TENSOR in structure:
        return codec.from_array(arrays[structure[TENSOR]])
    if ARRAY in structure:
        return arrays[structure[ARRAY]]
    if TUPLE in structure:
        return tuple(decode(v, arrays, codec) for v in structure[TUPLE])
    if ITEMS in structure:
        return {
            _hashable(decode(k, arrays, codec)): decode(v, arrays, codec)
            for k, v in structure[ITEMS]
        }
    return {k: decode(v, arrays, codec) for k, v in structure.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def state_file_names(name: str, rank: int | None = None) -> tuple[str, str]:
    """The JSON and safetensors file names of state ``name`` (a rank's own, given ``rank``).

    >>> state_file_names("extra")
    ('extra.json', 'extra.safetensors')
    >>> state_file_names("rank-state", 1)
    ('rank-state-r00001.json', 'rank-state-r00001.safetensors')
    """
    stem = name if rank is None else rank_name(name, rank)
    return f"{stem}.json", f"{stem}.safetensors"


def write_state(writer, name: str, tree, codec: Codec = NUMPY_ONLY, own: bool = False) -> None:
    """Add ``tree`` to the checkpoint being written as ``<name>.json`` and
    ``<name>.safetensors`` (with ``own``, this rank's files, see
    :func:`~recis.checkpoint.files.rank_name`)."""
    structure, arrays = encode(tree, codec, name)
    text = json.dumps(structure).encode()
    json_name, arrays_name = state_file_names(name)
    add = writer.write_rank_file if own else writer.write_file
    add(json_name, lambda out: out.write(text))
    add(arrays_name, lambda out: out.write(save_arrays(arrays)))


def read_state(
    checkpoint: Checkpoint, name: str, codec: Codec = NUMPY_ONLY, rank: int | None = None
):
    """The state tree :func:`write_state` stored as ``name`` (rank ``rank``'s own, if given)."""
    json_name, arrays_name = state_file_names(name, rank)
    try:
        structure = json.loads(checkpoint.file(json_name).read_text())
        arrays = load_arrays(checkpoint.file(arrays_name).read_bytes())
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{checkpoint!r}: {json_name} or {arrays_name}: {error}") from None
    return decode(structure, arrays, codec)
