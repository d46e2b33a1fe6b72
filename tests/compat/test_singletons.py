"""RecIS's process-wide singletons: ``SingletonMeta``, ``HashtableRegister`` and the hook
factory's registries, at RecIS's paths."""

from __future__ import annotations

from unittest import mock

import pytest

from recis.common.singleton import SingletonMeta
from recis.nn.modules.hashtable import HashtableRegister
from recis.nn.modules.hashtable_hook_impl import HashtableHookFactory


def test_a_singleton_class_builds_once_until_popped():
    class Counter(metaclass=SingletonMeta):
        built = 0

        def __init__(self, start=0):
            Counter.built += 1
            self.value = start

    first = Counter(5)
    assert Counter(9) is first and first.value == 5 and Counter.built == 1
    SingletonMeta._instances.pop(Counter)
    assert Counter(9).value == 9 and Counter.built == 2
    SingletonMeta._instances.pop(Counter)


def test_the_register_refuses_a_second_table_of_a_name_and_isolates_under_patch():
    outer = HashtableRegister()
    with mock.patch.dict(SingletonMeta._instances):
        SingletonMeta._instances.pop(HashtableRegister, None)
        register = HashtableRegister()
        assert register is not outer
        table = object()
        register.register("emb_a", '{"dim": 4}', table)
        assert register.get_ht_by_child_name("emb_a") is table
        with pytest.raises(ValueError, match=r"'emb_a' is registered already as \{\"dim\": 4\}"):
            register.register("emb_a", '{"dim": 8}', object())
        with pytest.raises(KeyError, match="emb_b"):
            register.get_ht_by_child_name("emb_b")
    assert HashtableRegister() is outer


def test_the_hook_factory_is_one_instance_listing_what_each_name_builds():
    factory = HashtableHookFactory()
    assert HashtableHookFactory() is factory
    assert SingletonMeta._instances[HashtableHookFactory] is factory
    assert {"GlobalStepFilter", "LRU", "LFU"} <= set(factory._registed_filter)
    assert {"ReadOnly", "Frequency"} <= set(factory._registed_admit)
    hook = factory._registed_filter["GlobalStepFilter"](filter_step=4)
    assert hook.filter_step == 4
    with pytest.raises(TypeError):
        factory._registed_admit["Other"] = object  # a read-only view
