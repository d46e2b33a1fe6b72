"""Pytrees as named NumPy arrays, and back: how the JAX trainer's dense state is checkpointed.

A leaf's name is its path in the tree: dict keys, attribute names and sequence indices joined
by ``/`` behind a ``prefix`` (the trailing ``value`` of a Flax variable is dropped). Typed PRNG
keys are stored as their raw key data. Restoring fills a template tree of the same structure,
each leaf read by name, shape-checked and cast to the template leaf's dtype.

>>> import jax.numpy as jnp
>>> tree = {"dense": {"kernel": jnp.ones((2, 1))}, "count": jnp.zeros((), jnp.int32)}
>>> arrays = named_arrays(tree, "params")
>>> sorted(arrays)
['params/count', 'params/dense/kernel']
>>> arrays["params/count"] = np.asarray(7, np.int32)
>>> int(fill_tree(tree, "params", arrays.__getitem__)["count"])
7
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def leaf_names(tree, prefix: str) -> list[str]:
    """The names of ``tree``'s leaves, in ``jax.tree`` order; duplicates are a ``ValueError``."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = [_name(prefix, path) for path, _ in paths]
    if len(set(names)) != len(names):
        seen = [n for n in names if names.count(n) > 1]
        raise ValueError(f"two leaves of the tree {prefix!r} are both named {seen[0]!r}")
    return names


def named_arrays(tree, prefix: str) -> dict[str, np.ndarray]:
    """``{name: leaf as a NumPy array}`` of every leaf of ``tree`` (PRNG keys as key data)."""
    leaves = jax.tree.leaves(tree)
    return {
        name: np.asarray(_key_data(leaf))
        for name, leaf in zip(leaf_names(tree, prefix), leaves, strict=True)
    }


def fill_tree(template, prefix: str, read: Callable[[str], np.ndarray]):
    """``template`` with each leaf replaced by ``read(name)``, checked against the leaf's shape
    and cast to its dtype (PRNG keys are rebuilt from key data)."""
    leaves, treedef = jax.tree.flatten(template)
    names = leaf_names(template, prefix)
    values = [_restored(name, leaf, read(name)) for name, leaf in zip(names, leaves, strict=True)]
    return jax.tree.unflatten(treedef, values)


def _restored(name: str, leaf, array: np.ndarray):
    if _is_key(leaf):
        data = jax.random.key_data(leaf)
        _check_shape(name, data.shape, array.shape)
        key_data = jnp.asarray(array, data.dtype)
        return jax.random.wrap_key_data(key_data, impl=jax.random.key_impl(leaf))
    _check_shape(name, np.shape(leaf), array.shape)
    return jnp.asarray(array, dtype=leaf.dtype)


def _check_shape(name: str, expected: tuple, saved: tuple) -> None:
    if tuple(expected) != tuple(saved):
        raise ValueError(f"{name!r}: saved with shape {list(saved)}, expected {list(expected)}")


def _is_key(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _key_data(leaf):
    return jax.random.key_data(leaf) if _is_key(leaf) else leaf


def _name(prefix: str, path) -> str:
    parts = [_key_name(key) for key in path]
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
        parts.pop()  # a Flax variable's array
    return "/".join([prefix, *parts])


def _key_name(key) -> str:
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey | jax.tree_util.FlattenedIndexKey):
        return str(key.idx)
    return str(key)
