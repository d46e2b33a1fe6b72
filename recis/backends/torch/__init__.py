"""The torch backend's distributed glue; the torch layers themselves live at RecIS's paths
(:mod:`recis.nn`, :mod:`recis.optim`, :mod:`recis.framework`)."""

from recis.backends.torch.communicator import TorchCommunicator, default_communicator

__all__ = ["TorchCommunicator", "default_communicator"]
