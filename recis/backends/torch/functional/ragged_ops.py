"""RecIS's ``ragged_ops``: ragged ↔ dense/sparse, fused cutoff, feature cross and ragged tile.

A ragged tensor is flat ``values`` with offsets (one tensor per level, outermost first). Results
come back on the inputs' device; the work runs in the engine (:mod:`recis.core.ragged`,
:mod:`recis.core.features`) except for the tile, which is plain tensor indexing.

>>> import torch
>>> values, offsets = dense_to_ragged(torch.tensor([[1, 2, 0], [3, 0, 0]]), check_invalid=True)
>>> values.tolist(), offsets[0].tolist()
([1, 2, 3], [0, 2, 3])
>>> ragged_to_dense(values, offsets, -1).tolist()
[[1, 2], [3, -1]]
"""

from __future__ import annotations

import numpy as np
import torch

from recis.backends.torch.features.columns import engine_array, input_device
from recis.core import features as engine
from recis.core.arrays import export_like
from recis.core.ragged import Ragged
from recis.utils.logger import Logger

logger = Logger(__name__)


def dense_to_ragged(tensor: torch.Tensor, check_invalid: bool = False, invalid_value: int = 0):
    """A dense ``[B, L_1, ..., L_k]`` tensor as ``(values, [offsets per level])`` (int32 offsets).

    With ``check_invalid`` each row ends at its last value that differs from ``invalid_value``
    (trailing ``invalid_value``\\ s are padding, inner ones are kept); without it every row keeps
    all its values.

    >>> dense_to_ragged(torch.tensor([[1, 0, 3, 0]]))[0].tolist()
    [1, 0, 3, 0]
    """
    if tensor.dim() < 2:
        raise ValueError(f"dense_to_ragged: expected at least 2 dimensions, got {tensor.dim()}")
    if not check_invalid:
        sizes = tensor.shape
        offsets, rows = [], sizes[0]
        for width in sizes[1:]:
            offsets.append(torch.arange(0, rows * width + 1, width, dtype=torch.int32))
            rows *= width
        return tensor.reshape(-1), [o.to(tensor.device) for o in offsets]
    dense = engine_array(tensor.detach().cpu(), "tensor")
    ragged = Ragged.from_dense(dense, pad_value=invalid_value)
    values = torch.from_numpy(ragged.values).to(tensor.device)
    offsets = [torch.from_numpy(o.astype(np.int32)).to(tensor.device) for o in ragged.offsets]
    return values, offsets


def ragged_to_dense(values: torch.Tensor, offsets: list[torch.Tensor], default_value):
    """Pad a ragged tensor to dense ``[B, longest row per level...]``, filled with
    ``default_value``."""
    for i, level in enumerate(offsets):
        if level.dim() != 1:
            raise ValueError(f"Expected offset tensor at index {i} to be 1D, got {level.dim()}D.")
    with input_device(values):
        ragged = _engine_ragged(values, offsets)
        return export_like(ragged.to_dense(default_value), values)


def ragged_to_sparse(values: torch.Tensor, row_splits: list[torch.Tensor]) -> torch.Tensor:
    """A ragged tensor as a coalesced sparse COO tensor of its dense shape.

    >>> s = ragged_to_sparse(torch.tensor([5, 6, 7]), [torch.tensor([0, 2, 3])])
    >>> s.indices().tolist(), s.values().tolist(), tuple(s.shape)
    ([[0, 0, 1], [0, 1, 0]], [5, 6, 7], (2, 2))
    """
    row_splits = list(row_splits) if isinstance(row_splits, list | tuple) else [row_splits]
    positions = torch.arange(values.numel(), device=values.device)
    coordinates, shape = [], []
    for level in reversed(row_splits):
        level = level.to(device=values.device, dtype=torch.int64)
        rows = torch.searchsorted(level, positions, right=True) - 1
        coordinates.insert(0, positions - level[rows])
        lengths = level[1:] - level[:-1]
        shape.insert(0, int(lengths.max()) if lengths.numel() else 0)
        positions = rows
    coordinates.insert(0, positions)
    shape.insert(0, row_splits[0].numel() - 1)
    if not all(shape):
        raise RuntimeError(f"Wrong sparse tensor, got shape: {tuple(shape)}")
    sparse = torch.sparse_coo_tensor(torch.stack(coordinates), values, shape, check_invariants=True)
    return sparse.coalesce()


def fused_ragged_cutoff_2D(
    values: list[torch.Tensor],
    offsets: list[torch.Tensor],
    keep_lengths: torch.Tensor,
    drop_sides: torch.Tensor,
    pad_sides: torch.Tensor,
):
    """Cut every row of every 2-D ragged tensor to at most its ``keep_lengths`` entry.

    ``drop_sides`` True drops from the start of a row (keeps the last values), False from the
    end; values are never padded. Returns ``(values, offsets, drop_nums, pad_nums, drop_sides,
    pad_sides)``: lists per input, with int32 per-row counts of values dropped and of values
    missing to reach the keep length.

    >>> out = fused_ragged_cutoff_2D([torch.tensor([1, 2, 3, 4])], [torch.tensor([0, 3, 4])],
    ...                              torch.tensor([2]), torch.tensor([True]), torch.tensor([False]))
    >>> [t[0].tolist() for t in out[:4]]
    [[2, 3, 4], [0, 2, 3], [1, 0], [0, 1]]
    """
    _check_cutoff_lists(values, offsets, drop_sides, pad_sides, "offsets")
    keep, left = _per_input(keep_lengths, len(values)), _per_input(drop_sides, len(values))
    with input_device(values):
        columns = [
            _engine_ragged(v, [o], f"{i}th input", 2) for i, (v, o) in _pairs(values, offsets)
        ]
        cut = engine.fused_sequence_truncate(
            columns, keep, [_side(d) for d in left], [2] * len(columns), [False] * len(columns)
        )
    out_values = [export_like(c.ragged.values, v) for c, v in zip(cut, values, strict=True)]
    out_offsets = [_like_offsets(c.ragged.offsets[0], o) for c, o in zip(cut, offsets, strict=True)]
    drops = [_counts(c.drop_nums, v) for c, v in zip(cut, values, strict=True)]
    pads = [_counts(c.pad_nums, v) for c, v in zip(cut, values, strict=True)]
    return out_values, out_offsets, drops, pads, drop_sides, pad_sides


def _fused_ragged_cutoff_3D(
    values: list[torch.Tensor],
    outer_offsets: list[torch.Tensor],
    inner_offsets: list[torch.Tensor],
    keep_lengths: torch.Tensor,
    drop_sides: torch.Tensor | None = None,
    pad_sides: torch.Tensor | None = None,
):
    """Give every sequence of every 3-D ragged tensor exactly its ``keep_lengths`` inner lists.

    Longer sequences lose lists from the start (``drop_sides`` True) or the end (False, the
    default); shorter ones get empty lists at the start (``pad_sides`` True) or the end (False,
    the default). Inner lists are kept whole. Returns ``(values, outer_offsets,
    inner_offsets)``, lists per input.

    >>> v, outer, inner = _fused_ragged_cutoff_3D(
    ...     [torch.tensor([10, 11, 12, 13])], [torch.tensor([0, 3, 4])],
    ...     [torch.tensor([0, 1, 3, 3, 4])], torch.tensor([2]), torch.tensor([True]),
    ...     torch.tensor([True]))
    >>> v[0].tolist(), outer[0].tolist(), inner[0].tolist()
    ([11, 12, 13], [0, 2, 4], [0, 2, 2, 2, 3])
    """
    count = len(values)
    if len(outer_offsets) != count or len(inner_offsets) != count:
        raise ValueError(
            f"Length of 'offsets' list ({len(outer_offsets)}) must match length of 'values' "
            f"list ({count}) and 'inner_offsets' ({len(inner_offsets)})."
        )
    device = keep_lengths.device
    drop_sides = (
        torch.zeros(count, dtype=torch.bool, device=device) if drop_sides is None else drop_sides
    )
    pad_sides = (
        torch.zeros(count, dtype=torch.bool, device=device) if pad_sides is None else pad_sides
    )
    _check_cutoff_lists(values, outer_offsets, drop_sides, pad_sides, "outer_offsets")
    keep, left = _per_input(keep_lengths, count), _per_input(drop_sides, count)
    pad_left = _per_input(pad_sides, count)
    with input_device(values):
        columns = [
            _engine_ragged(v, [o, inner], f"{i}th input", 3)
            for i, (v, o, inner) in enumerate(
                zip(values, outer_offsets, inner_offsets, strict=True)
            )
        ]
        cut = engine.fused_sequence_truncate(
            columns, keep, [_side(d) for d in left], [3] * count, [False] * count
        )
    out_values, out_outer, out_inner = [], [], []
    for c, v, outer, inner, seq_len, pad_first in zip(
        cut, values, outer_offsets, inner_offsets, keep, pad_left, strict=True
    ):
        new_outer, new_inner = (export_like(o, v) for o in c.ragged.offsets)
        if pad_first:
            new_inner = _pad_at_start(new_inner, export_like(c.pad_nums, v), seq_len)
        out_values.append(export_like(c.ragged.values, v))
        out_outer.append(new_outer.to(outer.dtype))
        out_inner.append(new_inner.to(inner.dtype))
    return out_values, out_outer, out_inner


def fused_ragged_cutoff_3D(
    values: list[torch.Tensor],
    offsets: list[list[torch.Tensor]],
    keep_lengths: torch.Tensor,
    drop_sides: torch.Tensor | None = None,
    pad_sides: torch.Tensor | None = None,
):
    """:func:`_fused_ragged_cutoff_3D` with each input's offsets as one ``[outer, inner]`` pair;
    returns ``(values, [[outer, inner] per input])``."""
    if drop_sides is not None and bool(torch.any(drop_sides)):
        logger.warning("3-D cutoff drops inner lists, empty ones included, from the chosen side.")
    outer = [o[0] for o in offsets]
    inner = [o[1] for o in offsets]
    out_values, out_outer, out_inner = _fused_ragged_cutoff_3D(
        values, outer, inner, keep_lengths, drop_sides, pad_sides
    )
    return out_values, [[o, i] for o, i in zip(out_outer, out_inner, strict=True)]


def feature_cross_ragged(
    x_val: torch.Tensor,
    x_offsets: torch.Tensor,
    y_val: torch.Tensor,
    y_offsets: torch.Tensor,
    x_weight: torch.Tensor | None = None,
    y_weight: torch.Tensor | None = None,
):
    """Cross two int64 ragged id columns row by row; returns ``(ids, offsets, weights)``.

    Per row, each side's ids are made distinct (weights of repeats summed; default weight 1);
    every pair ``(x, y)`` becomes MurmurHash64A of its 16 bytes with weight ``w_x·w_y``. Only the
    first ``min(rows_x, rows_y)`` rows are crossed; empty rows stay empty.

    >>> ids, offsets, w = feature_cross_ragged(torch.tensor([1001]), torch.tensor([0, 1]),
    ...                                        torch.tensor([1, 1]), torch.tensor([0, 2, 2]))
    >>> ids.tolist(), offsets.tolist(), w.tolist()
    ([-7808879811642834040], [0, 1], [2.0])
    """
    for name, val in (("x_val", x_val), ("y_val", y_val)):
        if val.dim() != 1:
            raise ValueError(f"Expected {name} to be a 1D tensor, but got a {val.dim()}D tensor.")
    rows = min(x_offsets.numel(), y_offsets.numel()) - 1
    x_weight = torch.ones_like(x_val, dtype=torch.float32) if x_weight is None else x_weight
    y_weight = torch.ones_like(y_val, dtype=torch.float32) if y_weight is None else y_weight
    for name, weight, val in (("x_weight", x_weight, x_val), ("y_weight", y_weight, y_val)):
        if weight.shape != val.shape:
            raise ValueError(f"Expected {name} to have shape {val.shape}, got {weight.shape}.")
    with input_device(x_val):
        x = _first_rows(x_val, x_offsets, x_weight, rows, "x")
        y = _first_rows(y_val, y_offsets, y_weight, rows, "y")
        crossed = engine.feature_cross(x, y)
    ids = export_like(crossed.values, x_val)
    offsets = export_like(crossed.offsets[0], x_val).to(x_offsets.dtype)
    return ids, offsets, export_like(crossed.weights, x_val)


class RaggedTile(torch.autograd.Function):
    """The tile combiner of several ragged features at once, differentiable w.r.t. ``table``.

    Feature ``g`` has ``batch[g]`` rows (consecutive rows of ``offset``) and a tile length
    ``seq[g]``; each of its rows becomes ``seq[g]`` output rows: ``table[indices[i]]`` for the
    row's first ``seq[g]`` entries, then zero rows (zero rows first where ``left_pad[g]``).
    """

    @staticmethod
    def forward(ctx, batch, seq, indices, offset, table, left_pad):
        sources, targets, total = _tile_positions(batch, seq, offset, left_pad, table.device)
        out = table.new_zeros((total, table.shape[1]))
        rows = indices[sources].long()
        out[targets] = table[rows]
        ctx.save_for_backward(rows, targets)
        ctx.table_rows = table.shape[0]
        return out

    @staticmethod
    def backward(ctx, dy):
        rows, targets = ctx.saved_tensors
        dx = dy.new_zeros((ctx.table_rows, dy.shape[1]))
        dx.index_add_(0, rows, dy[targets])
        return None, None, None, None, dx, None


def ragged_tile(
    batch: list[int],
    seq: list[int],
    indices: torch.Tensor,
    offset: torch.Tensor,
    table: torch.Tensor,
    left_pad: torch.Tensor | None = None,
    check_enable: bool = False,
) -> torch.Tensor:
    """The tile of :class:`RaggedTile`: ``[batch[0]·seq[0] + ... + batch[M-1]·seq[M-1], dim]``.

    >>> table = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    >>> ragged_tile([2, 1], [3, 4], torch.tensor([0, 1, 0, 1]), torch.tensor([0, 2, 3, 4]),
    ...             table)[:, 0].tolist()
    [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]
    """
    check_para(batch, seq, indices, offset, table, check_enable)
    return RaggedTile.apply(batch, seq, indices, offset, table, left_pad)


def check_para(batch, seq, indices, offset, table, check_enable: bool) -> None:
    """With ``check_enable``, raise ``ValueError`` when the tile's arguments do not fit."""
    if not check_enable:
        return
    if len(batch) != len(seq):
        raise ValueError(f"ragged_tile: {len(batch)} batch sizes but {len(seq)} tile lengths")
    if indices.numel() and int(indices.max()) >= table.shape[0]:
        raise ValueError(f"ragged_tile: an index exceeds the table's {table.shape[0]} rows")
    if int(offset[-1]) > indices.numel():
        raise ValueError("ragged_tile: the last offset exceeds the number of indices")
    if table.dim() != 2 or not table.dtype.is_floating_point:
        raise ValueError("ragged_tile: table must be a 2-D floating point tensor")


def _tile_positions(batch, seq, offset, left_pad, device):
    """Which entries feed the tile (``sources``), the output rows they fill, and the row count."""
    if len(batch) != len(seq):
        raise ValueError(f"ragged_tile: {len(batch)} batch sizes but {len(seq)} tile lengths")
    if left_pad is None:
        left_pad = torch.zeros(len(batch), dtype=torch.bool)
    offset = offset.to(device=device, dtype=torch.int64)
    lengths = offset[1:] - offset[:-1]
    counts = torch.tensor(batch, device=device)
    tile = torch.repeat_interleave(torch.tensor(seq, device=device), counts)
    left = torch.repeat_interleave(left_pad.to(device=device, dtype=torch.bool), counts)
    kept = torch.minimum(lengths, tile)
    row_starts = torch.cumsum(tile, 0) - tile  # first output row of every input row
    first = row_starts + torch.where(left, tile - kept, 0)
    row_of = torch.repeat_interleave(torch.arange(len(kept), device=device), kept)
    step = torch.arange(row_of.numel(), device=device) - (torch.cumsum(kept, 0) - kept)[row_of]
    sources = offset[:-1][row_of] + step
    total = int(sum(b * s for b, s in zip(batch, seq, strict=True)))
    return sources, first[row_of] + step, total


def _engine_ragged(values, offsets, label: str = "input", n_dims: int | None = None) -> Ragged:
    if n_dims is not None and len(offsets[0]) <= 1:
        unit = "rows" if n_dims == 2 else "seqs"
        raise RuntimeError(
            f"fused_ragged_cutoff_{n_dims}D: {label} ragged tensor can not have 0 {unit}"
        )
    return Ragged(
        engine_array(values, f"{label} values"),
        tuple(engine_array(o, f"{label} offsets") for o in offsets),
    )


def _first_rows(values, offsets, weights, rows: int, side: str) -> Ragged:
    offsets = offsets[: rows + 1]
    end = int(offsets[-1]) if offsets.numel() else 0
    return Ragged(
        engine_array(values[:end], f"{side}_val"),
        engine_array(offsets, f"{side}_offsets"),
        engine_array(weights[:end].float(), f"{side}_weight"),
    )


def _pairs(values, offsets):
    return enumerate(zip(values, offsets, strict=True))


def _check_cutoff_lists(values, offsets, drop_sides, pad_sides, offsets_name: str) -> None:
    if len(offsets) != len(values):
        raise ValueError(
            f"Length of '{offsets_name}' list ({len(offsets)}) must match length of 'values' "
            f"list ({len(values)})."
        )
    for name, sides in (("drop_sides", drop_sides), ("pad_sides", pad_sides)):
        if sides.dtype != torch.bool:
            raise ValueError(f"'{name}' must be of type torch.bool, but got {sides.dtype}.")


def _per_input(parameter: torch.Tensor, count: int) -> list:
    """One value per input from a ``[count]`` tensor, or a ``[count, B]`` one constant per row."""
    parameter = parameter.detach().cpu()
    if parameter.dim() == 2:
        if bool((parameter != parameter[:, :1]).any()):
            raise ValueError("cutoff: per-row keep lengths and sides must be equal within an input")
        parameter = parameter[:, 0]
    if parameter.numel() != count:
        raise ValueError(f"cutoff: expected one keep length and side per input ({count})")
    return [int(p) if parameter.dtype != torch.bool else bool(p) for p in parameter.tolist()]


def _side(drop_first: bool) -> str:
    return "left" if drop_first else "right"


def _like_offsets(offsets, like: torch.Tensor) -> torch.Tensor:
    return export_like(offsets, like).to(like.dtype)


def _counts(counts, like: torch.Tensor) -> torch.Tensor:
    return export_like(counts, like).to(device=like.device, dtype=torch.int32)


def _pad_at_start(inner: torch.Tensor, pad_nums: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Inner offsets whose padding empty lists sit at the start of every sequence, not the end."""
    lengths = (inner[1:] - inner[:-1]).reshape(-1, seq_len)
    position = torch.arange(seq_len, device=inner.device)
    source = (position[None, :] - pad_nums.to(inner.device).reshape(-1, 1)) % seq_len
    moved = torch.gather(lengths, 1, source.long()).reshape(-1)
    return torch.cat([inner[:1], inner[0] + torch.cumsum(moved, 0)])
