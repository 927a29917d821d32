"""Isolation: one slow client costs only itself, and the broker's memory stays bounded.

Theory of operation. A subscriber that reads slowly (its socket's write buffer
passes ``write_buffer_limit``: *congested*) or acknowledges slowly (its
in-flight window is full) is held up by its own session queue, which absorbs
what it cannot take within ``max_queued`` messages and ``max_queued_bytes``;
beyond them its newest messages are dropped and counted (the session's drop
policy). No publisher ever waits for another client: a client that never sends
PUBACK, or never reads, slows nobody but itself.

A publisher is paused, that is its socket is not read, for two reasons only:

- its own flow control: its own socket is *overloaded* (more than
  ``write_buffer_max`` bytes of our answers wait for it), so reading more of
  its packets would only pile up more answers it does not take;
- the broker-wide mark: all sessions together queue more than
  ``memory_high_water`` bytes. Its batch met the mark (a message was dropped
  for it), so it pauses until the queues fall below the low mark or
  ``backpressure_timeout`` has passed. The mark is far above any one
  session's share, so reaching it takes many slow clients at once.

A subscriber that takes nothing for ``stall_timeout`` seconds while messages
wait for it is *stalled*, and may be disconnected (``Valve.stalled``); that is
its loss, never the others'.

This is bookkeeping only. ``Valve`` is the part of a connection's protocol
core that does it (the core inherits it); the edge is asked to pause or
resume reading through the ``ReadControl`` port, and every wait's deadline is
one of the core's timers, so none of it needs an event loop.
"""

from __future__ import annotations

import logging
from typing import Protocol

from mqttref.impl.broker.config import Config
from mqttref.impl.logtext import clip

log = logging.getLogger("mqttref.broker")

LOW_WATER: float = 0.9
"""Publishers paused at the memory mark go on once the queues are below this share of it."""

TOP_CONSUMERS = 3
"""How many of the largest queues the memory-mark log line names."""


class ReadControl(Protocol):
    """What flow control asks of the network edge."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the network."""
        ...


class Consumer(Protocol):
    """A session holding queued bytes, as the memory mark's log line names it."""

    @property
    def client_id(self) -> str: ...

    @property
    def queued_bytes(self) -> int: ...


class Memory:
    """The bytes queued in all sessions together, against ``memory_high_water``.

    Sessions ``reserve`` before queueing and ``release`` when a message leaves
    their queue. A reservation beyond the mark fails (the session drops the
    message) and *trips* the mark for the current batch, so that the
    publisher of that batch pauses (``Valve.end_of_batch``).
    """

    __slots__ = ("_logged_at", "consumers", "dropped", "high_water", "low_water",
                 "queued_bytes", "tripped", "waiting")

    def __init__(self, high_water: int) -> None:
        self.high_water = high_water
        self.low_water = int(high_water * LOW_WATER)
        self.queued_bytes = 0
        self.tripped = False
        """A reservation failed during the current batch."""
        self.dropped = 0
        """Messages dropped at the mark since start."""
        self.consumers: set[Consumer] = set()
        """Sessions with bytes queued, to name the largest when the mark is met."""
        self.waiting: set[Valve] = set()
        """Publishers paused until the queues fall below ``low_water``."""
        self._logged_at: float | None = None

    def reserve(self, size: int) -> bool:
        """Count ``size`` more queued bytes, or trip the mark and refuse them."""
        if self.queued_bytes + size > self.high_water:
            self.tripped = True
            self.dropped += 1
            return False
        self.queued_bytes += size
        return True

    def force(self, size: int) -> None:
        """Count bytes that are queued already (a session restored from the store)."""
        self.queued_bytes += size

    def release(self, size: int) -> None:
        """``size`` bytes left a queue; below the low mark, paused publishers go on."""
        self.queued_bytes -= size
        if self.waiting and self.queued_bytes <= self.low_water:
            waiting, self.waiting = self.waiting, set()
            for publisher in waiting:
                publisher.stop_waiting()

    def report(self, now: float, interval: float = 10.0) -> None:
        """Say that the mark was met, naming the largest queues; once per ``interval``."""
        if self._logged_at is not None and now < self._logged_at + interval:
            return
        self._logged_at = now
        largest = sorted(self.consumers, key=lambda c: c.queued_bytes, reverse=True)
        names = ", ".join(f"{clip(c.client_id, 64)} {c.queued_bytes:,} B"
                          for c in largest[:TOP_CONSUMERS])
        log.warning(
            "memory_high_water reached: %s bytes queued in %d sessions (largest: %s); "
            "publishers pause, messages beyond it are dropped (%d so far)",
            f"{self.queued_bytes:,}", len(self.consumers), names or "none", self.dropped,
        )


class Valve:
    """One connection's flow control: its own, as a reader and as a publisher."""

    __slots__ = ("_congested", "_self_paused", "_wait_deadline")

    # Supplied by the protocol core that inherits this.
    config: Config
    memory: Memory
    reading: ReadControl
    _out_bytes: int

    def __init__(self) -> None:
        self._congested = False
        """The edge's write buffer is above ``write_buffer_limit``."""
        self._self_paused = False
        """Reading is paused because our answers pile up unread (own flow control)."""
        self._wait_deadline: float | None = None
        """Reading is paused at the memory mark until then (or until the queues drain)."""

    @property
    def is_closed(self) -> bool:
        raise NotImplementedError

    # As a reader ----------------------------------------------------------------

    @property
    def congested(self) -> bool:
        """The peer reads slower than we write, or a batch's worth of bytes already
        waits to be written: what can wait (QoS 1/2) waits in the session queue, so
        that a draining queue is encoded a bounded batch at a time."""
        return self._congested or self._out_bytes >= self.config.write_buffer_limit

    @property
    def overloaded(self) -> bool:
        """So much waits for the peer that QoS 0 messages to it are dropped."""
        return self.reading.write_buffer_size() + self._out_bytes > self.config.write_buffer_max

    def _writing_paused(self) -> None:
        """The edge's buffer passed ``write_buffer_limit``. Beyond ``write_buffer_max``
        the peer does not even read our answers: stop reading its packets (TCP then
        slows it) until it has taken them."""
        self._congested = True
        if not self._self_paused and self.overloaded:
            self._self_paused = True
            self.reading.pause_reading()

    def _writing_resumed(self) -> None:
        self._congested = False
        if self._self_paused:
            self._self_paused = False
            if self._wait_deadline is None and not self.is_closed:
                self.reading.resume_reading()

    # As a publisher -------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Not reading: paused at the memory mark, or by its own flow control."""
        return self._wait_deadline is not None or self._self_paused

    def end_of_batch(self, now: float) -> None:
        """After a batch of this connection's packets: if it met the memory mark,
        pause reading until the queues drain or ``backpressure_timeout`` passes."""
        memory = self.memory
        if not memory.tripped:
            return
        memory.tripped = False
        memory.report(now)
        if self.is_closed or self._wait_deadline is not None:
            return
        if self.config.backpressure_timeout <= 0:
            return
        self._wait_deadline = now + self.config.backpressure_timeout
        memory.waiting.add(self)
        if not self._self_paused:
            self.reading.pause_reading()

    def wait_expired(self, now: float) -> bool:
        """The pause at the memory mark lasts at most ``backpressure_timeout``."""
        deadline = self._wait_deadline
        if deadline is None or now < deadline:
            return False
        self.memory.waiting.discard(self)
        self.stop_waiting()
        return True

    def stop_waiting(self) -> None:
        """End a pause at the memory mark (the queues drained, or it timed out)."""
        if self._wait_deadline is None:
            return
        self._wait_deadline = None
        self.memory.waiting.discard(self)
        if not self._self_paused and not self.is_closed:
            self.reading.resume_reading()
