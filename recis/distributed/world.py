"""The default world of ranks: which communicator the embedding layers shard their tables over.

A framework's distributed runtime (``torch.distributed``, or ``jax.distributed`` for JAX-only
installs) provides the communicator of its
world. The providers are named here by module, and a provider is consulted only once its
framework's runtime module has been imported by the program, so that this module — and the
engine — import no framework:

>>> default_communicator() is None  # no distributed runtime has been started
True
"""

from __future__ import annotations

import importlib
import sys

from recis.distributed.communicator import Communicator

# runtime module that must already be loaded → module whose ``default_communicator()`` reads it
PROVIDERS = {
    "torch.distributed": "recis.backends.torch.communicator",
    "jax.distributed": "recis.backends.jax.communicator",
}


def default_communicator() -> Communicator | None:
    """The communicator of the first started distributed runtime with several ranks, else None."""
    for runtime, provider in PROVIDERS.items():
        if runtime in sys.modules:
            comm = importlib.import_module(provider).default_communicator()
            if comm is not None:
                return comm
    return None
