"""The torch front end: embedding modules, sparse optimizers, ``RaggedTensor``, feature ops,
metrics, the ``Trainer``, serialization, the IO converter and the ``torch.distributed``
communicator. RecIS scripts import them from RecIS's paths (:mod:`recis.nn`,
:mod:`recis.optim`, :mod:`recis.framework`, …), which re-export these modules."""

from recis.backends.torch import ops  # noqa: F401 - registers torch.ops.recis.*
from recis.backends.torch.communicator import (
    TorchCommunicator,
    default_communicator,
    end_process_group,
)

__all__ = ["TorchCommunicator", "default_communicator", "end_process_group"]
