"""Where the broker keeps what must outlive a connection or a topic server.

``base.Store`` is the interface; ``memory.MemoryStore`` keeps everything in
dictionaries (``mqttref broker --memory``); ``sqlite.SQLiteStore`` keeps it in
an SQLite database in the data directory (``datadir``), the default of
``mqttref broker``. ``open_store`` picks one by name.
"""

from __future__ import annotations

from mqttref.impl.codec.errors import ConfigError
from mqttref.impl.store.base import (
    NO_OPTIONS,
    SessionRecord,
    Store,
    StoredInflight,
    StoredWill,
    SubscriptionOptions,
)
from mqttref.impl.store.datadir import StoreError, resolve_data_dir
from mqttref.impl.store.memory import MemoryStore
from mqttref.impl.store.sqlite import SQLiteStore

__all__ = [
    "NO_OPTIONS",
    "MemoryStore",
    "SQLiteStore",
    "SessionRecord",
    "Store",
    "StoreError",
    "StoredInflight",
    "StoredWill",
    "SubscriptionOptions",
    "open_store",
]


def open_store(kind: str, data_dir: str | None = None, sync: str = "normal") -> Store:
    """The store named by the configuration's ``store`` key (``data_dir`` and
    ``store_sync`` for sqlite).

    Nothing is touched on disk here; ``Store.open()`` does that when the broker starts.
    """
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(resolve_data_dir(data_dir), synchronous=sync)
    raise ConfigError(f"store: unknown store kind {kind!r}")
