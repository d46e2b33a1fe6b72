"""``MCParser``: the model config (MC), which groups features into named blocks.

An MC maps a block name to its features. A block named after a sequence of the FG config (see
:meth:`MCParser.init_blocks`) lists that sequence's sub-features by their short names; their full
names carry the block as prefix (``"<block>_<feature>"``), as the FG parser names them.

>>> mc = MCParser(mc_config={"user": ["age"], "clicks": ["item_id"]})
>>> mc.init_blocks({"clicks": "click_seq"})
>>> mc.feature_blocks
{'user': ['age'], 'clicks': ['clicks_item_id']}
>>> mc.has_fea("clicks"), mc.has_seq_fea("clicks", "item_id"), mc.has_fea("item_id")
(True, True, False)
"""

from __future__ import annotations

import copy
import json

from recis.backends.torch.fg.utils import dict_lower_case


class MCParser:
    """Blocks of features read from ``mc_config_path`` (JSON) or ``mc_config`` (a dict).

    ``uses_columns`` keeps only the named blocks; ``lower_case`` lower-cases names;
    ``with_seq_prefix`` says that sequence blocks already list full feature names.
    """

    def __init__(
        self,
        mc_config_path: str | None = None,
        mc_config: dict | None = None,
        uses_columns=None,
        lower_case: bool = False,
        with_seq_prefix: bool = False,
    ) -> None:
        if (mc_config_path is None) == (mc_config is None):
            raise ValueError("MCParser needs exactly one of mc_config_path and mc_config")
        config = _load(mc_config_path) if mc_config is None else copy.deepcopy(mc_config)
        config = dict_lower_case(config, lower_case)
        if uses_columns is not None:
            config = _select_blocks(config, dict_lower_case(list(uses_columns), lower_case))
        self.mc_conf = config
        self.with_seq_prefix = with_seq_prefix
        self._seq_blocks: dict[str, str] = {}
        self._blocks: dict[str, list[str]] | None = None
        self._features: set[str] = set()

    def init_blocks(self, candidate_seq_blocks: dict) -> None:
        """Mark the blocks named in ``candidate_seq_blocks`` (sequence name → FG feature name)
        as sequence blocks and resolve every block's full feature names."""
        self._seq_blocks = {
            b: candidate_seq_blocks[b] for b in self.mc_conf if b in candidate_seq_blocks
        }
        self._blocks = {
            block: [self._full_name(block, feature) for feature in features]
            for block, features in self.mc_conf.items()
        }
        self._features = {f for features in self._blocks.values() for f in features}

    def _full_name(self, block: str, feature: str) -> str:
        if block in self._seq_blocks and not self.with_seq_prefix:
            return f"{block}_{feature}"
        return feature

    @property
    def feature_blocks(self) -> dict[str, list[str]]:
        """Block name → full feature names (after :meth:`init_blocks`)."""
        if self._blocks is None:
            raise RuntimeError("MCParser.init_blocks has not been called")
        return self._blocks

    @property
    def seq_block_names(self) -> list[str]:
        return list(self._seq_blocks)

    def has_fea(self, name: str) -> bool:
        """Whether the MC uses the feature (full name) or the sequence block ``name``."""
        return name in self._seq_blocks or name in self._features

    def has_seq_fea(self, seq_name: str, feature: str) -> bool:
        """Whether the MC uses sub-feature ``feature`` of sequence ``seq_name``."""
        return f"{seq_name}_{feature}" in self._features


def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _select_blocks(config: dict, names: list[str]) -> dict:
    missing = [name for name in names if name not in config]
    if missing:
        raise KeyError(f"uses_columns names blocks the MC config lacks: {missing}")
    return {name: config[name] for name in names}
