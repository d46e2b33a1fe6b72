"""``HashtableRegister``: RecIS's process-wide registry of hash tables by name.

``register(name, info, table)`` records a table under a unique name with a text describing it
(a second table of the same name is a ``ValueError`` naming the name and both descriptions);
``get_ht_by_child_name(name)`` returns the table registered under ``name``. Tables of this
package do not register themselves (their names may repeat; ``live_hashtables()`` finds them):
the registry is for scripts that keep their own.

>>> register = HashtableRegister()
>>> register is HashtableRegister()
True
>>> register.register("user_emb_doc", '{"dim": 8}', "a table")
>>> register.get_ht_by_child_name("user_emb_doc")
'a table'
"""

from __future__ import annotations

from recis.core.singleton import SingletonMeta


class HashtableRegister(metaclass=SingletonMeta):
    """Tables by unique name, with their descriptions (see the module docstring)."""

    def __init__(self) -> None:
        self._hashtables: dict[str, str] = {}
        self._child_name_to_ht: dict[str, object] = {}

    def register(self, name: str, info: str, ht=None) -> None:
        """Record ``ht`` under ``name``, described by ``info``."""
        if name in self._hashtables:
            raise ValueError(
                f"HashtableRegister: {name!r} is registered already as "
                f"{self._hashtables[name]}; refused {info}"
            )
        self._hashtables[name] = info
        self._child_name_to_ht[name] = ht

    def get_ht_by_child_name(self, name: str):
        """The table registered under ``name`` (``KeyError`` naming it otherwise)."""
        if name not in self._child_name_to_ht:
            raise KeyError(f"no hashtable registered as {name!r}")
        return self._child_name_to_ht[name]
