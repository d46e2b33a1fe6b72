"""Makes ``import torch`` fail in every process whose ``PYTHONPATH`` starts with this folder, as
in an environment without torch: the JAX-only tests run their subprocesses so."""

import torch_blocker

torch_blocker.install()
