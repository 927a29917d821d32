"""Where the broker keeps what must outlive a connection or a topic server.

``base.Store`` is the interface; ``memory.MemoryStore`` keeps everything in
dictionaries (``mqttref broker --memory``); the durability work adds SQLite
behind the same interface. ``open_store`` picks one by name.
"""

from __future__ import annotations

from mqttref.impl.errors import ConfigError
from mqttref.impl.store.base import SessionRecord, Store, StoredInflight
from mqttref.impl.store.memory import MemoryStore

__all__ = ["MemoryStore", "SessionRecord", "Store", "StoredInflight", "open_store"]


def open_store(kind: str) -> Store:
    """The store named by the configuration's ``store`` key."""
    if kind == "memory":
        return MemoryStore()
    raise ConfigError(f"store: unknown store kind {kind!r}")
