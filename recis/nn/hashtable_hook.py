"""RecIS's ``recis.nn.hashtable_hook``: admission and filter hooks (see
:mod:`recis.core.policy_hooks`)."""

from recis.core.policy_hooks import AdmitHook, FilterHook, register_admission, register_filter

__all__ = ["AdmitHook", "FilterHook", "register_admission", "register_filter"]
