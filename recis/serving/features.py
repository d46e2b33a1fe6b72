"""The feature configuration of a bundle, run on raw columns with the engine's feature ops.

A bundle's ``features`` entry lists, per feature, its chain of ops as JSON (written by a front
end's export), and ``aliases`` (features computing the same as another). :func:`run_features`
applies it to a batch of raw columns (NumPy arrays and :class:`~recis.core.ragged.Ragged` s, as
RecIS's readers give them) with :mod:`recis.core.features`, the kernels the training front ends
run.

=================== ============================================ ===========================
op                  fields                                       engine function
=================== ============================================ ===========================
``select``          ``column``                                   (the raw column)
``select_many``     ``columns``                                  (a list of raw columns)
``mod``             ``value``                                    ``mod``
``bucketize``       ``boundaries``                               ``bucketize``
``hash``            ``hash_type`` (``farm`` or ``murmur``)       ``hash_column``
``cross``                                                        ``feature_cross``
``truncate``        ``seq_len``, ``truncate_side``, ``n_dims``   ``sequence_truncate``
``multi_hash``      ``num_buckets``, ``prefix``                  ``id_multi_hash``
=================== ============================================ ===========================

A ``multi_hash`` op (``IDMultiHash``) gives one id column per bucket count; as in the torch
``FeatureEngine``, feature ``f`` then yields ``f"{f}_{prefix}_{k}"`` for each ``k``, each
embedded in its own table.

>>> import numpy as np
>>> spec = {"features": [{"name": "user", "ops": [{"op": "select", "column": "uid"},
...                                                {"op": "mod", "value": 100}]}]}
>>> run_features(spec, {"uid": np.array([[1234], [5678]])})["user"].tolist()
[[34], [78]]
"""

from __future__ import annotations

from collections.abc import Mapping

from recis.core import features as engine
from recis.core.ragged import Ragged


def _select(x, op, raw):
    return _column(raw, op["column"])


def _select_many(x, op, raw):
    return [_column(raw, name) for name in op["columns"]]


def _hash(x, op, raw):
    return engine.hash_column(x, op["hash_type"], x.weights if isinstance(x, Ragged) else None)


def _multi_hash(x, op, raw):
    hashed = engine.id_multi_hash(x, op["num_buckets"])
    return {f"{op['prefix']}_{k}": ids for k, ids in enumerate(hashed)}


OPS = {
    "select": _select,
    "select_many": _select_many,
    "mod": lambda x, op, raw: engine.mod(x, op["value"]),
    "bucketize": lambda x, op, raw: engine.bucketize(x, op["boundaries"]),
    "hash": _hash,
    "cross": lambda x, op, raw: engine.feature_cross(*x),
    "truncate": lambda x, op, raw: engine.sequence_truncate(
        x, op["seq_len"], op["truncate_side"], op["n_dims"]
    ),
    "multi_hash": _multi_hash,
}


def run_features(spec: Mapping, raw: Mapping) -> dict:
    """Every feature of ``spec`` computed from the raw columns ``raw``."""
    results = {}
    for feature in spec["features"]:
        x = None
        for op in feature["ops"]:
            if op["op"] not in OPS:
                raise ValueError(f"feature {feature['name']!r}: unknown op {op['op']!r}")
            try:
                x = OPS[op["op"]](x, op, raw)
            except (KeyError, TypeError, ValueError) as error:
                raise type(error)(
                    f"feature {feature['name']!r}, op {op['op']!r}: {error}"
                ) from None
        results[feature["name"]] = x
    for alias, primary in spec.get("aliases", {}).items():
        results[alias] = results[primary]
    out = {}
    for name, result in results.items():
        if isinstance(result, dict):  # multi_hash
            out |= {f"{name}_{key}": value for key, value in result.items()}
        else:
            out[name] = result
    return out


def _column(raw: Mapping, name: str):
    if name not in raw:
        raise KeyError(f"the batch has no column {name!r} (it has {sorted(raw)})")
    return raw[name]
