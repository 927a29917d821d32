"""The mqttref broker on its own event loop in a background thread.

For synchronous tests (paho-mqtt, subprocess clients, Hypothesis state
machines, whose rules cannot be ``async``)::

    with BrokerThread(Config(port=0, keep_alive_factor=1.5)) as running:
        client.connect("127.0.0.1", running.port)
        running.call(lambda broker: len(broker.sessions))   # inspect, in the loop's thread

``call`` runs a function on the broker's loop and returns its result, so
tests read broker state without racing the loop. Faults are injected by the
test itself (``monkeypatch.setattr(TopicServer, "publish", ...)``) before or
while the broker runs; the helper has no fault switches.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import attrs

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config

T = TypeVar("T")


class BrokerThread:
    """A started ``Broker`` whose loop runs in a daemon thread until ``stop()``."""

    def __init__(self, config: Config | None = None, *, broker: Broker | None = None) -> None:
        if broker is None:
            config = config if config is not None else Config()
            if config.port == 1883:
                config = attrs.evolve(config, port=0)
            broker = Broker(config)
        self.broker = broker
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="mqttref-broker")
        self._started = False

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def host(self) -> str:
        return self.broker.host

    def start(self) -> BrokerThread:
        self._thread.start()
        self.run(self.broker.start())
        self._started = True
        return self

    def run(self, coroutine: Awaitable[T], timeout: float = 10.0) -> T:
        """Run a coroutine on the broker's loop and wait for its result."""

        async def wrapper() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def call(self, function: Callable[[Broker], T], timeout: float = 10.0) -> T:
        """Run ``function(broker)`` on the broker's loop (safe inspection of its state)."""

        async def wrapper() -> T:
            return function(self.broker)

        return self.run(wrapper(), timeout)

    def wait_for(self, predicate: Callable[[Broker], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate(broker)`` on the loop until true; False after ``timeout``.

        For effects of a client's last packet, which the client cannot confirm
        (a DISCONNECT has no answer)."""
        deadline = time.monotonic() + timeout
        while not self.call(predicate):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.run(self.broker.stop())
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
