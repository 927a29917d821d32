"""Real brokers for the client tests: mosquitto started on a free loopback port.

A ``RunningBroker`` knows how to stop and start again on the same port, so
tests can restart the broker under a connected client.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class _BrokerProcess:
    """Stop and restart on the same port, for a broker running as a child process."""

    process: subprocess.Popen[bytes] | None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@attrs.define
class Mosquitto(_BrokerProcess):
    """A mosquitto process with a generated configuration file."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    allow_anonymous: bool = True
    process: subprocess.Popen[bytes] | None = None

    name = "mosquitto"
    host = "127.0.0.1"

    def start(self) -> None:
        config = self.directory / f"mosquitto-{self.port}.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            # Started as root, mosquitto drops to user "mosquitto", who may not write here.
            f"user {getpass.getuser()}",
        ]
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    @property
    def log_path(self) -> Path:
        return self.directory / f"mosquitto-{self.port}.log"

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        """Block until mosquitto's log holds ``text`` (e.g. a SUBACK sent to a client id)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise AssertionError(f"mosquitto never logged {text!r}")

    def wait_for_subscription(self, client_id: str, timeout: float = 10.0) -> None:
        self.wait_for_log(f"Sending SUBACK to {client_id}", timeout)


@attrs.define
class MqttrefBroker(_BrokerProcess):
    """``mqttref broker`` as its own process, configured by a generated TOML file."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    allow_anonymous: bool = True
    process: subprocess.Popen[bytes] | None = None

    name = "mqttref"
    host = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.directory / f"mqttref-{self.port}.log"

    def start(self) -> None:
        config = self.directory / f"mqttref-{self.port}.toml"
        config.write_text(f"allow_anonymous = {'true' if self.allow_anonymous else 'false'}\n")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mqttref", "broker", "-p", str(self.port),
                 "-c", str(config), "-v", "--memory"],
                stdout=log,
                stderr=log,
            )  # fmt: skip
        wait_for_port(self.port)

    def wait_for_subscription(self, client_id: str, timeout: float = 10.0) -> None:
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
        if not mosquitto_available():
            pytest.skip("mosquitto is not installed")
        broker = Mosquitto(directory, allow_anonymous=allow_anonymous)
    else:
        broker = MqttrefBroker(directory, allow_anonymous=allow_anonymous)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists() and shutil.which("mosquitto_pub") is not None


@contextlib.contextmanager
def running_mosquitto(directory: Path, *, allow_anonymous: bool = True) -> Iterator[Mosquitto]:
    broker = Mosquitto(directory, allow_anonymous=allow_anonymous)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
