"""Sparse optimizer rules: pure row-wise updates of embedding rows and their optimizer slots.

Each rule is an immutable value of hyper-parameters with :meth:`~Rule.slots` (the per-row state it
needs) and :meth:`~Rule.update` (new rows and slots from rows, gradients, step and learning rate).

>>> import numpy as np
>>> rule = Adam()
>>> sorted(rule.slots(4))
['exp_avg', 'exp_avg_sq']
>>> rows, slots = rule.update(np.zeros((2, 4), np.float32), np.ones((2, 4), np.float32),
...                           rule.init(2, 4), step=1, lr=0.01)
>>> print(rows[0])
[-0.01 -0.01 -0.01 -0.01]
"""

from __future__ import annotations

from recis.core.optim.adagrad import Adagrad, RowWiseAdagrad
from recis.core.optim.adam import Adam, AdamW, AdamWTF
from recis.core.optim.ftrl import Ftrl
from recis.core.optim.rule import Rule, SlotSpec
from recis.core.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "AdamWTF",
    "Ftrl",
    "RowWiseAdagrad",
    "Rule",
    "SlotSpec",
]
