"""The outbox: what every connection sent during one event-loop iteration, written
after one store commit.

An acknowledgement (PUBACK, PUBREC, SUBACK...) promises that what it
acknowledges survives a crash, so nothing is written before the store has
committed it. Committing once per write would put a disk sync on every
packet; the outbox instead collects the connections that have bytes waiting
(their cores said ``output_ready``), and at the end of the loop iteration
commits once and writes each connection's bytes in one ``transport.write``.
If the commit fails, nothing is written and the broker stops (fail-stop):
what was acknowledged before is on disk, the rest the clients send again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from mqttref.impl.store import Store, StoreError


class Writer(Protocol):
    """A connection's edge, as the outbox sees it."""

    def write_pending(self) -> None:
        """Write the core's ``data_to_send`` (the store has committed)."""
        ...


class Outbox:
    """Connections with bytes to write, flushed once per event-loop iteration."""

    __slots__ = ("_failed", "_loop", "_on_failure", "_pending", "store")

    def __init__(self, store: Store, on_failure: Callable[[StoreError], None]) -> None:
        self.store = store
        self._on_failure = on_failure
        self._pending: list[Writer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed = False

    def add(self, writer: Writer) -> None:
        """``writer`` has bytes waiting; write them at the end of this iteration."""
        pending = self._pending
        if not pending:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)
        pending.append(writer)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or not self.commit():
            return
        for writer in pending:
            writer.write_pending()

    def commit(self) -> bool:
        """Commit the store; False (and the broker stopping) if it cannot write."""
        if self._failed:
            return False
        try:
            self.store.commit()
        except StoreError as exc:  # not on disk: acknowledge nothing, stop the broker
            self._failed = True
            self._on_failure(exc)
            return False
        return True
