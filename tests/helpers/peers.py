"""Real peers as child processes: free loopback ports, waiting for a listener, mosquitto.

Several test folders start brokers written by others (or ``mqttref broker``
itself) as child processes; the port picking, the wait for the listener, the
terminate-then-kill stop and mosquitto's generated configuration live here
once, so a fix to one (a race, a timeout) reaches every folder.

A test that needs a peer (mosquitto, mosquitto_pub/sub, node, npm, aedes,
Graphviz ``dot``) says so with ``require_peer`` (inside a test or fixture) or
the ``requires_peer`` mark (on a test, a class or a module): without the peer
it is skipped, unless ``MQTTREF_REQUIRE_PEERS=1`` is set (as ``.ci/run`` does),
in which case it fails naming the missing peer, so that CI never passes by
skipping what it was meant to run.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import attrs
import pytest

MOSQUITTO = Path("/usr/sbin/mosquitto")
HOST = "127.0.0.1"
REQUIRE_PEERS = "MQTTREF_REQUIRE_PEERS"


def peers_required() -> bool:
    """Whether a missing peer fails its test rather than skips it: ``MQTTREF_REQUIRE_PEERS=1``."""
    return os.environ.get(REQUIRE_PEERS, "") == "1"


def missing_peer_message(name: str, why: str) -> str:
    return f"{name} is missing: {why}"


def require_peer(name: str, available: bool, why: str) -> None:
    """Return when the peer ``name`` is ``available``; otherwise skip the test, or fail it
    when ``MQTTREF_REQUIRE_PEERS=1`` (CI, where every peer must be installed)."""
    if available:
        return
    message = missing_peer_message(name, why)
    if peers_required():
        pytest.fail(f"{message} ({REQUIRE_PEERS}=1: CI must run this test)", pytrace=False)
    pytest.skip(message)


def requires_peer(name: str, available: bool, why: str) -> pytest.MarkDecorator:
    """``require_peer`` as a mark, for a test function, a test class or ``pytestmark``;
    tests/conftest.py applies it before each marked test runs."""
    return pytest.mark.requires_peer(name=name, available=available, why=why)


def free_port() -> int:
    """A port the kernel hands out as free now (inside its ephemeral range)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def restartable_port() -> int:
    """A free port outside the kernel's ephemeral range, for a peer restarted on it.

    A broker restarted on its old port must find it free. Inside the ephemeral
    range the port may meanwhile be the source port of some client's
    connection, or of a reconnect attempt that connected to itself (TCP
    simultaneous open, which Linux allows on loopback): the restart then fails
    with "address in use". Below the range no outgoing connection ever uses it.
    """
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(20_000, 32_768) if port not in ephemeral]
    for port in random.sample(candidates, 200):
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32767")


def wait_for_port(port: int, timeout: float = 30.0, *,
                  process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
                  ) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``.

    With ``process``, fail at once if that process exits first, rather than
    waiting out the timeout for a listener that will never come."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode} before listening"
                                 f" on port {port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {HOST}:{port} after {timeout} s")


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str],
                 timeout: float = 5.0) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class ChildPeer:
    """``stop``, ``restart`` (on the same port) and ``with`` for a peer that ``start`` launches
    as one child process; subclasses (attrs classes) hold ``process``."""

    process: subprocess.Popen[bytes] | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop, then start again on the same port (clients see the peer go and return)."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def mosquitto_installed() -> bool:
    return MOSQUITTO.exists()


@attrs.define
class MosquittoProcess(ChildPeer):
    """mosquitto with a generated configuration, restartable on the same port.

    The configuration: ``listener PORT 127.0.0.1``, ``allow_anonymous``,
    ``persistence false``. With ``log`` (the default) it also logs everything
    to ``log_path``, so tests can wait for what mosquitto did (a SUBACK sent).
    """

    directory: Path
    port: int = attrs.field(factory=restartable_port)
    allow_anonymous: bool = True
    log: bool = True
    options: tuple[str, ...] = ()
    """More configuration lines, e.g. ``("max_qos 1",)``."""
    process: subprocess.Popen[bytes] | None = None

    name = "mosquitto"
    host = HOST

    @property
    def config_path(self) -> Path:
        return self.directory / f"mosquitto-{self.port}.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / f"mosquitto-{self.port}.log"

    def start(self) -> Self:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence false",
            *self.options,
        ]
        if self.log:
            lines += [
                f"log_dest file {self.log_path}",
                "log_type all",
                # Started as root, mosquitto drops to user "mosquitto", who may not write here.
                f"user {getpass.getuser()}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        """Block until mosquitto's log holds ``text`` (e.g. a SUBACK sent to a client id)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.02)
        raise AssertionError(f"mosquitto never logged {text!r}")

    def wait_for_subscription(self, client_id: str, timeout: float = 30.0) -> None:
        self.wait_for_log(f"Sending SUBACK to {client_id}", timeout)
