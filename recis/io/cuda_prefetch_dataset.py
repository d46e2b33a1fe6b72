"""RecIS's import path for :mod:`recis.backends.torch.cuda_prefetch`: importing it gives that
very module (see :mod:`recis.backends.torch.recis_path`), so that setting a name here (a
timeout, say) reaches the code. ``recis.io`` itself imports no framework: this module loads
torch."""

from recis.backends.torch.cuda_prefetch import (
    StreamPriority,
    cuda_prefetch_iterator,
)

__all__ = ["StreamPriority", "cuda_prefetch_iterator"]
