"""Which broker the state machine talks to, and how patient it is with it.

The machine only ever sees a ``Target``: an address per example plus the
``Timing`` and model parameters of that broker. ``ExternalTarget`` is any
broker at ``HOST:PORT``, the one ``mqttref check`` explores. Examples share
that broker, so the machine uses unique client ids and a topic prefix per
example and cleans up after itself; the broker should be dedicated to the run.
(``tests/stateful`` adds ``InProcessTarget``: a fresh mqttref broker per
example, with short timers.)

``MQTTREF_SLOW`` multiplies every wait (quiescence window and bounded waits)
for slow or loaded machines.
"""

from __future__ import annotations

import os
from typing import Protocol

import attrs


@attrs.frozen
class Timing:
    """How long to wait for a broker, in seconds (before ``MQTTREF_SLOW``).

    ``quiet``: the quiescence window: nothing arrived for this long means the
    broker has said what it had to say about the last action. ``patience``:
    how long an owed packet (a CONNACK, a PUBACK, a delivery, a will, a close)
    may take after quiescence before it counts as missing. ``short_keep_alive``:
    the keep-alive (whole seconds) of clients meant to expire; ``idle_ping``:
    the fraction of it after which an idle client pings, as client libraries
    do. ``keep_alive_grace``: seconds past 1.5 x keep-alive after which the
    model owes the close.
    """

    quiet: float = 0.03
    patience: float = 3.0
    short_keep_alive: int = 1
    idle_ping: float = 0.4
    keep_alive_grace: float = 1.0
    multiplier: float = 1.0

    def scaled(self, multiplier: float) -> Timing:
        return attrs.evolve(self, multiplier=self.multiplier * multiplier)

    @property
    def quiet_window(self) -> float:
        return self.quiet * self.multiplier

    @property
    def owed_wait(self) -> float:
        return self.patience * self.multiplier

    @property
    def grace(self) -> float:
        return self.keep_alive_grace * self.multiplier


class Target(Protocol):
    """A broker to explore: an address per example, and how to judge it."""

    timing: Timing

    @property
    def max_inflight(self) -> int:
        """The broker's outbound window per session (the model owes no more)."""
        ...

    def start_example(self) -> tuple[str, int]:
        """The broker's address for the next example (starting one if needed)."""
        ...

    def end_example(self) -> None:
        """The example is over: release what ``start_example`` started."""
        ...

    def describe(self) -> str: ...


@attrs.define
class ExternalTarget:
    """A broker someone else runs, at ``host:port``.

    Its keep-alive grace is long: [MQTT-3.1.2-24] names no deadline for the close
    after 1.5 times the keep alive, and brokers sweep their deadlines periodically
    (mosquitto 2.0.11 closed a client with keep alive 1 s 1.3 s to 7 s after its
    last packet, see docs/spec/findings.md); a late close is not a deviation.
    """

    host: str
    port: int
    timing: Timing = attrs.field(
        factory=lambda: Timing(quiet=0.08, patience=4.0, keep_alive_grace=6.0)
    )
    max_inflight: int = 20

    def start_example(self) -> tuple[str, int]:
        return self.host, self.port

    def end_example(self) -> None:
        return None

    def describe(self) -> str:
        return f"the broker at {self.host}:{self.port}"


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def slow_multiplier() -> float:
    return float(os.environ.get("MQTTREF_SLOW", "1") or 1)
