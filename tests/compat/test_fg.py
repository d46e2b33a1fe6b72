"""RecIS's feature generator (``recis.fg``) on a small FG config and model config (MC)."""

from __future__ import annotations

import json

import pytest
import torch

from recis.fg.feature_generator import FG, build_fg
from recis.fg.fg_parser import EmbTransformType, FGParser, IdTransformType
from recis.fg.mc_parser import MCParser
from recis.fg.shape_manager import ShapeManager
from recis.fg.utils import parse_multihash
from recis.nn.functional.hash_ops import farmhash
from recis.nn.initializers import UniformInitializer
from recis.ragged.tensor import RaggedTensor


def _string_feature(name, bucket, dim=8, **extra):
    return {"feature_name": name, "feature_type": "id_feature", "value_type": "String",
            "hash_bucket_size": bucket, "embedding_dimension": dim, "gen_key_type": "hash",
            "gen_val_type": "lookup", **extra}  # fmt: skip


FG_CONF = {
    "features": [
        _string_feature("City", 100),
        {"feature_name": "price", "feature_type": "raw_feature", "value_type": "Double",
         "boundaries": "10,20", "embedding_dimension": 4, "gen_key_type": "boundary",
         "gen_val_type": "lookup"},
        {"feature_name": "score", "feature_type": "raw_feature", "value_type": "Double",
         "value_dimension": 3, "gen_key_type": "idle", "gen_val_type": "idle"},
        _string_feature("tags", 50, compress_strategy="yx:7,11:concat:0",
                        gen_key_type="multihash", gen_val_type="multihash_lookup"),
        _string_feature("unused", 10),
        {"sequence_name": "clicks", "feature_name": "clicks", "sequence_length": 2,
         "features": [
             _string_feature("item", 1000, dim=16),
             {**_string_feature("item_raw", 1000), "from_feature": "clicks_item",
              "mask_out": "0;-1", "gen_key_type": "mask", "gen_val_type": "idle"},
         ]},
        {"sequence_name": "views", "feature_name": "views", "sequence_length": 3,
         "features": [_string_feature("item", 10)]},
    ]
}  # fmt: skip
MC_CONF = {
    "User": ["city", "price", "tags"],
    "dense": ["score"],
    "clicks": ["item"],
    "raw_clicks": ["clicks_item_raw"],
}


@pytest.fixture
def fg_path(tmp_path):
    path = tmp_path / "fg.json"
    path.write_text(json.dumps(FG_CONF))
    return str(path)


def _parser(fg_path, mc=None, **kwargs):
    return FGParser(fg_path, mc or MCParser(mc_config=MC_CONF, lower_case=True), lower_case=True,
                    **kwargs)  # fmt: skip


def test_mc_parser_names_sequence_features_after_their_block():
    mc = MCParser(mc_config=MC_CONF, lower_case=True)
    mc.init_blocks({"clicks": "clicks", "views": "views"})
    assert mc.feature_blocks["clicks"] == ["clicks_item"]
    assert mc.feature_blocks["user"] == ["city", "price", "tags"]
    assert mc.seq_block_names == ["clicks"]
    assert mc.has_fea("clicks") and mc.has_fea("city") and mc.has_fea("clicks_item_raw")
    assert not mc.has_fea("views") and not mc.has_fea("item")
    assert mc.has_seq_fea("clicks", "item_raw") and not mc.has_seq_fea("views", "item")


def test_mc_parser_options_and_errors(tmp_path):
    path = tmp_path / "mc.json"
    path.write_text(json.dumps(MC_CONF))
    assert "User" in MCParser(mc_config_path=str(path)).mc_conf
    selected = MCParser(mc_config_path=str(path), uses_columns=["dense"], lower_case=True)
    assert list(selected.mc_conf) == ["dense"]
    with pytest.raises(KeyError, match="nothing"):
        MCParser(mc_config=MC_CONF, uses_columns=["nothing"])
    with pytest.raises(ValueError, match="exactly one"):
        MCParser()
    with pytest.raises(RuntimeError, match="init_blocks"):
        MCParser(mc_config=MC_CONF).feature_blocks  # noqa: B018


def test_fg_parser_keeps_the_features_the_mc_uses(fg_path):
    parser = _parser(fg_path)
    names = [conf.name for conf in parser.parsed_conf_]
    assert names == ["city", "price", "score", "tags", "clicks_item", "clicks_item_raw"]
    raw = parser.parsed_conf_[-1]
    assert raw.from_feature == "clicks_item" and raw.mask_value == ["0", "-1"]
    assert raw.shared_name == "item_raw" and raw.seq_length == 2
    assert parser.parsed_conf_[1].boundaries == [10.0, 20.0]
    assert parser.multihash_conf == {"tags": "yx:7,11:concat:0"}
    kinds = {name: conf.emb_transform_type for name, conf in parser.emb_configs.items()}
    assert kinds["score"] == EmbTransformType.RAW and kinds["city"] == EmbTransformType.LOOKUP
    assert kinds["tags"] == EmbTransformType.MULTIHASH_LOOKUP
    assert parser.get_seq_len("clicks_item_raw") == 2 and parser.get_seq_len("city") == 0
    with pytest.raises(RuntimeError, match="unused"):
        parser.get_seq_len("unused")


@pytest.mark.parametrize(
    ("options", "city_io", "city_transform", "tags_transform"),
    [
        ({}, (None, 0, True), IdTransformType.HASH, IdTransformType.HASH_MULTIHASH),
        ({"hash_in_io": True}, ("farm", 100, False), IdTransformType.RAW,
         IdTransformType.MULTIHASH),
        ({"already_hashed": True}, (None, 0, False), IdTransformType.MOD,
         IdTransformType.MOD_MULTIHASH),
    ],
)  # fmt: skip
def test_fg_parser_hashes_strings_where_asked(fg_path, options, city_io, city_transform,
                                              tags_transform):  # fmt: skip
    mc = MCParser(mc_config={k: v for k, v in MC_CONF.items() if k != "raw_clicks"})
    parser = _parser(fg_path, mc, **options)
    city = parser.io_configs["city"]
    assert (city.hash_type, city.hash_bucket_size, city.trans_int) == city_io
    assert city.varlen and parser.io_configs["price"].varlen is False
    assert parser.emb_configs["city"].id_transform_type == city_transform
    assert parser.emb_configs["tags"].id_transform_type == tags_transform
    string_dtype = torch.int8 if not options else torch.int64
    assert parser.emb_configs["city"].dtype == string_dtype
    clicks = parser.io_configs["clicks_item"]
    assert clicks.seq_length == 2 and clicks.fill_seq is False


def test_fg_parser_rejects_a_mask_on_hashed_ids_and_string_raw_values(fg_path, tmp_path):
    with pytest.raises(ValueError, match="clicks_item_raw"):
        _parser(fg_path, hash_in_io=True)
    conf = {"features": [{**_string_feature("word", 0), "gen_key_type": "idle"}]}
    path = tmp_path / "idle.json"
    path.write_text(json.dumps(conf))
    mc = MCParser(mc_config={"b": ["word"]})
    with pytest.raises(NotImplementedError, match="word"):
        FGParser(str(path), mc)
    assert FGParser(str(path), mc, devel_mode=True).emb_configs["word"].raw_dim == 1


def test_shape_manager_concatenates_blocks(fg_path):
    shapes = ShapeManager(_parser(fg_path))
    assert shapes.get_feature_shape("tags") == [-1, 16]  # 2 buckets × 8, concatenated
    assert shapes.get_block_shape("user") == [-1, 8 + 4 + 16]
    assert shapes.get_shape("dense") == [-1, 3]
    assert shapes.get_shape("clicks") == [-1, 2, 16]
    assert shapes.get_shape("raw_clicks") == [-1, 2, 1]
    shapes.regist_shape_context("tower")
    shapes.set_context_shape("tower", "out", [-1, 1])
    assert shapes.get_context_shapes("tower") == {"out": [-1, 1]}
    with pytest.raises(RuntimeError, match="already"):
        shapes.regist_shape_context("tower")
    with pytest.raises(RuntimeError, match="nowhere"):
        shapes.get_block_shape("nowhere")


def test_shape_manager_rejects_a_block_that_cannot_concatenate(fg_path):
    mc = MCParser(mc_config={**MC_CONF, "mixed": ["city", "clicks_item_raw"]}, lower_case=True)
    with pytest.raises(RuntimeError, match="mixed"):
        ShapeManager(_parser(fg_path, mc))


def _strings(words, offsets):
    data = b"".join(w.encode() for w in words)
    splits = torch.tensor([0, *torch.tensor([len(w) for w in words]).cumsum(0).tolist()])
    return torch.tensor(list(data), dtype=torch.int8), [*offsets, splits]


def _farm(words, bucket):
    values, (splits,) = _strings(words, [])
    hashed = farmhash([values], [splits])[0]
    return [h % bucket for h in (int(x) % 2**64 for x in hashed)]


def test_fg_feature_ops_compute_recis_transforms(fg_path):
    fg = FG(_parser(fg_path), ShapeManager(_parser(fg_path)), emb_default_device="cpu")
    features = {f.name: f for f in fg.get_feature_confs()}
    values, offsets = _strings(["bj", "sh", "bj"], [torch.tensor([0, 2, 3])])
    city = features["city"]({"city": RaggedTensor(values, offsets)})
    assert city.values().tolist() == _farm(["bj", "sh", "bj"], 100)
    assert city.offsets()[0].tolist() == [0, 2, 3]
    price = features["price"]({"price": torch.tensor([[5.0], [10.0], [25.0]])})
    assert price.tolist() == [[0], [1], [2]]
    seq_values, seq_offsets = _strings(
        ["a", "0", "c", "-1"], [torch.tensor([0, 3, 4]), torch.tensor([0, 1, 2, 3, 4])]
    )
    clicks = RaggedTensor(seq_values, seq_offsets)
    item = features["clicks_item"]({"clicks_item": clicks})
    # each sequence keeps its first two lists and is padded with empty ones to two
    assert [o.tolist() for o in item.offsets()] == [[0, 2, 4], [0, 1, 2, 3, 3]]
    assert item.values().tolist() == _farm(["a", "0", "-1"], 1000)
    mask = features["clicks_item_raw"]({"clicks_item": clicks})
    assert mask.values().tolist() == [1.0, 0.0, 0.0]
    assert [o.tolist() for o in mask.offsets()] == [[0, 2, 4], [0, 1, 2, 3, 3]]
    tags = features["tags"]({"tags": RaggedTensor(*_strings(["x"], [torch.tensor([0, 1])]))})
    (hashed,) = _farm(["x"], 50)
    expected = [((hashed * m) % p) % b for m, p, b in ((1, 199, 7), (3, 509, 11))]
    assert [tags[f"yx_{k}"].values().item() for k in range(2)] == expected


def test_fg_embedding_options(fg_path):
    fg = FG(_parser(fg_path), ShapeManager(_parser(fg_path)), emb_default_device="cpu")
    options = fg.get_emb_confs()
    assert list(options) == ["city", "price", "tags_yx_0", "tags_yx_1", "clicks_item"]
    city = options["city"]
    assert (city.embedding_dim, city.shared_name, city.combiner, city.use_weight) == (
        8, "city", "mean", False)  # fmt: skip
    assert city.device == torch.device("cpu") and city.dtype == torch.float32
    assert isinstance(city.initializer, UniformInitializer)
    assert options["tags_yx_1"].shared_name == "tags-yx2"
    assert options["clicks_item"].embedding_dim == 16


def test_fg_declares_columns_labels_and_ids(fg_path):
    calls = []

    class Dataset:
        def varlen_feature(self, name, hash_type=None, hash_bucket=0, trans_int8=False):
            calls.append(("varlen", name, hash_type, hash_bucket, trans_int8))

        def fixedlen_feature(self, name, default_value):
            calls.append(("fixed", name, default_value))

    fg = FG(_parser(fg_path, hash_in_io=False), ShapeManager(_parser(fg_path)))
    fg.add_label("click", dim=2, default_value=1.0)
    fg.add_id("request_id")
    fg.add_io_features(Dataset())
    assert ("varlen", "city", None, 0, True) in calls
    assert ("fixed", "score", [0.0, 0.0, 0.0]) in calls
    assert calls[-2:] == [("fixed", "click", [1.0, 1.0]), ("varlen", "request_id", None, 0, False)]
    assert fg.labels == ["click"] and fg.sample_ids == ["request_id"]


def test_build_fg_and_fg_options(fg_path, tmp_path):
    mc_path = tmp_path / "mc.json"
    mc_path.write_text(json.dumps(MC_CONF))
    fg = build_fg(fg_path, mc_conf_path=str(mc_path), lower_case=True, initializer="normal",
                  emb_default_device="cpu")  # fmt: skip
    assert fg.get_block_seq_len("clicks") == 2 and fg.is_seq_block("clicks")
    assert not fg.is_seq_block("user")
    assert fg.get_emb_confs()["city"].initializer.std == 1e-5
    with pytest.raises(ValueError, match="emb_default_device"):
        build_fg(fg_path, mc_config=MC_CONF, lower_case=True, emb_default_device="tpu")
    with pytest.raises(NotImplementedError, match="bucket_emb"):
        build_fg(fg_path, mc_config=MC_CONF, lower_case=True, emb_default_class="bucket_emb")


def test_parse_multihash():
    assert parse_multihash("mh:3,4,5:mean:1") == ("mh", [3, 4, 5], "mean", True)
    with pytest.raises(ValueError, match="prefix"):
        parse_multihash("yx:3")


def test_fg_reads_orc_and_feeds_the_feature_and_embedding_engines(tmp_path):
    import pyarrow as pa
    import pyarrow.orc as orc

    from recis.features import FeatureEngine
    from recis.io import OrcDataset
    from recis.nn import EmbeddingEngine

    clicks = {**FG_CONF["features"][5], "features": [_string_feature("item", 1000, 16)]}
    conf = {"features": [*FG_CONF["features"][:2], clicks]}
    (tmp_path / "fg.json").write_text(json.dumps(conf))
    (tmp_path / "data").mkdir()
    strings, nested = pa.list_(pa.string()), pa.list_(pa.list_(pa.string()))
    table = pa.table({
        "city": pa.array([["bj"], ["sh", "bj"], [], ["gz"]], strings),
        "price": pa.array([[5.0], [10.0], [25.0], [15.0]], pa.list_(pa.float64())),
        "clicks_item": pa.array([[["a"], ["b"], ["c"]], [["d"]], [], [["e"], ["f"]]], nested),
        "label": pa.array([[1.0], [0.0], [1.0], [0.0]], pa.list_(pa.float64())),
    })  # fmt: skip
    orc.write_table(table, str(tmp_path / "data" / "part.orc"))
    mc = {"User": ["City", "price"], "clicks": ["item"]}
    fg = build_fg(
        str(tmp_path / "fg.json"), mc_config=mc, lower_case=True, emb_default_device="cpu"
    )
    fg.add_label("label")
    dataset = OrcDataset(4, read_threads_num=1, transform_fn=[lambda tables: tables[0]])
    dataset.add_path(str(tmp_path / "data"))
    fg.add_io_features(dataset)
    features = FeatureEngine(fg.get_feature_confs())(next(iter(dataset)))
    assert features["price"].reshape(-1).tolist() == [0, 1, 2, 1]
    assert features["city"].values().tolist() == _farm(["bj", "sh", "bj", "gz"], 100)
    out = EmbeddingEngine(fg.get_emb_confs())(features)
    user = torch.cat([out["city"], out["price"]], dim=-1)
    assert [-1, *user.shape[1:]] == fg.get_shape("user")
    assert [-1, *out["clicks_item"].shape[1:]] == fg.get_shape("clicks") == [-1, 2, 16]
    assert out["clicks_item"][2].abs().sum() == 0  # no clicks: padded with zeros
