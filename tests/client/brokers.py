"""Real brokers for the client tests: mosquitto (tests.helpers.peers) and `mqttref broker`.

A ``RunningBroker`` knows how to stop and start again on the same port, so
tests can restart the broker under a connected client.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import attrs

from tests.helpers.peers import (
    ChildPeer,
    MosquittoProcess,
    mosquitto_installed,
    require_peer,
    restartable_port,
    wait_for_port,
)

Mosquitto = MosquittoProcess
"""mosquitto with its log on (the tests wait for its SUBACKs), restartable on its port."""


@attrs.define
class MqttrefBroker(ChildPeer):
    """``mqttref broker`` as its own process, configured by a generated TOML file."""

    directory: Path
    port: int = attrs.field(factory=restartable_port)
    allow_anonymous: bool = True
    extra_config: str = ""
    """More TOML lines for its configuration (``max_awaiting_rel = 2``...)."""
    process: subprocess.Popen[bytes] | None = None

    name = "mqttref"
    host = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.directory / f"mqttref-{self.port}.log"

    def start(self) -> Self:
        config = self.directory / f"mqttref-{self.port}.toml"
        config.write_text(
            f"allow_anonymous = {'true' if self.allow_anonymous else 'false'}\n{self.extra_config}"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mqttref", "broker", "-p", str(self.port),
                 "-c", str(config), "-v", "--memory"],
                stdout=log,
                stderr=log,
            )  # fmt: skip
        try:
            wait_for_port(self.port, process=self.process)
        except AssertionError:
            # A broker that started too late must not outlive the test (one did, for hours).
            self.process.kill()
            self.process.wait()
            raise
        return self

    def wait_for_subscription(self, client_id: str, timeout: float = 30.0) -> None:
        """The broker logs a SUBSCRIBE as it reads it; its SUBACK follows at once."""
        deadline = time.monotonic() + timeout
        needle = f"client {client_id!r} ("
        while time.monotonic() < deadline:
            if self.log_path.exists():
                for line in self.log_path.read_text(errors="replace").splitlines():
                    if needle in line and line.endswith("-> SUBSCRIBE"):
                        time.sleep(0.1)
                        return
            time.sleep(0.02)
        raise AssertionError(f"mqttref broker never logged a SUBSCRIBE from {client_id!r}")


Broker = Mosquitto | MqttrefBroker
BROKER_KINDS = ("mosquitto", "mqttref")


@contextlib.contextmanager
def running_broker(kind: str, directory: Path, *, allow_anonymous: bool = True) -> Iterator[Broker]:
    """A started broker of ``kind`` ("mosquitto" or "mqttref"), stopped on exit."""
    broker: Broker
    if kind == "mosquitto":
        require_peer("mosquitto", mosquitto_available(), "this test runs against mosquitto")
        broker = Mosquitto(directory, allow_anonymous=allow_anonymous)
    else:
        broker = MqttrefBroker(directory, allow_anonymous=allow_anonymous)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def mosquitto_available() -> bool:
    return mosquitto_installed() and shutil.which("mosquitto_pub") is not None


@contextlib.contextmanager
def running_mosquitto(directory: Path, *, allow_anonymous: bool = True) -> Iterator[Mosquitto]:
    broker = Mosquitto(directory, allow_anonymous=allow_anonymous)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
