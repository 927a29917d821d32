"""Back-pressure: a slow reader slows the publishers that feed it, and loses nothing.

Theory of operation, in three steps:

- A client that reads slowly shows up as a write buffer above
  ``write_buffer_limit`` (the connection is *congested*, told by the edge's
  ``writing_paused``), a client that acknowledges slowly as a session queue as
  long as the in-flight window (*backlogged*, told by the session's
  ``hold_publishers``). Either way its session holds QoS 1/2 messages in its
  bounded queue, and a publisher that sent to it during its current batch of
  packets pauses after that batch, not reading its own socket, until the slow
  client catches up: the publisher is slowed, nothing is lost.
- A publisher waits at most ``backpressure_timeout``; a reader that did not
  drain by then is *stalled* and slows nobody until it drains.
- Beyond ``write_buffer_max`` the connection is *overloaded*: QoS 0 messages
  to it are dropped and counted (by the session), so memory stays bounded.

This is bookkeeping only: which connection holds which publishers back, and
until when. ``Valve`` is the part of a connection's protocol core that does
it (the core inherits it); the edge is asked to pause or resume reading
through the ``ReadControl`` port, and the wait's deadline is one of the
core's timers, so none of it needs an event loop.
"""

from __future__ import annotations

import logging
from typing import Protocol

from mqttref.impl.broker.config import Config

log = logging.getLogger("mqttref.broker")


class ReadControl(Protocol):
    """What back-pressure asks of the network edge."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the network."""
        ...


class Pressure:
    """The broker's one record of which held-back connections a batch sent to.

    A connection's core clears it before handling a batch of packets, congested
    connections it sends to add themselves, and at the end of the batch the
    publisher waits for those (``Valve.wait_for_slow_readers``).
    """

    __slots__ = ("touched",)

    def __init__(self) -> None:
        self.touched: set[Valve] = set()

    def __bool__(self) -> bool:
        return bool(self.touched)


class Valve:
    """One connection's side of back-pressure, as a reader and as a publisher."""

    __slots__ = (
        "_congested",
        "_held",
        "_holding",
        "_stalled",
        "_wait_deadline",
        "_waiting_on",
    )

    # Supplied by the protocol core that inherits this.
    config: Config
    pressure: Pressure
    reading: ReadControl
    _out_bytes: int

    def __init__(self) -> None:
        self._congested = False
        self._stalled = False
        self._holding = False
        """True while publishers sending here should pause (until ``release_publishers``)."""
        self._held: list[Valve] | None = None
        """Publishers paused until this connection catches up."""
        self._waiting_on: set[Valve] | None = None
        """The slow connections this one (a publisher) is paused for."""
        self._wait_deadline: float | None = None

    @property
    def who(self) -> str:
        raise NotImplementedError

    @property
    def is_closed(self) -> bool:
        raise NotImplementedError

    # As a reader ----------------------------------------------------------------

    @property
    def congested(self) -> bool:
        """The peer reads slower than we write: hold back what can wait."""
        return self._congested

    @property
    def overloaded(self) -> bool:
        """So much waits for the peer that QoS 0 messages must be dropped."""
        return (
            self._congested
            and self.reading.write_buffer_size() + self._out_bytes > self.config.write_buffer_max
        )

    def hold_publishers(self) -> None:
        """Ask publishers sending here to pause: the socket or the session is behind."""
        if self._stalled:
            return
        self._holding = True
        self.pressure.touched.add(self)

    def release_publishers(self) -> None:
        """Let held publishers go, once the socket has drained (the session asks
        only when its queue is short again)."""
        if self._congested:
            return
        self._stalled = False
        if self._holding:
            self._holding = False
            held, self._held = self._held, None
            for publisher in held or ():
                publisher._relieved(self)

    def _sent_while_holding(self) -> None:
        """A packet went out to this held-back connection in the current batch."""
        if self._holding and not self._stalled:
            self.pressure.touched.add(self)

    def _set_congested(self, congested: bool) -> None:
        self._congested = congested

    # As a publisher -------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Paused (not reading) until the readers this batch held back catch up."""
        return self._waiting_on is not None

    def wait_for_slow_readers(self, now: float) -> None:
        """Pause this publisher (stop reading its socket) until the readers it held
        back have caught up, or ``backpressure_timeout`` has passed."""
        touched = self.pressure.touched
        slow = {c for c in touched if c is not self and c._holding}
        touched.clear()
        if not slow or self.is_closed or self._waiting_on is not None:
            return
        self._waiting_on = slow
        for connection in slow:
            if connection._held is None:
                connection._held = []
            connection._held.append(self)
        self.reading.pause_reading()
        self._wait_deadline = now + self.config.backpressure_timeout

    def _relieved(self, slow: Valve) -> None:
        """A reader this publisher waited for caught up; go on when all have."""
        waiting = self._waiting_on
        if waiting is None:
            return
        waiting.discard(slow)
        if not waiting:
            self.stop_waiting()
            if not self.is_closed:
                self.reading.resume_reading()

    def wait_expired(self, now: float) -> bool:
        """Readers that did not drain in time are *stalled*: they slow nobody now."""
        deadline = self._wait_deadline
        if deadline is None or now < deadline:
            return False
        for connection in self._waiting_on or ():
            if connection._holding and not connection._stalled:
                connection._stalled = True
                log.warning("%s is stalled: publishers no longer wait for it", connection.who)
        self.stop_waiting()
        if not self.is_closed:
            self.reading.resume_reading()
        return True

    def stop_waiting(self) -> None:
        self._waiting_on = None
        self._wait_deadline = None
