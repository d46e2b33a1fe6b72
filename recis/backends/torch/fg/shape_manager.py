"""``ShapeManager``: the shape of every feature and block an FG config gives the model.

A feature's shape is ``[-1, (seq_length,) width]``: ``width`` is the raw dimension for raw
features, the embedding dimension for lookups, and that times the number of buckets for a
multi-hash lookup that concatenates. A block concatenates its features on the last axis (they
must agree on the others). Named *contexts* hold further shapes a model wants to record.

>>> from types import SimpleNamespace
>>> from recis.backends.torch.fg.fg_parser import EmbTransformType
>>> conf = SimpleNamespace(out_name="age", seq_length=0, raw_dim=None, embedding_dim=8,
...                        emb_transform_type=EmbTransformType.LOOKUP, compress_strategy=None)
>>> parser = SimpleNamespace(emb_configs={"age": conf}, feature_blocks={"user": ["age", "age"]})
>>> ShapeManager(parser).get_shape("user")
[-1, 16]
"""

from __future__ import annotations

from recis.backends.torch.fg.fg_parser import EmbTransformType
from recis.backends.torch.fg.utils import parse_multihash


class ShapeManager:
    """Shapes of the features and blocks of ``fg_parser`` (see the module docstring)."""

    def __init__(self, fg_parser) -> None:
        self.fg_parser = fg_parser
        self.feature_shape = {c.out_name: _feature_shape(c) for c in fg_parser.emb_configs.values()}
        self.block_shape = {
            block: self._block_shape(block, features)
            for block, features in fg_parser.feature_blocks.items()
        }
        self.shape_context: dict[str, dict] = {}

    @property
    def feature_shapes(self) -> dict:
        return self.feature_shape

    @property
    def block_shapes(self) -> dict:
        return self.block_shape

    def get_shape(self, name: str) -> list:
        """The shape of block or feature ``name`` (a block first)."""
        if name in self.block_shape:
            return self.block_shape[name]
        return self.get_feature_shape(name)

    def get_feature_shape(self, fea_name: str) -> list:
        if fea_name not in self.feature_shape:
            raise RuntimeError(f"feature {fea_name!r} is not used by the MC config")
        return self.feature_shape[fea_name]

    def get_block_shape(self, block_name: str) -> list:
        if block_name not in self.block_shape:
            raise RuntimeError(f"block {block_name!r} is not in the MC config")
        return self.block_shape[block_name]

    def has_shape_context(self, context_name: str) -> bool:
        return context_name in self.shape_context

    def regist_shape_context(self, context_name: str) -> None:
        if context_name in self.shape_context:
            raise RuntimeError(f"shape context {context_name!r} is already registered")
        self.shape_context[context_name] = {}

    def set_context_shape(self, context_name: str, name: str, shape) -> None:
        self._context(context_name)[name] = shape

    def get_context_shape(self, context_name: str, name: str):
        context = self._context(context_name)
        if name not in context:
            raise RuntimeError(f"shape context {context_name!r} has no {name!r}")
        return context[name]

    def get_context_shapes(self, context_name: str) -> dict:
        return self._context(context_name)

    def _context(self, context_name: str) -> dict:
        if context_name not in self.shape_context:
            raise RuntimeError(f"shape context {context_name!r} is not registered")
        return self.shape_context[context_name]

    def _block_shape(self, block: str, features: list[str]) -> list:
        if not features:
            raise RuntimeError(f"MC config error: block {block!r} has no features")
        shape = list(self.get_feature_shape(features[0]))
        for feature in features[1:]:
            other = self.get_feature_shape(feature)
            if len(other) != len(shape) or other[1:-1] != shape[1:-1]:
                raise RuntimeError(
                    f"block {block!r}: feature {feature!r} of shape {other} cannot be "
                    f"concatenated to the block's shape {shape}"
                )
            shape[-1] += other[-1]
        return shape


def _feature_shape(conf) -> list:
    shape = [-1, conf.seq_length] if conf.seq_length else [-1]
    kind = conf.emb_transform_type
    if kind == EmbTransformType.RAW:
        return [*shape, conf.raw_dim]
    if kind == EmbTransformType.LOOKUP:
        return [*shape, conf.embedding_dim]
    if kind == EmbTransformType.MULTIHASH_LOOKUP:
        _, buckets, combiner, _ = parse_multihash(conf.compress_strategy)
        width = conf.embedding_dim * (len(buckets) if combiner == "concat" else 1)
        return [*shape, width]
    raise RuntimeError(f"feature {conf.out_name!r}: unsupported embedding transform {kind!r}")
