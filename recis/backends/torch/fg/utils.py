"""Helpers of the feature generator: lower-casing a config and RecIS's multi-hash strategy
strings.

A multi-hash strategy ``"<prefix>:<b1>,<b2>,...:<combiner>:<shared>"`` hashes each id into
several bucket spaces (``prefix`` ``"yx"``: ids, ``"mh"``: strings); ``combiner`` ``"concat"``
joins their embeddings; ``shared`` ``1`` keeps one table for all of them.

>>> parse_multihash("yx:50,60:concat:4")
('yx', [50, 60], 'concat', False)
>>> get_multihash_name("tags", "yx", 1), get_multihash_shared_name("tags", "yx", 1)
('tags_yx_1', 'tags-yx2')
>>> dict_lower_case({"Block": ["Feature", 3]}, True)
{'block': ['feature', 3]}
"""

from __future__ import annotations


def dict_lower_case(config, lower_case: bool):
    """``config`` with its keys and string values lower-cased (unchanged if not ``lower_case``)."""
    if not lower_case:
        return config
    if isinstance(config, dict):
        return {_lower(key): dict_lower_case(value, True) for key, value in config.items()}
    if isinstance(config, list):
        return [dict_lower_case(value, True) for value in config]
    return _lower(config)


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def parse_multihash(strategy: str) -> tuple[str, list[int], str, bool]:
    """``(prefix, buckets, combiner, shared)`` of a multi-hash strategy string."""
    parts = strategy.split(":")
    if len(parts) != 4:
        raise ValueError(
            f"multi-hash strategy {strategy!r}: expected 'prefix:buckets:combiner:shared'"
        )
    prefix, buckets, combiner, shared = parts
    return prefix, [int(b) for b in buckets.split(",")], combiner, int(shared) == 1


def get_multihash_name(name: str, prefix: str, index: int) -> str:
    """The feature name of the ``index``-th multi-hash output of ``name``."""
    return f"{name}_{prefix}_{index}"


def get_multihash_shared_name(shared_name: str, prefix: str, index: int) -> str:
    """The table name of the ``index``-th multi-hash output (numbered from 1)."""
    return f"{shared_name}-{prefix}{index + 1}"
