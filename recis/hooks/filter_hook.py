"""RecIS's import path for :mod:`recis.backends.torch.hooks.filter_hook`."""

from recis.backends.torch.hooks.filter_hook import HashTableFilterHook

__all__ = ["HashTableFilterHook"]
