"""Training hooks."""

from recis.hooks.filter_hook import HashTableFilterHook
from recis.hooks.hook import Hook

__all__ = ["HashTableFilterHook", "Hook"]
