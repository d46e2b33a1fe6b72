"""``FGParser``: an FG JSON config read into per-feature reader, transform and embedding settings.

The FG config lists features (``feature_name``, ``value_type``, ``gen_key_type`` — how ids are
made: ``idle``, ``boundary``, ``hash``, ``mask``, ``multihash`` —, ``gen_val_type`` — how they are
embedded: ``idle``, ``lookup``, ``multihash_lookup`` — and table options) and sequences
(``sequence_name``, ``sequence_length`` and sub-``features``, named ``<sequence>_<feature>``).
Only the features the MC (:class:`~recis.backends.torch.fg.mc_parser.MCParser`) uses are kept.

Strings are hashed by a feature op (default), while reading (``hash_in_io``), or were hashed
before (``already_hashed``: then only the modulo remains). A feature with ``from_feature`` reads
that feature's column.

>>> import json, tempfile
>>> from recis.backends.torch.fg.mc_parser import MCParser
>>> fg = {"features": [{"feature_name": "city", "feature_type": "id_feature",
...        "value_type": "String", "hash_bucket_size": 100, "embedding_dimension": 8,
...        "gen_key_type": "hash", "gen_val_type": "lookup"}]}
>>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
...     json.dump(fg, f)
>>> parser = FGParser(f.name, MCParser(mc_config={"user": ["city"]}))
>>> conf = parser.emb_configs["city"]
>>> conf.id_transform_type.name, conf.hash_bucket_size, parser.io_configs["city"].trans_int
('HASH', 100, True)
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum

import torch

from recis.backends.torch.fg.utils import dict_lower_case
from recis.io.dataset_config import FeatureIOConf
from recis.utils.logger import Logger

logger = Logger(__name__)

HASH_TYPE_MAP = {"farmhash": "farm", "murmur": "murmur", "ev_hash": "ev_farm"}
VALUE_TYPE_MAP = {"string": torch.int8, "double": torch.float32, "integer": torch.int64}
EMB_TYPE_MAP = {
    "float": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "int8": torch.int8,
}


class IdTransformType(IntEnum):
    """How a feature's ids are made: as read, bucketized, hashed, taken modulo, masked, or
    multi-hashed (after a hash or a modulo)."""

    RAW = 1
    BUCKETIZE = 2
    HASH = 3
    MOD = 4
    MASK = 5
    MULTIHASH = 6
    HASH_MULTIHASH = 7
    MOD_MULTIHASH = 8


class EmbTransformType(IntEnum):
    """How a feature reaches the model: raw values, an embedding lookup, or multi-hash lookups."""

    RAW = 1
    LOOKUP = 2
    MULTIHASH_LOOKUP = 3


@dataclass
class FGConf:
    """One feature of the FG config, as written there (names resolved, defaults filled)."""

    name: str
    is_sparse: bool
    gen_key_type: str
    gen_value_type: str
    need_hash: bool = False
    hash_type: str = "farm"
    hash_bucket_size: int = 0
    is_seq: bool = False
    seq_length: int = 0
    value_dimension: int = 1
    combiner: str = "mean"
    embedding_dim: int | None = None
    value_type: str | None = None
    boundaries: list[float] | None = None
    mask_value: list[str] | None = None
    compress_strategy: str | None = None
    shared_name: str | None = None
    from_feature: str | None = None
    emb_device: str | None = None
    emb_type: str | None = None
    trainable: bool = True
    admit_hook: dict | None = None
    filter_hook: dict | None = None


@dataclass
class FeatureEmbConf:
    """What the model does with one feature: the column it reads (``io_name``), the transforms,
    and its table options."""

    io_name: str
    out_name: str
    id_transform_type: IdTransformType
    emb_transform_type: EmbTransformType
    hash_type: str = "farm"
    hash_bucket_size: int = 0
    seq_length: int = 0
    raw_dim: int | None = None
    combiner: str = "mean"
    embedding_dim: int | None = None
    dtype: torch.dtype | None = None
    boundaries: list[float] | None = None
    mask_value: list[str] | None = None
    compress_strategy: str | None = None
    shared_name: str | None = None
    emb_device: str | None = None
    emb_type: torch.dtype | None = None
    trainable: bool = True
    admit_hook: dict | None = None
    filter_hook: dict | None = None
    fill_seq: bool = False


class FGParser:
    """The FG config at ``conf_file_path``, filtered by ``mc_parser`` (see the module docstring).

    ``devel_mode`` turns the error for a string feature with ``gen_key_type`` ``idle`` into a
    warning; ``io_name_lower_case`` lower-cases the column names read.
    """

    def __init__(
        self,
        conf_file_path: str,
        mc_parser,
        already_hashed: bool = False,
        hash_in_io: bool = False,
        lower_case: bool = False,
        devel_mode: bool = False,
        io_name_lower_case: bool = False,
    ) -> None:
        self.fg_path = conf_file_path
        self.mc_parser = mc_parser
        self.already_hashed = already_hashed
        self.hash_in_io = hash_in_io
        self.lower_case = lower_case
        self.devel_mode = devel_mode
        self.io_name_lower_case = io_name_lower_case
        self.multihash_conf_: dict[str, str] = {}
        self.fg_conf = self._used_features(self.get_fg_conf()["features"])
        self.parsed_conf_ = [conf for entry in self.fg_conf for conf in self._parse_entry(entry)]
        self.io_conf_ = self._io_confs()
        self.emb_conf_ = self._emb_confs()

    @property
    def feature_blocks(self) -> dict:
        return self.mc_parser.feature_blocks

    @property
    def seq_block_names(self) -> list:
        return self.mc_parser.seq_block_names

    @property
    def io_configs(self) -> OrderedDict:
        """Column name → :class:`~recis.io.dataset_config.FeatureIOConf`."""
        return self.io_conf_

    @property
    def emb_configs(self) -> OrderedDict:
        """Feature name → :class:`FeatureEmbConf`."""
        return self.emb_conf_

    @property
    def multihash_conf(self) -> dict:
        """Feature name → its multi-hash strategy string."""
        return self.multihash_conf_

    def get_mc_conf(self) -> dict:
        return self.mc_parser.mc_conf

    def get_fg_conf(self) -> dict:
        """The FG config as read from the file (lower-cased if asked)."""
        with open(self.fg_path) as f:
            return dict_lower_case(json.load(f), self.lower_case)

    def get_seq_len(self, fea_name: str) -> int:
        """The sequence length of feature ``fea_name`` (0 for a feature outside a sequence)."""
        if fea_name not in self.emb_conf_:
            raise RuntimeError(f"feature {fea_name!r} is not in the FG config used by the MC")
        return self.emb_conf_[fea_name].seq_length

    def _used_features(self, entries: list) -> list:
        sequences = {e["sequence_name"]: e["feature_name"] for e in entries if _is_seq(e)}
        self.mc_parser.init_blocks(sequences)
        used = []
        for entry in entries:
            if not _is_seq(entry):
                if self.mc_parser.has_fea(entry["feature_name"]):
                    used.append(entry)
            elif self.mc_parser.has_fea(entry["sequence_name"]):
                used.append(self._used_sub_features(entry))
        return used

    def _used_sub_features(self, sequence: dict) -> dict:
        kept = copy.deepcopy(sequence)
        name = sequence["sequence_name"]
        subs = sequence["features"]
        kept["features"] = [s for s in subs if self.mc_parser.has_seq_fea(name, s["feature_name"])]
        return kept

    def _parse_entry(self, entry: dict) -> list[FGConf]:
        if not _is_seq(entry):
            return [self._parse_feature(entry)]
        length, prefix = entry["sequence_length"], entry["sequence_name"]
        return [self._parse_feature(sub, length, prefix) for sub in entry["features"]]

    def _parse_feature(self, conf: dict, seq_len: int = 0, seq_prefix: str = "") -> FGConf:
        raw_name = _required(conf, "feature_name", "?")
        name = f"{seq_prefix}_{raw_name}" if seq_len > 0 else raw_name
        gen_key_type, hash_type, bucket = _key_generation(conf, name)
        boundaries = conf.get("boundaries")
        strategy = conf.get("compress_strategy")
        if strategy is not None:
            self.multihash_conf_[name] = strategy
        value_type = _required(conf, "value_type", name).lower()
        return FGConf(
            name=name,
            is_sparse=_required(conf, "feature_type", name).lower() != "raw_feature",
            gen_key_type=gen_key_type,
            gen_value_type=_required(conf, "gen_val_type", name),
            need_hash=value_type == "string",
            hash_type=hash_type,
            hash_bucket_size=bucket,
            is_seq=seq_len > 0,
            seq_length=seq_len,
            value_dimension=conf.get("value_dimension", 1),
            combiner=conf.get("combiner", "mean"),
            embedding_dim=conf.get("embedding_dimension"),
            value_type=value_type,
            boundaries=None if boundaries is None else [float(b) for b in boundaries.split(",")],
            mask_value=str(conf.get("mask_out", "0")).split(";"),
            compress_strategy=strategy,
            shared_name=conf.get("shared_name", raw_name),
            from_feature=conf.get("from_feature"),
            emb_device=conf.get("emb_device"),
            emb_type=conf.get("emb_type"),
            trainable=conf.get("trainable", True),
            admit_hook=conf.get("admit_hook"),
            filter_hook=conf.get("filter_hook"),
        )

    def _id_transform(self, conf: FGConf) -> IdTransformType:
        kind = conf.gen_key_type
        if kind == "idle":
            return IdTransformType.RAW
        if kind == "boundary":
            return IdTransformType.BUCKETIZE
        if kind == "hash":
            if self.already_hashed:
                return IdTransformType.MOD if conf.hash_bucket_size > 0 else IdTransformType.RAW
            return IdTransformType.RAW if self.hash_in_io else IdTransformType.HASH
        if kind == "mask":
            if self.already_hashed or self.hash_in_io:
                raise ValueError(
                    f"feature {conf.name!r}: gen_key_type 'mask' needs the strings, "
                    "not already_hashed or hash_in_io"
                )
            return IdTransformType.MASK
        if kind == "multihash":
            if self.already_hashed:
                with_mod = conf.hash_bucket_size > 0
                return IdTransformType.MOD_MULTIHASH if with_mod else IdTransformType.MULTIHASH
            return IdTransformType.MULTIHASH if self.hash_in_io else IdTransformType.HASH_MULTIHASH
        raise RuntimeError(f"feature {conf.name!r}: unsupported gen_key_type {kind!r}")

    def _dtype_dim(self, conf: FGConf) -> tuple[torch.dtype, int | None]:
        """The dtype of the column read and its fixed dimension (None for strings)."""
        if conf.value_type not in VALUE_TYPE_MAP:
            raise ValueError(
                f"feature {conf.name!r}: value_type must be one of {sorted(VALUE_TYPE_MAP)}"
            )
        dtype, dim = VALUE_TYPE_MAP[conf.value_type], conf.value_dimension
        if conf.value_type != "string":
            return dtype, dim
        if self.already_hashed or self.hash_in_io:
            dtype = torch.int64
        if conf.gen_key_type == "idle":
            message = f"feature {conf.name!r}: a string feature with gen_key_type 'idle'"
            if not self.devel_mode:
                raise NotImplementedError(f"{message} is not supported")
            logger.warning(f"{message} is read as it is")
        keeps_dim = conf.gen_key_type in ("idle", "mask") and not (
            conf.gen_key_type == "mask" and (self.already_hashed or self.hash_in_io)
        )
        return dtype, dim if keeps_dim else None

    def _column_name(self, conf: FGConf) -> str:
        name = conf.name if conf.from_feature is None else conf.from_feature
        return name.lower() if self.io_name_lower_case else name

    def _emb_confs(self) -> OrderedDict:
        confs = OrderedDict()
        for conf in self.parsed_conf_:
            dtype, dim = self._dtype_dim(conf)
            confs[conf.name] = FeatureEmbConf(
                io_name=self._column_name(conf),
                out_name=conf.name,
                id_transform_type=self._id_transform(conf),
                emb_transform_type=_emb_transform(conf),
                hash_type=conf.hash_type,
                hash_bucket_size=conf.hash_bucket_size,
                seq_length=conf.seq_length,
                raw_dim=dim,
                combiner=conf.combiner,
                embedding_dim=conf.embedding_dim,
                dtype=dtype,
                boundaries=conf.boundaries,
                mask_value=conf.mask_value,
                compress_strategy=conf.compress_strategy,
                shared_name=conf.shared_name,
                emb_device=conf.emb_device,
                emb_type=None if conf.emb_type is None else EMB_TYPE_MAP[conf.emb_type],
                trainable=conf.trainable,
                admit_hook=conf.admit_hook,
                filter_hook=conf.filter_hook,
                fill_seq=conf.seq_length > 0 and dtype.is_floating_point,
            )
        return confs

    def _io_confs(self) -> OrderedDict:
        confs = OrderedDict()
        for conf in self.parsed_conf_:
            name = self._column_name(conf)
            hash_type, trans_int, bucket = self._io_hashing(conf)
            seq_length = conf.seq_length or None
            dtype, _ = self._dtype_dim(conf)
            confs[name] = FeatureIOConf(
                name=name,
                varlen=conf.is_sparse or conf.is_seq,
                hash_type=hash_type,
                hash_bucket_size=bucket,
                trans_int=trans_int,
                dim=conf.value_dimension,
                seq_length=seq_length,
                fill_seq=seq_length is not None and dtype.is_floating_point,
            )
        return confs

    def _io_hashing(self, conf: FGConf) -> tuple[str | None, bool, int]:
        """``(hash_type, trans_int, hash_bucket_size)`` of the reader for ``conf``."""
        if self.already_hashed:
            return None, False, 0
        if conf.need_hash and not self.hash_in_io:
            return None, True, 0
        return (conf.hash_type if conf.need_hash else None), False, conf.hash_bucket_size


def _is_seq(entry: dict) -> bool:
    return "sequence_name" in entry


def _required(conf: dict, key: str, name: str):
    if key not in conf:
        raise KeyError(f"FG feature {name!r} has no {key!r}")
    return conf[key]


def _key_generation(conf: dict, name: str) -> tuple[str, str, int]:
    """``(gen_key_type, hash_type, hash_bucket_size)``, with RecIS's ``ev_hash`` kinds mapped to a
    hash of type ``ev_farm`` (``ev_hash``: no modulo; ``ev_hash_mod``: with it)."""
    kind = _required(conf, "gen_key_type", name)
    hash_type = conf.get("hash_type", "farmhash")
    bucket = conf.get("hash_bucket_size", 0)
    if kind in ("ev_hash", "ev_hash_mod"):
        hash_type, bucket = "ev_hash", 0 if kind == "ev_hash" else bucket
        kind = "hash"
    if hash_type not in HASH_TYPE_MAP:
        raise ValueError(f"feature {name!r}: hash_type must be one of {sorted(HASH_TYPE_MAP)}")
    return kind, HASH_TYPE_MAP[hash_type], bucket


def _emb_transform(conf: FGConf) -> EmbTransformType:
    kinds = {
        "lookup": EmbTransformType.LOOKUP,
        "multihash_lookup": EmbTransformType.MULTIHASH_LOOKUP,
        "idle": EmbTransformType.RAW,
    }
    if conf.gen_value_type not in kinds:
        raise RuntimeError(
            f"feature {conf.name!r}: unsupported gen_val_type {conf.gen_value_type!r}"
        )
    return kinds[conf.gen_value_type]
