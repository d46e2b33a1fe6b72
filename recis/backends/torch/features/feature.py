"""``Feature``: a named chain of feature ops, starting with ``SelectField``/``SelectFields``.

>>> import torch
>>> from recis.backends.torch.features.op import Mod, SelectField
>>> feature = Feature("user_id").add_op(SelectField("uid")).add_op(Mod(100))
>>> feature({"uid": torch.tensor([1234, 5678])})
tensor([34, 78])
"""

from __future__ import annotations

import hashlib

from torch import nn

from recis.backends.torch.features.errors import call_op
from recis.backends.torch.features.op import _OP, SelectField, SelectFields
from recis.core.threads import beside_framework


class Feature(nn.Module):
    """A named pipeline of ops applied in the order they were added."""

    def __init__(self, name: str):
        super().__init__()
        self._name = name
        self._compiled = False
        self._ops = nn.ModuleList()

    @property
    def name(self) -> str:
        return self._name

    @property
    def compiled(self) -> bool:
        """Whether a ``FeatureEngine`` holds this feature (it then takes no more ops)."""
        return self._compiled

    def compiled_(self, value: bool) -> None:
        self._compiled = bool(value)

    @property
    def ops(self) -> nn.ModuleList:
        return self._ops

    def add_op(self, op: _OP) -> Feature:
        """Append ``op`` and return the feature; the first op must select the input."""
        if self._compiled:
            raise ValueError(f"feature {self._name!r} has been compiled")
        if not isinstance(op, _OP):
            raise TypeError(f"feature {self._name!r}: expected a feature op, got {op!r}")
        if not self._ops and not isinstance(op, SelectField | SelectFields):
            raise ValueError(f"feature {self._name!r} must start with SelectField or SelectFields")
        self._ops.append(op)
        return self

    def get_hash(self) -> int:
        """Signed 64-bit hash of the name and the ops, in order (0 for a feature without ops)."""
        if not self._ops:
            return 0
        return _hash64(f"{self._name}:{self.get_ops_hash()}")

    def get_ops_hash(self) -> int:
        """Signed 64-bit hash of the ops in order: equal for features that compute the same."""
        return _hash64(str([op.get_hash() for op in self._ops]))

    def selected_fields(self) -> set[str]:
        """Names of the input fields the first op reads."""
        first = self._ops[0] if self._ops else None
        selects = first.input_list if isinstance(first, SelectFields) else [first]
        return {s.name for s in selects if isinstance(s, SelectField) and s.from_dict}

    @beside_framework
    def forward(self, data):
        x = data
        for op in self._ops:
            x = call_op(self._name, op, x)
        return x


def _hash64(text: str) -> int:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], byteorder="big", signed=True)
