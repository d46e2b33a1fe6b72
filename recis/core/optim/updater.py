"""``SparseUpdater``: applies a sparse optimizer rule to the rows that received gradients.

Gradients arrive as (rows, grads) pairs per table, possibly with repeated rows and over several
micro-steps. At each optimizer step the updater sums the gradients of each row, divides by the
number of accumulated micro-steps, checks them for NaN/inf, and runs the rule on exactly those rows
and their slots (lazy: other rows do not change). On the CPU the built-in rules update the rows
where they are stored (:mod:`recis.core.optim.in_place`). For a table whose rows live on the GPU (a
``"cuda"`` row store, CuPy gradients), gradients are summed on the device and the rule runs in
place on the row store's blocks, checking the gradients itself (one fused CUDA kernel per rule,
:func:`recis.core.cuda.optim.update_in_blocks`; rows or slots other than float32 are gathered,
updated and scattered instead), and nothing waits for the device: rows with non-finite gradients
are left out there, and under ``on_nonfinite="raise"`` the whole table's update is (its step count
still advances, unlike on the CPU, which raises before counting); the error is then raised by a
later :meth:`SparseUpdater.step` (or :meth:`SparseUpdater.state_dict`), once the host sees it.

>>> import numpy as np
>>> from recis.core.optim import SGD
>>> from recis.core.table import EmbeddingTable
>>> table = EmbeddingTable("t", dim=2)
>>> updater = SparseUpdater(SGD(), [table])
>>> rows = table.find_or_insert(np.array([5, 5])).rows
>>> updater.accumulate(table, rows, np.ones((2, 2), np.float32))
>>> updater.step(lr=0.5)
>>> table.gather(rows[:1]).tolist()  # the two gradients of id 5 were summed
[[-1.0, -1.0]]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from recis.core import arrays as interop
from recis.core.cuda import optim as cuda_optim
from recis.core.cuda.host_mirror import deferred_errors, raise_deferred_errors
from recis.core.errors import NonFiniteGradientError
from recis.core.optim.in_place import update_by_copies, update_in_place
from recis.core.optim.rule import Rule
from recis.core.table import EmbeddingTable

NONFINITE_POLICIES = ("raise", "skip")


class SparseUpdater:
    """Accumulates per-row gradients of tables and applies ``rule`` to them.

    Args:
        rule: the row-wise optimizer rule; its slots are added to each table's row store.
        tables: tables to update (more can be added with :meth:`add_table`).
        accumulation_steps: micro-steps per update; gradients are summed and divided by it.
        on_nonfinite: ``"raise"`` a :class:`NonFiniteGradientError` naming the table, or
            ``"skip"`` the rows whose gradient is not finite, counting them in ``skipped_rows``.
    """

    def __init__(
        self,
        rule: Rule,
        tables: Iterable[EmbeddingTable] = (),
        accumulation_steps: int = 1,
        on_nonfinite: str = "raise",
    ) -> None:
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}: {on_nonfinite!r}")
        self.rule = rule
        self.accumulation_steps = accumulation_steps
        self.on_nonfinite = on_nonfinite
        self.tables: dict[str, EmbeddingTable] = {}
        self.steps: dict[str, int] = {}
        self._skipped_rows: dict[str, int] = {}
        self._skipped_on_gpu: dict[str, object] = {}  # device counts not yet added in
        self._device_counts: dict[str, cuda_optim.NonfiniteCounts] = {}  # in-place updates
        self.micro_step = 0
        self._updated_elsewhere: set[str] = set()
        for table in tables:
            self.add_table(table)

    def add_table(self, table: EmbeddingTable) -> None:
        """Start updating ``table``, adding the rule's slots to its rows. Slots it already
        holds with the same shape and dtype (a copied table's, or another optimizer's) keep
        their rows' values; rows that start later take this rule's initial value (as RecIS,
        e.g. another ``initial_accumulator_value``)."""
        if table.name in self.tables:
            raise ValueError(f"table {table.name!r} is already updated by this optimizer")
        for name, spec in self.rule.slots(table.dim).items():
            held = table.store.fields.get(name)
            if held is None:
                table.store.add_slot(name, spec.shape, spec.dtype, spec.init)
            elif (held.shape, held.dtype) != (tuple(spec.shape), spec.dtype):
                rule = type(self.rule).__name__
                raise ValueError(f"table {table.name!r} holds a slot {name!r} unlike {rule}'s")
            elif held.fill != spec.init:
                table.store.set_fill(name, spec.init)
        self.tables[table.name] = table
        self.steps[table.name] = 0
        self._skipped_rows[table.name] = 0

    def accumulate(self, table: EmbeddingTable, rows: np.ndarray, grads: np.ndarray) -> None:
        """Record ``grads[n, dim]`` of ``rows[n]`` in the table's gradient buffer."""
        if table.name not in self.tables:
            raise KeyError(f"table {table.name!r} is not updated by this optimizer")
        try:
            table.grads.add(rows, grads)
        except ValueError as error:
            raise ValueError(f"table {table.name!r}: {error}") from None

    def step(self, lr: float) -> None:
        """Count a micro-step; on every ``accumulation_steps``-th, update and clear gradients.

        Every table's gradients are checked before any is applied: under ``"raise"`` a
        non-finite gradient leaves every table as it was and drops the gradients (on the CPU;
        a GPU reports it at a later step, see the module docstring)."""
        self.micro_step += 1
        if self.micro_step % self.accumulation_steps:
            return
        try:
            raise_deferred_errors()  # what the GPU found in earlier updates, if it has arrived
            summed = {t.name: self._summed_gradients(t) for t in self.tables.values() if t.grads}
        except NonFiniteGradientError:
            self.zero_grad()  # the step is dropped as a whole: no table was updated
            raise
        for table in self.tables.values():
            if table.name in summed:
                self._apply(table, lr, *summed[table.name])
            elif table.name in self._updated_elsewhere:
                self.steps[table.name] += 1  # another shard of the table was updated
        self.zero_grad()

    def note_updated_elsewhere(self, names) -> None:
        """Count the next update of the tables ``names`` even if this process's shard of them
        gets no gradient (other ranks' shards do), so step counts agree over ranks."""
        self._updated_elsewhere.update(names)

    def zero_grad(self) -> None:
        """Drop accumulated gradients."""
        for table in self.tables.values():
            table.grads.clear()
        self._updated_elsewhere.clear()

    def _apply(self, table: EmbeddingTable, lr: float, rows, grads) -> None:
        table.written(rows)
        if table.store.device != "cpu":
            return self._apply_on_gpu(table, lr, rows, grads)
        self.steps[table.name] += 1
        step = self.steps[table.name]
        if not update_in_place(self.rule, table.store, rows, grads, step, lr):
            update_by_copies(self.rule, table.store, rows, grads, step, lr)

    def _summed_gradients(self, table: EmbeddingTable) -> tuple[np.ndarray, np.ndarray]:
        if table.store.device != "cpu":
            return table.grads.summed_on_device()  # divided and checked by _apply_on_gpu
        unique_rows, grads = table.grads.summed(self.accumulation_steps, read_only=True)
        xp = interop.namespace(grads)
        if xp is np and np.isfinite(grads).all():  # the common case, in one flat pass
            return unique_rows, grads
        finite = xp.isfinite(grads).all(axis=1)
        if bool(finite.all()):
            return unique_rows, grads
        if self.on_nonfinite == "raise":
            raise NonFiniteGradientError(
                f"table {table.name!r}: {int((~finite).sum())} of {finite.size} rows have NaN "
                f"or infinite gradients (use on_nonfinite='skip' to skip such rows)"
            )
        self._skipped_rows[table.name] += int((~finite).sum())
        return unique_rows[finite], grads[finite]

    def _apply_on_gpu(self, table: EmbeddingTable, lr: float, rows, grads) -> None:
        """:meth:`_apply` of a GPU table: ``grads`` summed per row, not yet divided by the
        accumulation steps nor checked (see the module docstring)."""
        store, divisor = table.store, self.accumulation_steps
        if not cuda_optim.updates_in_blocks(self.rule, store):
            grads = grads / np.float32(divisor)
            rows = self._finite_rows_on_gpu(
                table, rows, interop.namespace(grads).isfinite(grads).all(axis=1)
            )
            self.steps[table.name] += 1
            update_by_copies(self.rule, store, rows, grads, self.steps[table.name], lr)
            return
        counts = self._device_counts.get(table.name)
        if counts is None:
            counts = self._device_counts[table.name] = cuda_optim.NonfiniteCounts()
        host = None
        if self.on_nonfinite == "raise":
            host = deferred_errors().reserve(self._nonfinite_error(table))
        self.steps[table.name] += 1
        step = self.steps[table.name]
        cuda_optim.update_in_blocks(self.rule, store, rows, grads, divisor, step, lr, counts, host)

    def _nonfinite_error(self, table: EmbeddingTable):
        """The error of ``table``'s next update, from the count of its non-finite rows."""
        name, update = table.name, self.steps[table.name] + 1

        def error(count: int) -> NonFiniteGradientError:
            return NonFiniteGradientError(
                f"table {name!r}: {count} rows had NaN or infinite gradients in update {update}, "
                f"which was skipped for the whole table (use on_nonfinite='skip' to skip only "
                f"such rows)"
            )

        return error

    def _finite_rows_on_gpu(self, table: EmbeddingTable, rows, finite):
        """``rows`` with -1 for those not to update, decided on the device (module docstring)."""
        xp = interop.namespace(rows)
        bad = ~finite & (rows >= 0)
        count = bad.sum()
        if self.on_nonfinite == "skip":
            self._skipped_on_gpu[table.name] = self._skipped_on_gpu.get(table.name, 0) + count
            return xp.where(bad, -1, rows)
        deferred_errors().report(count, self._nonfinite_error(table))
        return xp.where(count == 0, rows, -1)

    @property
    def skipped_rows(self) -> dict[str, int]:
        """Per table, the rows skipped for non-finite gradients (waits for a GPU's counts)."""
        for name, count in self._skipped_on_gpu.items():
            self._skipped_rows[name] += int(count)
        self._skipped_on_gpu.clear()
        for name, counts in self._device_counts.items():
            self._skipped_rows[name] += int(counts.skipped[0])
            counts.skipped.fill(0)
        return dict(self._skipped_rows)

    def state_dict(self) -> dict:
        """Per-table step counts, skipped-row counts and the micro-step counter (raising first
        what a GPU found in the updates so far)."""
        raise_deferred_errors(wait=True)
        return {
            "steps": dict(self.steps),
            "skipped_rows": dict(self.skipped_rows),
            "micro_step": self.micro_step,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (tables must already be added)."""
        missing = set(state["steps"]) - set(self.tables)
        if missing:
            raise KeyError(f"state holds tables this optimizer does not update: {sorted(missing)}")
        self.steps.update(state["steps"])
        self._skipped_on_gpu.clear()
        for counts in self._device_counts.values():
            counts.skipped.fill(0)
        self._skipped_rows.update(state["skipped_rows"])
        self.micro_step = int(state["micro_step"])
