"""When disconnected persistent sessions expire: deadlines, earliest first.

Theory of operation. A persistent session (clean session 0) that its
connection left gets a deadline: the wall-clock time it was left plus its
expiry interval. The interval is the session's own when it has one (MQTT
5.0's Session Expiry Interval, later) and otherwise the broker's
``persistent_client_expiration`` (every 3.1.1 session; 0 there means never,
as in mosquitto). Wall-clock time, because the store keeps the time a session
was left, and a deadline must mean the same after a restart.

``Deadlines`` is a heap with lazy deletion: a session that comes back only
forgets its deadline in a dictionary, and the stale heap entry is skipped
when it comes due, so connecting and disconnecting cost O(log n) and the
broker's tick looks only at what is due, never at every session. The heap is
rebuilt when stale entries outnumber live ones, so reconnecting clients do not
grow it without bound.
"""

from __future__ import annotations

import heapq
import itertools
import math

from mqttref.impl.store.base import SessionExpiry


def expiry_deadline(expiry: SessionExpiry, default_interval: float) -> float | None:
    """The wall-clock time a session expires, or None if it does not.

    ``default_interval`` is ``persistent_client_expiration``, where 0 means never;
    a session's own interval of 0 (5.0: the session ends with its connection) does
    expire at once, and ``math.inf`` never.
    """
    if expiry.disconnected_at is None:
        return None  # a connection holds it
    interval = expiry.expiry_interval
    if interval is None:
        if default_interval <= 0:
            return None
        interval = default_interval
    if math.isinf(interval):
        return None
    return expiry.disconnected_at + interval


class Deadlines:
    """Client id -> deadline, and the due ones earliest first."""

    __slots__ = ("_at", "_heap", "_order")

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        """The live deadline of each client id that has one."""
        self._heap: list[tuple[float, int, str]] = []
        """(deadline, insertion number, client id), live and stale; the number keeps
        equal deadlines from comparing client ids (up to 65,535 bytes each)."""
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._at)

    def get(self, client_id: str) -> float | None:
        return self._at.get(client_id)

    def set(self, client_id: str, deadline: float) -> None:
        self._at[client_id] = deadline
        heapq.heappush(self._heap, (deadline, next(self._order), client_id))
        if len(self._heap) > 2 * len(self._at) + 64:
            self._heap = [(at, next(self._order), cid) for cid, at in self._at.items()]
            heapq.heapify(self._heap)

    def clear(self, client_id: str) -> None:
        self._at.pop(client_id, None)

    def due(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` client ids whose deadline is ``now`` or earlier, earliest
        first; they are forgotten here (the caller expires them)."""
        heap, at = self._heap, self._at
        due: list[str] = []
        while heap and heap[0][0] <= now and len(due) < limit:
            deadline, _, client_id = heapq.heappop(heap)
            if at.get(client_id) == deadline:
                del at[client_id]
                due.append(client_id)
        return due
