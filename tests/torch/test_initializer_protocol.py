"""RecIS's initializer protocol (set_shape, set_dtype, build, generate) over per-id values."""

import json
import math

import numpy as np
import pytest
import torch

from recis.core import initializers as core
from recis.nn import initializers
from recis.nn.modules.hashtable import HashTable


def built(init, shape, dtype=torch.float32):
    init.set_shape(shape)
    init.set_dtype(dtype)
    init.build()
    return init


def test_generate_fills_the_shape_with_the_per_id_values():
    init = built(initializers.NormalInitializer(std=0.5), [6, 4])
    tensor = init.generate()
    want = core.NormalInitializer(std=0.5)(np.arange(6), 4, 0, "generate")
    assert tensor.shape == (6, 4) and torch.equal(tensor, torch.from_numpy(want))
    assert torch.equal(init.generate(), tensor)  # deterministic


def test_generate_casts_to_the_dtype_and_reshapes():
    tensor = built(initializers.ConstantInitializer(init_val=0.25), [2, 3, 2], torch.bfloat16)
    assert tensor.generate().dtype == torch.bfloat16
    assert tensor.generate().shape == (2, 3, 2)
    assert tensor.generate().float().unique().tolist() == [0.25]


def test_generator_seed_changes_the_values():
    one = built(initializers.UniformInitializer(-1, 1), [3, 3]).generate()
    seeded = initializers.UniformInitializer(-1, 1, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(built(seeded, [3, 3]).generate(), one)
    assert one.min() >= -1 and one.max() <= 1


def test_xavier_fans_come_from_the_shape():
    rows, dim = 400, 100
    values = built(initializers.XavierUniformInitializer(), [rows, dim]).generate()
    bound = math.sqrt(6.0 / (rows + dim))
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.9 * bound


def test_kaiming_normal_takes_shape_and_dtype_first():
    init = initializers.KaimingNormalInitializer([50, 8], torch.float64, nonlinearity="relu")
    init.build()
    values = init.generate()
    assert values.dtype == torch.float64 and values.shape == (50, 8)
    assert abs(values.std().item() - math.sqrt(2.0 / 8)) < 0.1


def test_build_twice_and_generate_before_build_raise():
    init = initializers.TruncNormalInitializer(std=0.1)
    with pytest.raises(RuntimeError, match="build"):
        init.generate()
    with pytest.raises(RuntimeError, match="set_shape"):
        init.build()
    built(init, [2, 2])
    with pytest.raises(RuntimeError, match="rebuild"):
        init.build()


def test_str_is_json_with_shape_dtype_and_fields():
    init = built(initializers.TruncNormalInitializer(std=0.1, a=-0.2, b=0.2), [4, 2])
    info = json.loads(str(init))
    assert info["type"] == "TruncNormalInitializer"
    assert (info["std"], info["a"], info["shape"], info["dtype"]) == (
        0.1,
        -0.2,
        "[4, 2]",
        "torch.float32",
    )


def test_hashtable_builds_the_initializer_with_its_block_shape():
    init = initializers.NormalInitializer(std=0.1)
    table = HashTable([-1, 4], block_size=8, dtype=torch.float16, initializer=init, name="blk")
    assert init.impl() is not None and table.initializer() is init
    assert init.generate().shape == (8, 4) and init.generate().dtype == torch.float16
    other = HashTable([-1, 4], initializer=init, name="blk2")  # shared: not rebuilt
    assert other.initializer() is init


def test_table_rows_are_unchanged_by_the_protocol():
    init = initializers.XavierNormalInitializer()
    table = HashTable([-1, 4], initializer=init, name="xavier_rows")
    want = core.XavierNormalInitializer()(np.array([3, 9]), 4, 0, "xavier_rows")
    assert torch.equal(table(torch.tensor([3, 9])), torch.from_numpy(want))


def test_a_foreign_initializer_is_refused_by_name():
    class Custom(initializers.Initializer):
        def build(self):
            pass

    with pytest.raises(TypeError, match=r"custom_init.*Custom"):
        HashTable([-1, 2], initializer=Custom(), name="custom_init")
