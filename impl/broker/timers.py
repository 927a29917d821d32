"""One timer wheel per event loop: the deadlines of every connection, one loop timer.

Theory of operation. Every protocol core says its next deadline
(``get_timer``); its edge used to arm one ``loop.call_at`` for it, which under
uvloop costs about 600 bytes per connection (the handle, its libuv timer, the
bound method), held for as long as the connection is idle: the CONNECT
timeout of a new socket, the keep alive of a connected client. Here the
deadlines of all connections share buckets, and the loop holds one timer, for
the earliest bucket:

- A deadline goes into the bucket at the next multiple of a power of two at
  most 1/32 of the time left (``granularity``): a keep alive 90 s away waits
  in a 2 s bucket, a one-second pause in a 31 ms one. A deadline is met late
  by at most about 3% of its delay (and never early: the core acts only on
  ``now >= deadline``), and the buckets in use stay few (at most 67 for the
  deadlines within one doubling of their delays), whatever the number of
  connections.
- A bucket is a list: arming appends the entry (8 bytes), and the entry
  remembers its bucket. Cancelling forgets it (O(1)); the list keeps a stale
  reference until the bucket is due, when only the entries that still name
  that bucket are told. An entry moves only to an earlier bucket (a later
  deadline lets the bucket fire early; the entry then re-arms), so it leaves
  few stale references behind.
- The wheel counts the entries armed; when none is left it drops its buckets
  and its loop timer, so a stopped broker leaves nothing scheduled.
- A due bucket is told ``BATCH`` entries per loop turn. Sockets opened together
  time out together: 2,000 silent ones told at once (each a close, and each close
  an attacker's reopen) held the loop for milliseconds on end, and every other
  client's messages with it (``bench/noisy.py``, adversary ``silent``).

The wheel is sans-IO apart from its one loop timer: entries are told
``timer_due(now)`` and re-arm themselves from their core's ``get_timer``.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
import threading
import weakref
from typing import Final, Protocol

FINEST_EXPONENT: Final = -10
"""The finest bucket is 2**-10 s (about 1 ms), as fine as the loop's own timers."""

SLACK_EXPONENT: Final = 5
"""A deadline waits at most 2**-5 (1/32) of its delay in its bucket."""

BATCH: Final = 32
"""Due entries told per loop turn; the rest wait for the next turns, behind the
other callbacks and socket events that came meanwhile."""


def granularity(delay: float) -> float:
    """The bucket width for a deadline ``delay`` seconds away: the largest power of
    two at most ``delay / 32``, and never under 2**-10 s."""
    exponent = math.frexp(delay)[1] - 1 - SLACK_EXPONENT if delay > 0 else FINEST_EXPONENT
    return math.ldexp(1.0, max(exponent, FINEST_EXPONENT))


def bucket_time(deadline: float, now: float) -> float:
    """The instant the bucket of ``deadline`` is due: the first multiple of its width
    at or after the deadline (widths are powers of two, so the product is exact and
    equal deadlines of different widths can share a bucket)."""
    width = granularity(deadline - now)
    return math.ceil(deadline / width) * width


class Bucket(list["Entry"]):
    """The entries due at ``when`` (with stale ones that moved or were cancelled)."""

    __slots__ = ("when",)

    def __init__(self, when: float) -> None:
        super().__init__()
        self.when = when


class Entry(Protocol):
    """What the wheel schedules: a connection's edge."""

    timer_bucket: Bucket | None
    """The bucket the entry waits in, None when not armed; only the wheel sets it."""

    def timer_due(self, now: float) -> None:
        """The deadline came (``now`` is at or after it); the entry may re-arm."""
        ...


class TimerWheel:
    """The deadlines of one event loop's connections, behind one loop timer."""

    __slots__ = ("__weakref__", "_armed", "_buckets", "_draining", "_due", "_handle",
                 "_handle_when", "_keys", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[float, Bucket] = {}
        self._keys: list[float] = []
        """Heap of the buckets' times."""
        self._armed = 0
        """Entries armed (stale references not counted)."""
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._handle_when = math.inf
        self._due: collections.deque[tuple[Bucket, Entry]] = collections.deque()
        """Entries of due buckets not told yet (stale ones are skipped when reached)."""
        self._draining: asyncio.Handle | None = None

    def __len__(self) -> int:
        return self._armed

    @property
    def next_due(self) -> float | None:
        """When the loop timer runs next, None if nothing is armed."""
        return self._handle_when if self._handle is not None else None

    def arm(self, entry: Entry, deadline: float) -> None:
        """Tell ``entry`` at its deadline, rounded up to its bucket; replaces any
        deadline the entry had."""
        when = bucket_time(deadline, self.loop.time())
        old = entry.timer_bucket
        if old is not None:
            if old.when == when:
                return
        else:
            self._armed += 1
        bucket = self._buckets.get(when)
        if bucket is None:
            bucket = self._buckets[when] = Bucket(when)
            heapq.heappush(self._keys, when)
            if when < self._handle_when:
                self._schedule(when)
        bucket.append(entry)
        entry.timer_bucket = bucket

    def cancel(self, entry: Entry) -> None:
        if entry.timer_bucket is None:
            return
        entry.timer_bucket = None
        self._armed -= 1
        if not self._armed:
            self._clear()

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(when, self._fire)
        self._handle_when = when

    def _clear(self) -> None:
        """Nothing is armed: forget the stale buckets and stop the loop timer."""
        self._buckets.clear()
        self._keys.clear()
        self._due.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._handle_when = math.inf
        if self._draining is not None:
            self._draining.cancel()
            self._draining = None

    def _fire(self) -> None:
        """Take every bucket that is due and start telling its entries. Entries
        re-arming now (even at a deadline already past) go to new buckets, told at a
        later run."""
        self._handle = None
        self._handle_when = math.inf
        now = self.loop.time()
        keys, buckets = self._keys, self._buckets
        while keys and keys[0] <= now:
            bucket = buckets.pop(heapq.heappop(keys))
            self._due.extend((bucket, entry) for entry in bucket)
        if keys:
            self._schedule(keys[0])  # before the entries re-arm, against the right time
        if self._draining is None:
            self._drain()

    def _drain(self) -> None:
        """Tell up to ``BATCH`` due entries; the rest on the next loop turn."""
        self._draining = None
        now = self.loop.time()
        due = self._due
        for _ in range(min(BATCH, len(due))):
            bucket, entry = due.popleft()
            if entry.timer_bucket is bucket:  # else cancelled, or moved earlier
                entry.timer_bucket = None
                self._armed -= 1
                entry.timer_due(now)
        if not self._armed:
            self._clear()
        elif due:
            self._draining = self.loop.call_soon(self._drain)


_WHEELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TimerWheel] = (
    weakref.WeakKeyDictionary()
)
_WHEELS_LOCK = threading.Lock()
"""Brokers in several threads (tests) each run their own loop."""


def wheel_of(loop: asyncio.AbstractEventLoop) -> TimerWheel:
    """The loop's one timer wheel, made on first use."""
    wheel = _WHEELS.get(loop)
    if wheel is None:
        with _WHEELS_LOCK:
            wheel = _WHEELS.get(loop)
            if wheel is None:
                wheel = _WHEELS[loop] = TimerWheel(loop)
    return wheel
