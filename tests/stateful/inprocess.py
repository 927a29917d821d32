"""The in-process target: a fresh mqttref broker per example, with short timers.

The broker runs on its own event loop in a background thread, its timers
(keep-alive factor, retry interval, CONNECT timeout) taken from its ``Config``
so that an example sees keep-alives expire and retries come within seconds.
A fresh broker per example is the strongest isolation there is: no retained
message or persistent session can leak into the next example.
``MQTTREF_TARGET=HOST:PORT`` points the stateful tests at another broker.
"""

from __future__ import annotations

import os

import attrs

from mqttref.impl.broker.config import Config
from mqttref.oracle.stateful.target import (
    ExternalTarget,
    Target,
    Timing,
    parse_address,
    slow_multiplier,
)
from tests.helpers.broker_thread import BrokerThread

TEST_BROKER_CONFIG = Config(
    port=0,
    connect_timeout=2.0,
    keep_alive_factor=1.5,
    retry_interval=1.0,
    retry_max_interval=4.0,
    max_inflight=20,
)
"""The in-process broker's short timers: keep alive closes at 1.5 x, a withheld
acknowledgement is retried after 1 s (doubling), a silent socket goes after 2 s."""


@attrs.define
class InProcessTarget:
    """A fresh mqttref broker per example, in a background thread."""

    config: Config = TEST_BROKER_CONFIG
    timing: Timing = attrs.field(factory=Timing)
    _running: BrokerThread | None = None

    @property
    def max_inflight(self) -> int:
        return self.config.max_inflight

    def start_example(self) -> tuple[str, int]:
        self.end_example()
        running = BrokerThread(self.config).start()
        self._running = running
        return running.host, running.port

    def end_example(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.stop()

    def describe(self) -> str:
        return "the in-process mqttref broker"


def target_from_environment() -> Target:
    """``MQTTREF_TARGET=HOST:PORT`` for a broker elsewhere, else the in-process one."""
    address = os.environ.get("MQTTREF_TARGET", "").strip()
    target: Target
    if address:
        host, port = parse_address(address)
        target = ExternalTarget(host, port)
    else:
        target = InProcessTarget()
    target.timing = target.timing.scaled(slow_multiplier())
    return target
