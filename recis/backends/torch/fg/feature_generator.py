"""``FG``: the feature generator — feature ops, reader columns and embedding options of an FG
config, and the shapes of its features and blocks.

:meth:`FG.get_feature_confs` gives one :class:`~recis.features.feature.Feature` per feature (its
column selected, then bucketized, hashed, taken modulo, masked, truncated to the sequence length
and multi-hashed as the config says), :meth:`FG.get_emb_confs` the
:class:`~recis.nn.EmbeddingOption` of every looked-up feature (multi-hash outputs get one each),
and :meth:`FG.add_io_features` declares the columns on a dataset. :func:`build_fg` makes the
parsers and the FG from config paths.

>>> import json, tempfile
>>> fg_conf = {"features": [{"feature_name": "city", "feature_type": "id_feature",
...     "value_type": "String", "hash_bucket_size": 100, "embedding_dimension": 8,
...     "gen_key_type": "hash", "gen_val_type": "lookup"}]}
>>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
...     json.dump(fg_conf, f)
>>> fg = build_fg(f.name, mc_config={"user": ["city"]}, emb_default_device="cpu")
>>> [type(op).__name__ for op in fg.get_feature_confs()[0].ops]
['SelectField', 'Hash', 'Mod']
>>> fg.get_emb_confs()["city"].embedding_dim, fg.get_shape("user")
(8, [-1, 8])
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from recis.backends.torch.embedding import EmbeddingOption
from recis.backends.torch.features.feature import Feature
from recis.backends.torch.features.mask import Mask
from recis.backends.torch.features.op import (
    Bucketize,
    Hash,
    IDMultiHash,
    Mod,
    SelectField,
    SequenceTruncate,
)
from recis.backends.torch.features.string_multi_hash import StringMultiHash
from recis.backends.torch.fg.fg_parser import EmbTransformType, FGParser, IdTransformType
from recis.backends.torch.fg.mc_parser import MCParser
from recis.backends.torch.fg.shape_manager import ShapeManager
from recis.backends.torch.fg.utils import (
    get_multihash_name,
    get_multihash_shared_name,
    parse_multihash,
)
from recis.backends.torch.initializers import (
    ConstantInitializer,
    NormalInitializer,
    UniformInitializer,
    XavierNormalInitializer,
    XavierUniformInitializer,
)
from recis.embedding.policy_hooks import AdmitHook, FilterHook

INITIALIZER_MAPPING = {
    "constant": ConstantInitializer,
    "uniform": UniformInitializer,
    "normal": NormalInitializer,
    "xavier_normal": XavierNormalInitializer,
    "xavier_uniform": XavierUniformInitializer,
}
INITIALIZER_DEFAULT_KWARGS = {
    "constant": {"init_val": 0.0},
    "uniform": {"a": -2e-5, "b": 2e-5},
    "normal": {"mean": 0.0, "std": 1e-5},
    "xavier_normal": {"gain": 1.0},
    "xavier_uniform": {"gain": 1.0},
}
_HASHES = (IdTransformType.HASH, IdTransformType.HASH_MULTIHASH)
_MODS = (IdTransformType.MOD, IdTransformType.MOD_MULTIHASH)
_MULTIHASHES = (
    IdTransformType.MULTIHASH,
    IdTransformType.HASH_MULTIHASH,
    IdTransformType.MOD_MULTIHASH,
)


class FG:
    """The feature generator of ``fg_parser`` and ``shape_manager`` (see the module docstring).

    Embedding options get ``initializer`` (one of :data:`INITIALIZER_MAPPING`, with
    ``init_kwargs`` or its defaults), ``grad_reduce_by``, ``emb_default_device`` (``"cpu"`` or
    ``"cuda"``) and ``emb_default_type`` unless a feature sets its own. ``use_coalesce``,
    ``hdmp_group_size`` and ``hdmp_group_reduce_by`` are accepted for compatibility: tables with
    equal options are always coalesced here. ``fill_seq`` leaves float sequences the reader
    pads untruncated.
    """

    def __init__(
        self,
        fg_parser: FGParser,
        shape_manager: ShapeManager,
        use_coalesce=True,
        grad_reduce_by="worker",
        hdmp_group_size=None,
        hdmp_group_reduce_by=None,
        initializer="uniform",
        init_kwargs=None,
        emb_default_class="hash_table",
        emb_default_device="cuda",
        emb_default_type=torch.float32,
        fill_seq=False,
    ) -> None:
        if initializer not in INITIALIZER_MAPPING:
            raise ValueError(f"initializer must be one of {sorted(INITIALIZER_MAPPING)}")
        if emb_default_class != "hash_table":
            raise NotImplementedError(
                f"emb_default_class {emb_default_class!r}: only 'hash_table' is provided"
            )
        if emb_default_device not in ("cpu", "cuda"):
            raise ValueError(
                f"emb_default_device must be 'cpu' or 'cuda', got {emb_default_device!r}"
            )
        self.fg_parser, self.shape_manager = fg_parser, shape_manager
        self.use_coalesce, self.grad_reduce_by = use_coalesce, grad_reduce_by
        self.hdmp_group_size, self.hdmp_group_reduce_by = hdmp_group_size, hdmp_group_reduce_by
        self.embedding_initializer = INITIALIZER_MAPPING[initializer]
        self.init_kwargs = (
            INITIALIZER_DEFAULT_KWARGS[initializer] if init_kwargs is None else init_kwargs
        )
        self.emb_default_class = emb_default_class
        self.emb_default_device = emb_default_device
        self.emb_default_type = emb_default_type
        self._fill_seq = fill_seq
        self._labels: dict[str, tuple[int, float]] = {}
        self._ids: dict[str, None] = {}

    @property
    def feature_blocks(self) -> dict:
        return self.fg_parser.feature_blocks

    @property
    def seq_block_names(self) -> list:
        return self.fg_parser.seq_block_names

    @property
    def multihash_conf(self) -> dict:
        return self.fg_parser.multihash_conf

    @property
    def sample_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def feature_shapes(self) -> dict:
        return self.shape_manager.feature_shapes

    @property
    def block_shapes(self) -> dict:
        return self.shape_manager.block_shapes

    def get_mc_conf(self) -> dict:
        return self.fg_parser.get_mc_conf()

    def get_fg_conf(self) -> dict:
        return self.fg_parser.get_fg_conf()

    def is_seq_block(self, block_name: str) -> bool:
        if block_name not in self.feature_blocks:
            raise RuntimeError(f"block {block_name!r} is not in the MC config")
        return block_name in self.seq_block_names

    def get_block_seq_len(self, block_name: str) -> int:
        """The sequence length of the block's first feature."""
        return self.fg_parser.get_seq_len(self.feature_blocks[block_name][0])

    def add_label(self, label_name: str, dim: int = 1, default_value: float = 0.0) -> None:
        self._labels[label_name] = (dim, default_value)

    def add_id(self, id_name: str) -> None:
        self._ids[id_name] = None

    def get_shape(self, name: str) -> list:
        return self.shape_manager.get_shape(name)

    def get_feature_shape(self, fea_name: str) -> list:
        return self.shape_manager.get_feature_shape(fea_name)

    def get_block_shape(self, block_name: str) -> list:
        return self.shape_manager.get_block_shape(block_name)

    def has_shape_context(self, context_name: str) -> bool:
        return self.shape_manager.has_shape_context(context_name)

    def regist_shape_context(self, context_name: str) -> None:
        self.shape_manager.regist_shape_context(context_name)

    def set_context_shape(self, context_name: str, name: str, shape) -> None:
        self.shape_manager.set_context_shape(context_name, name, shape)

    def get_context_shapes(self, context_name: str) -> dict:
        return self.shape_manager.get_context_shapes(context_name)

    def get_context_shape(self, context_name: str, name: str):
        return self.shape_manager.get_context_shape(context_name, name)

    def add_io_features(self, dataset) -> None:
        """Declare the FG's columns, the labels and the sample ids on ``dataset``: ragged columns
        with ``varlen_feature`` (hashed while reading, or as int8 strings, as configured), fixed
        ones with ``fixedlen_feature`` (default zeros)."""
        for conf in self.fg_parser.io_configs.values():
            if conf.varlen:
                dataset.varlen_feature(
                    conf.name, conf.hash_type, conf.hash_bucket_size, conf.trans_int
                )
            else:
                dataset.fixedlen_feature(conf.name, default_value=[0.0] * conf.dim)
        for name, (dim, default) in self._labels.items():
            dataset.fixedlen_feature(name, default_value=[default] * dim)
        for name in self._ids:
            dataset.varlen_feature(name)

    def get_emb_confs(self) -> OrderedDict:
        """Feature name → ``EmbeddingOption`` of every looked-up feature."""
        options = OrderedDict()
        for conf in self.fg_parser.emb_configs.values():
            kind = conf.emb_transform_type
            if kind == EmbTransformType.LOOKUP:
                dtype = self.emb_default_type if conf.emb_type is None else conf.emb_type
                options[conf.out_name] = self._option(conf, conf.shared_name, dtype)
            elif kind == EmbTransformType.MULTIHASH_LOOKUP:
                prefix, buckets, _, shared = parse_multihash(conf.compress_strategy)
                for i in range(len(buckets)):
                    table = (
                        conf.shared_name
                        if shared
                        else get_multihash_shared_name(conf.shared_name, prefix, i)
                    )
                    name = get_multihash_name(conf.out_name, prefix, i)
                    options[name] = self._option(conf, table, self.emb_default_type)
            elif kind != EmbTransformType.RAW:
                raise RuntimeError(f"feature {conf.out_name!r}: unsupported transform {kind!r}")
        return options

    def _option(self, conf, shared_name: str, dtype) -> EmbeddingOption:
        device = torch.device(
            "cuda" if (conf.emb_device or self.emb_default_device) == "cuda" else "cpu"
        )
        return EmbeddingOption(
            embedding_dim=conf.embedding_dim,
            shared_name=shared_name,
            children=[shared_name],
            combiner=conf.combiner,
            initializer=self.embedding_initializer(**self.init_kwargs),
            grad_reduce_by=self.grad_reduce_by,
            use_weight=False,
            device=device,
            dtype=dtype,
            trainable=conf.trainable,
            admit_hook=None if conf.admit_hook is None else AdmitHook(**conf.admit_hook),
            filter_hook=None if conf.filter_hook is None else FilterHook(**conf.filter_hook),
        )

    def get_feature_confs(self) -> list[Feature]:
        """One ``Feature`` per feature of the config, with its op chain."""
        return [self._feature(conf) for conf in self.fg_parser.emb_configs.values()]

    def _feature(self, conf) -> Feature:
        feature = Feature(conf.out_name).add_op(SelectField(conf.io_name.lower(), dim=conf.raw_dim))
        dtype, kind = conf.dtype, conf.id_transform_type
        if kind == IdTransformType.BUCKETIZE:
            feature.add_op(Bucketize(conf.boundaries))
            dtype = torch.int64
        elif kind in _HASHES:
            feature.add_op(Hash(conf.hash_type))
            dtype = torch.int64
            if conf.hash_bucket_size > 0:
                feature.add_op(Mod(conf.hash_bucket_size))
        elif kind in _MODS:
            feature.add_op(Mod(conf.hash_bucket_size))
        elif kind == IdTransformType.MASK:
            feature.add_op(Mask(conf.mask_value, dtype=dtype))
            dtype = torch.float32
        elif kind not in (IdTransformType.RAW, IdTransformType.MULTIHASH):
            raise RuntimeError(f"feature {conf.out_name!r}: unsupported id transform {kind!r}")
        if conf.seq_length and not (self._fill_seq and conf.fill_seq):
            feature.add_op(
                SequenceTruncate(
                    seq_len=conf.seq_length,
                    check_length=False,
                    truncate=True,
                    truncate_side="right",
                    n_dims=3,
                    dtype=dtype,
                )
            )
        if kind in _MULTIHASHES:
            feature.add_op(_multi_hash(conf))
        return feature


def _multi_hash(conf):
    prefix, buckets, _, _ = parse_multihash(conf.compress_strategy)
    if prefix == "yx":
        return IDMultiHash(buckets, prefix)
    if prefix == "mh":
        return StringMultiHash(buckets, prefix)
    raise NotImplementedError(f"feature {conf.out_name!r}: multi-hash type {prefix!r}")


def build_fg(
    fg_conf_path,
    mc_conf_path=None,
    mc_config=None,
    fg_parser_class=FGParser,
    mc_parser_class=MCParser,
    fg_class=FG,
    shape_manager_class=ShapeManager,
    uses_columns=None,
    lower_case=False,
    with_seq_prefix=False,
    already_hashed=False,
    hash_in_io=False,
    devel_mode=False,
    io_name_lower_case=False,
    fill_seq=False,
    **kwargs,
) -> FG:
    """The MC parser, FG parser, shape manager and ``FG`` of the configs; ``kwargs`` go to
    ``fg_class``."""
    mc_parser = mc_parser_class(
        mc_config_path=mc_conf_path,
        mc_config=mc_config,
        uses_columns=uses_columns,
        lower_case=lower_case,
        with_seq_prefix=with_seq_prefix,
    )
    fg_parser = fg_parser_class(
        fg_conf_path,
        mc_parser,
        already_hashed=already_hashed,
        hash_in_io=hash_in_io,
        lower_case=lower_case,
        io_name_lower_case=io_name_lower_case,
        devel_mode=devel_mode,
    )
    return fg_class(fg_parser, shape_manager_class(fg_parser), fill_seq=fill_seq, **kwargs)
