"""The sparse optimizers: RecIS's Adam family plus SGD, Adagrad, row-wise Adagrad and FTRL.

Each is a :class:`SparseOptimizer` over the engine rule of the same
name (:mod:`recis.core.optim`); the update rules are documented there. Each takes
``on_nonfinite``: ``"raise"`` (default) or ``"skip"`` rows whose gradient is NaN or infinite.

>>> import torch
>>> from recis.nn import HashTable
>>> SparseAdamW({"t": HashTable([-1, 4], name="t")}, lr=1e-3).rule
AdamW(beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01, amsgrad=False)
"""

from __future__ import annotations

import torch

from recis.backends.torch.optim.recis_steps import RecisSteps
from recis.backends.torch.optim.sparse_optimizer import SparseOptimizer
from recis.backends.torch.optim.update_info import UpdateRecorder
from recis.core import optim as rules


class SparseAdam(SparseOptimizer):
    """Adam; ``weight_decay`` is coupled L2 as in ``torch.optim.Adam`` (RecIS ignored it)."""

    recis_slot_prefix = "sparse_adam_"

    def __init__(
        self,
        param_dict,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        on_nonfinite="raise",
    ):
        super().__init__(
            param_dict, rules.Adam(beta1, beta2, eps, weight_decay, amsgrad), lr, on_nonfinite
        )


class SparseAdamW(SparseOptimizer):
    """AdamW: decoupled decay ``w *= 1 - lr·weight_decay``, then Adam."""

    recis_slot_prefix = "sparse_adamw_"

    recis_prefix = "sparse_adamw_"

    def __init__(
        self,
        param_dict,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        on_nonfinite="raise",
    ):
        super().__init__(
            param_dict, rules.AdamW(beta1, beta2, eps, weight_decay, amsgrad), lr, on_nonfinite
        )


class SparseAdamWTF(SparseOptimizer):
    """RecIS's TF-style AdamW: decay ``w *= 1 - weight_decay``, epsilon outside the bias
    correction. ``use_nesterov=True`` is not supported."""

    recis_slot_prefix = "sparse_adamw_tf_"

    recis_prefix = "sparse_adamw_tf_"

    def __init__(
        self,
        param_dict,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=1e-2,
        use_nesterov=False,
        on_nonfinite="raise",
    ):
        if use_nesterov:
            raise ValueError("SparseAdamWTF: use_nesterov=True is not supported")
        super().__init__(
            param_dict, rules.AdamWTF(beta1, beta2, eps, weight_decay), lr, on_nonfinite
        )


class SparseSGD(SparseOptimizer):
    """Plain SGD, optional coupled L2 ``weight_decay``."""

    def __init__(self, param_dict, lr=1e-2, weight_decay=0.0, on_nonfinite="raise"):
        super().__init__(param_dict, rules.SGD(weight_decay), lr, on_nonfinite)


class SparseAdagrad(RecisSteps, SparseOptimizer):
    """Adagrad as ``torch.optim.Adagrad`` (per-element accumulator); its state holds RecIS's
    step entries (``sparse_adagrad_step``, :mod:`~recis.backends.torch.optim.recis_steps`).
    ``save_update_info_interval=n`` records every n-th update's rows for
    :meth:`get_step_update_info` (:mod:`~recis.backends.torch.optim.update_info`)."""

    recis_slot_prefix = "sparse_adagrad_"
    recis_step_prefix = "sparse_adagrad_"

    def __init__(
        self,
        param_dict,
        lr=1e-2,
        lr_decay=0.0,
        weight_decay=0.0,
        initial_accumulator_value=0.0,
        eps=1e-10,
        on_nonfinite="raise",
        save_update_info_interval: int = 0,
    ):
        self._recorder = UpdateRecorder(save_update_info_interval)
        super().__init__(
            param_dict,
            rules.Adagrad(initial_accumulator_value, eps, weight_decay, lr_decay),
            lr,
            on_nonfinite,
        )
        self._eps = self.rule.eps

    def step(self, closure=None):
        """As :meth:`SparseOptimizer.step`, recording the update when it is one to record."""
        updater = self.core.updater
        recording = self._recorder.interval and (
            (updater.micro_step + 1) % updater.accumulation_steps == 0
        )
        if recording:
            self._recorder.before(
                self.hashtables, self.core.table_steps, self.core.accumulation_steps
            )
        loss = super().step(closure)
        if recording:
            self._recorder.after()
        return loss

    def get_step_update_info(self) -> dict[str, torch.Tensor]:
        """The rows of the latest recorded update (empty without ``save_update_info_interval``)."""
        return dict(self._recorder.info)


class SparseRowwiseAdagrad(SparseOptimizer):
    """Row-wise Adagrad: one accumulator per row (the mean of g²), as FBGEMM/TorchRec."""

    recis_slot_prefix = "sparse_row_wise_adagrad_"

    def __init__(
        self,
        param_dict,
        lr=1e-2,
        weight_decay=0.0,
        initial_accumulator_value=0.0,
        eps=1e-10,
        on_nonfinite="raise",
    ):
        super().__init__(
            param_dict,
            rules.RowWiseAdagrad(initial_accumulator_value, eps, weight_decay),
            lr,
            on_nonfinite,
        )


class SparseFtrl(SparseOptimizer):
    """FTRL-proximal as TensorFlow's ``Ftrl``."""

    def __init__(
        self,
        param_dict,
        lr=1e-2,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1=0.0,
        l2=0.0,
        beta=0.0,
        on_nonfinite="raise",
    ):
        super().__init__(
            param_dict,
            rules.Ftrl(learning_rate_power, initial_accumulator_value, l1, l2, beta),
            lr,
            on_nonfinite,
        )
