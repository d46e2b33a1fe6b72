"""FeatureEngine: fused against unfused, planning, deduplication, user ops, errors."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recis.backends.torch.features.engine import FuseExecutionGroup, NonFuseExecutionGroup
from recis.backends.torch.features.feature import Feature
from recis.backends.torch.features.fused import FusedOpFactory, _FusedOP
from recis.backends.torch.features.op import _OP
from recis.backends.torch.ragged import RaggedTensor
from recis.core.kernels import feature_ops
from recis.core.ragged import Ragged
from recis.features import (
    Bucketize,
    FeatureCross,
    FeatureEngine,
    Hash,
    IDMultiHash,
    Mod,
    SelectField,
    SelectFields,
    SequenceTruncate,
)


def random_ragged(rng, rows, max_length, values_fn, weighted=False, levels=1) -> RaggedTensor:
    offsets = []
    count = rows
    for _ in range(levels):
        lengths = rng.integers(0, max_length + 1, count)
        offsets.append(torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)])))
        count = int(lengths.sum())
    weight = torch.from_numpy(rng.normal(size=count).astype(np.float32)) if weighted else None
    return RaggedTensor(torch.from_numpy(values_fn(count)), offsets, weight)


def random_batch(seed: int, rows: int = 50) -> dict:
    rng = np.random.default_rng(seed)
    ids = partial(rng.integers, -(2**63), 2**63 - 1, dtype=np.int64)
    small = partial(rng.integers, -20, 20)
    strings = random_ragged(rng, rows, 3, small)
    byte_offsets = torch.from_numpy(
        np.concatenate([[0], np.cumsum(rng.integers(0, 30, len(strings.values())))])
    )
    data = rng.integers(-128, 128, int(byte_offsets[-1]), dtype=np.int8)
    return {
        "ids": random_ragged(rng, rows, 6, ids, weighted=True),
        "small": random_ragged(rng, rows, 6, small),
        "price": torch.from_numpy(rng.normal(0, 50, rows).astype(np.float32)),
        "age": torch.from_numpy(rng.integers(0, 90, (rows, 2))),
        "strings": RaggedTensor(torch.from_numpy(data), [strings.offsets()[0], byte_offsets]),
        "seq": random_ragged(rng, rows, 12, ids, weighted=True),
        "seq3": random_ragged(rng, rows, 6, small, levels=2),
        "label": torch.from_numpy(rng.integers(0, 2, rows)),
    }


def make_features() -> list[Feature]:
    def feature(name, select, *ops):
        f = Feature(name).add_op(select)
        for op in ops:
            f.add_op(op)
        return f

    pair = SelectFields([SelectField("ids"), SelectField("small")])
    return [
        *(feature(f"mod{m}", SelectField("ids"), Mod(m)) for m in (7, 1000, 2**63 + 5)),
        feature("mod_copy", SelectField("ids"), Mod(7)),
        feature("price", SelectField("price"), Bucketize([-10, 0, 10.5])),
        feature("age", SelectField("age"), Bucketize([18, 30, 60]), Mod(3)),
        feature("farm", SelectField("strings"), Hash("farm"), Mod(1000)),
        feature("murmur", SelectField("strings"), Hash("murmur")),
        feature("cross", pair, FeatureCross(), Mod(100)),
        feature("multi", SelectField("small"), IDMultiHash([10, 20, 30])),
        feature("seq", SelectField("seq"), SequenceTruncate(5, False), Mod(50)),
        feature("seq_right", SelectField("seq"), SequenceTruncate(3, False, truncate_side="right")),
        feature("seq3", SelectField("seq3"), SequenceTruncate(3, False, n_dims=3)),
        feature("uncut", SelectField("seq"), SequenceTruncate(100, truncate=False)),
    ]


def assert_same(a, b, where=""):
    assert type(a) is type(b), where
    if isinstance(a, RaggedTensor):
        torch.testing.assert_close(a.values(), b.values(), rtol=0, atol=0, msg=where)
        for x, y in zip(a.offsets(), b.offsets(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=where)
        assert (a.weight() is None) == (b.weight() is None), where
        if a.weight() is not None:
            torch.testing.assert_close(a.weight(), b.weight(), rtol=0, atol=0, msg=where)
        assert a.dense_shape == b.dense_shape, where
        assert (a.pad_info is None) == (b.pad_info is None), where
        if a.pad_info is not None:
            for x, y in zip(vars(a.pad_info).values(), vars(b.pad_info).values(), strict=True):
                torch.testing.assert_close(x, y, rtol=0, atol=0, msg=where)
    else:
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=where)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 50]))
def test_fused_and_unfused_results_are_identical(seed, rows):
    batch = random_batch(seed, rows)
    fused = FeatureEngine(make_features(), fuse=True)(batch)
    unfused = FeatureEngine(make_features(), fuse=False)(batch)
    assert list(fused) == list(unfused)
    for key in fused:
        assert_same(fused[key], unfused[key], key)
    expected = {f.name for f in make_features()} - {"multi"}
    assert set(fused) == expected | {
        "multi_multi_hash_0",
        "multi_multi_hash_1",
        "multi_multi_hash_2",
        "label",
    }
    single = {f.name: f(batch) for f in make_features()}
    for name, result in single.items():
        if name != "multi":
            assert_same(result, fused[name], name)


def test_engine_accepts_engine_columns():
    batch = random_batch(3)
    as_engine = {
        k: v.to_engine() if isinstance(v, RaggedTensor) else v.numpy() for k, v in batch.items()
    }
    torch_results = FeatureEngine(make_features())(batch)
    engine_results = FeatureEngine(make_features())(as_engine)
    for key, value in engine_results.items():
        expected = torch_results[key]
        if isinstance(value, Ragged):
            np.testing.assert_array_equal(value.values, expected.values().numpy(), err_msg=key)
            np.testing.assert_array_equal(value.offsets[-1], expected.offsets()[-1].numpy())
        else:
            np.testing.assert_array_equal(value, expected.numpy(), err_msg=key)


def counting(monkeypatch, module, name) -> list:
    calls = []
    kernel = getattr(module, name)

    def wrapper(*args):
        calls.append(len(args[0]))
        return kernel(*args)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.parametrize("fuse", [True, False])
def test_a_step_runs_all_same_kind_ops_in_one_kernel_call(monkeypatch, fuse):
    calls = counting(monkeypatch, feature_ops, "fused_mod")
    features = [
        Feature(f"f{m}").add_op(SelectField("x")).add_op(Mod(m)).add_op(Mod(m + 1))
        for m in range(2, 7)
    ]
    engine = FeatureEngine(features, fuse=fuse)
    results = engine({"x": torch.arange(20)})
    assert calls == ([5, 5] if fuse else [1] * 10)
    assert results["f4"].tolist() == [v % 4 % 5 for v in range(20)]
    assert len(engine.execution_steps) == 3
    groups = list(engine.execution_steps[1].execution_groups.values())
    kinds = [type(g) for g in groups]
    assert kinds == ([FuseExecutionGroup] if fuse else [NonFuseExecutionGroup])


def test_identical_features_run_once_and_alias():
    def make(name, mod=10):
        return Feature(name).add_op(SelectField("x")).add_op(Mod(mod))

    first, copy, multi = make("a"), make("b"), Feature("m").add_op(SelectField("x"))
    multi.add_op(IDMultiHash([5]))
    multi_copy = Feature("n").add_op(SelectField("x")).add_op(IDMultiHash([5]))
    engine = FeatureEngine([first, copy, make("a"), multi, multi_copy])
    assert [f.name for f in engine.features] == ["a", "m"]
    out = engine({"x": torch.tensor([13])})
    assert out["a"] is out["b"] and out["a"].tolist() == [3]
    assert out["m_multi_hash_0"] is out["n_multi_hash_0"]
    with pytest.raises(ValueError, match="Duplicate feature name: a"):
        FeatureEngine([make("a"), make("a", mod=11)])
    with pytest.raises(ValueError, match="has been compiled"):
        FeatureEngine([first])
    with pytest.raises(ValueError, match="has been compiled"):
        first.add_op(Mod(3))


def test_unconsumed_inputs_pass_through_when_asked():
    engine = FeatureEngine([Feature("uid").add_op(SelectField("user")).add_op(Mod(10))])
    data = {"user": torch.tensor([15]), "label": torch.tensor([1.0])}
    assert list(engine(data)) == ["uid", "label"]
    assert list(engine(data, remain_no_use_data=False)) == ["uid"]


class Shift(_OP):
    def __init__(self, by: int):
        super().__init__()
        self.by = by

    def forward(self, x):
        return x + self.by

    def _get_config(self):
        return {"by": self.by}


class FusedShift(_FusedOP):
    calls = 0

    def process(self, inputs):
        FusedShift.calls += 1
        return [x + op.by for op, x in zip(self._ops, inputs, strict=True)]


def test_user_op_with_a_registered_fused_form():
    FusedOpFactory.register(Shift, FusedShift)
    with pytest.raises(ValueError, match="already has a fused form"):
        FusedOpFactory.register(Shift, FusedShift)

    def features():
        return [Feature(f"s{k}").add_op(SelectField("x")).add_op(Shift(k)) for k in range(4)]

    data = {"x": torch.tensor([1, 2])}
    before = FusedShift.calls
    fused = FeatureEngine(features())(data)
    assert FusedShift.calls == before + 1
    unfused = FeatureEngine(features(), fuse=False)(data)
    assert FusedShift.calls == before + 1
    for key in fused:
        assert_same(fused[key], unfused[key], key)
    assert fused["s3"].tolist() == [4, 5]


BAD_INPUTS = [
    # (feature, bad input, error type, message fragment)
    (lambda: Mod(10), torch.tensor([1.5]), TypeError, r"op Mod\(mod=10\): .*expected int64"),
    (lambda: SequenceTruncate(2), None, AssertionError, r"op SequenceTruncate\(.*seq_len=2"),
    (lambda: Hash("farm"), None, TypeError, r"op Hash\(hash_type='farm'\): .*int8 or uint8"),
    (
        lambda: IDMultiHash([3]),
        torch.tensor([1], dtype=torch.int32),
        TypeError,
        r"op IDMultiHash\(num_buckets=\[3\].*expected int64",
    ),
]


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("case", range(len(BAD_INPUTS)))
def test_errors_name_the_feature_and_op(fuse, case):
    make_op, bad, error, message = BAD_INPUTS[case]
    if fuse and error is AssertionError:
        return  # fused truncation does not check lengths: see the test below
    good = RaggedTensor(torch.tensor([1, 2]), [torch.tensor([0, 1, 2])])
    bad = RaggedTensor(torch.tensor([1, 2, 3]), [torch.tensor([0, 3])]) if bad is None else bad
    features = [
        Feature("good").add_op(SelectField("good")).add_op(make_op()),
        Feature("bad").add_op(SelectField("bad")).add_op(make_op()),
    ]
    if isinstance(features[0].ops[1], Hash):
        strings = RaggedTensor(torch.tensor([1, 2], dtype=torch.int8), [torch.tensor([0, 1, 2])])
        good = RaggedTensor(strings.values(), [torch.tensor([0, 1]), torch.tensor([0, 2])])
    with pytest.raises(error, match=f"feature 'bad', {message}"):
        FeatureEngine(features, fuse=fuse)({"good": good, "bad": bad})


def test_fused_truncation_truncates_rows_that_check_length_would_refuse():
    seq = RaggedTensor(torch.tensor([1, 2, 3, 4]), [torch.tensor([0, 3, 4])])

    def feature():
        return Feature("seq").add_op(SelectField("seq")).add_op(SequenceTruncate(2))

    out = FeatureEngine([feature()])({"seq": seq})["seq"]
    assert out.values().tolist() == [2, 3, 4] and out.offsets()[0].tolist() == [0, 2, 3]
    with pytest.raises(AssertionError, match=r"feature 'seq', .*length 3 .*seq_len=2"):
        FeatureEngine([feature()], fuse=False)({"seq": seq})


@pytest.mark.parametrize("fuse", [True, False])
def test_missing_field_and_unknown_hash_type_name_the_feature(fuse):
    engine = FeatureEngine([Feature("f").add_op(SelectField("x")).add_op(Mod(3))], fuse=fuse)
    with pytest.raises(KeyError, match=r"feature 'f', op SelectField\(name='x'.*no field 'x'"):
        engine({"y": torch.tensor([1])})
    hashing = Hash("farm")
    strings = RaggedTensor(torch.tensor([1], dtype=torch.int8), [torch.tensor([0, 1])])
    engine = FeatureEngine([Feature("h").add_op(SelectField("s")).add_op(hashing)], fuse=fuse)
    hashing.hash_type = "md5"
    with pytest.raises(ValueError, match=r"feature 'h', op Hash\(hash_type='md5'\): hash_type"):
        engine({"s": strings})
