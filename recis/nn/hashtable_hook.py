"""RecIS's ``recis.nn.hashtable_hook``: admission and filter hooks (see
:mod:`recis.embedding.policy_hooks`)."""

from recis.embedding.policy_hooks import AdmitHook, FilterHook, register_admission, register_filter

__all__ = ["AdmitHook", "FilterHook", "register_admission", "register_filter"]
