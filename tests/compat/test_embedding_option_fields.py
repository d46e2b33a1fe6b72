"""``EmbeddingOption``'s dataclass fields are RecIS's; this package's extras are attributes."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from recis.nn.modules.embedding import EmbeddingOption

RECIS_FIELDS = {
    "embedding_dim", "block_size", "dtype", "device", "trainable", "pg", "max_partition_num",
    "shared_name", "children", "coalesced", "initializer", "use_weight", "combiner",
    "combiner_kwargs", "grad_reduce_by", "filter_hook", "admit_hook", "fp16_enabled",
    "no_reduce", "hdmp_group_size", "hdmp_group_reduce_by",
}  # fmt: skip


def test_asdict_gives_recis_fields_with_hdmp_unset():
    fields = asdict(EmbeddingOption(embedding_dim=8, shared_name="user"))
    assert set(fields) == RECIS_FIELDS
    assert fields["hdmp_group_size"] is None and fields["hdmp_group_reduce_by"] is None


def test_seed_capacity_padding_and_storage_stay_attributes_that_split_tables():
    option = EmbeddingOption(embedding_dim=4, seed=7, capacity=64, padding_id=-1)
    assert (option.seed, option.capacity, option.padding_id, option.storage) == (7, 64, -1, None)
    plain = EmbeddingOption(embedding_dim=4)
    assert (plain.seed, plain.capacity, plain.padding_id) == (0, 1024, None)
    assert option.coalesced_info() != plain.coalesced_info()  # the seed is part of the table


@pytest.mark.parametrize("field, value", [("hdmp_group_size", 4), ("hdmp_group_reduce_by", "id")])
def test_hdmp_group_settings_are_refused_naming_the_feature(field, value):
    with pytest.raises(ValueError, match=f"item: {field} .*not provide"):
        EmbeddingOption(shared_name="item", **{field: value})
