"""Nodes whose sessions live in JetStream, for the takeover, session and will tests.

These tests need cluster sessions only (``impl/cluster/sessions.py``), not the
node's routing, so they build nodes from the parts: a ``Broker`` with the
JetStream session store, ``attach_sessions`` on its loop, and their own
``nats-server -js`` on a free port with a temporary store directory. A node is
either in this process (``SessionNode``, a ``BrokerThread``: its state can be
read) or a child process (``ProcessNode``: ``kill()`` is SIGKILL, a real death).
Run as ``python -m tests.cluster.sessions_nodes NATS_URL NAME LEASE``, this module
is that child: it prints ``port N`` once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import attrs

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.cluster.sessions import SessionsHandle, attach_sessions, wrap_store
from mqttref.impl.store.memory import MemoryStore
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import free_port, require_peer, stop_process, wait_for_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
REPO = Path(__file__).resolve().parents[2]


def require_nats_server() -> None:
    """Fail under MQTTREF_REQUIRE_PEERS=1 (CI), else skip, when nats-server is missing."""
    require_peer("nats-server", Path(NATS_SERVER).exists(),
                 "the Debian package nats-server (JetStream) runs the cluster's sessions")


@attrs.define
class NatsServer:
    """``nats-server -js`` on a free loopback port, its store in a temporary directory."""

    port: int = attrs.field(factory=free_port)
    store_dir: str = attrs.field(factory=lambda: tempfile.mkdtemp(prefix="mqttref-js-"))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self, *, keep_store: bool = False) -> None:
        """Stop the server; ``keep_store`` for a ``start`` again on the same port and store."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if not keep_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)


def node_broker(retry_interval: float = 10.0) -> Broker:
    """A broker with its sessions in JetStream once attached (memory for the rest)."""
    config = Config(port=0, host="127.0.0.1", retry_interval=retry_interval, sys_interval=0)
    return Broker(config, store=wrap_store(config, MemoryStore()))


class SessionNode:
    """A node in this process: a broker on its own loop and thread, sessions attached."""

    def __init__(self, nats_url: str, name: str, lease: float) -> None:
        self.name = name
        self.running = BrokerThread(broker=node_broker()).start()
        self.handle: SessionsHandle = self.running.run(attach_sessions(
            self.running.broker, servers=[nats_url], node_name=name, lease=lease))

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def broker(self) -> Broker:
        return self.running.broker

    def stop(self) -> None:
        """A clean stop: connections closed, then the lease let go."""
        try:
            self.running.run(self.running.broker.stop())
            self.running.run(self.handle.close())
        finally:
            self.running.stop()


@attrs.define
class ProcessNode:
    """A node in a child process (``kill`` is SIGKILL: its lease is left to run out)."""

    nats_url: str
    name: str
    lease: float
    process: subprocess.Popen[str] | None = None
    port: int = 0

    def start(self) -> Self:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.sessions_nodes", self.nats_url, self.name,
             str(self.lease)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            stop_process(self.process)
            raise AssertionError(f"node {self.name} did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


async def _serve(nats_url: str, name: str, lease: float) -> None:
    broker = node_broker()
    await broker.start()
    handle = await attach_sessions(broker, servers=[nats_url], node_name=name, lease=lease)
    print(f"port {broker.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await broker.stop()
    await handle.close()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2], float(sys.argv[3])))


@contextlib.contextmanager
def two_nodes(url: str, lease: float) -> Iterator[tuple[SessionNode, SessionNode]]:
    """Nodes n1 and n2 on the nats-server at ``url``, stopped afterwards even when the
    second fails to start (the first must not outlive the test)."""
    started: list[SessionNode] = []
    try:
        started.append(SessionNode(url, "n1", lease))
        started.append(SessionNode(url, "n2", lease))
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()


@contextlib.contextmanager
def own_nats_and_two_nodes(lease: float) -> Iterator[tuple[SessionNode, SessionNode]]:
    """A nats-server of the test's own (a fresh JetStream store) with ``two_nodes`` on it."""
    require_nats_server()
    nats = NatsServer().start()
    try:
        with two_nodes(nats.url, lease) as both:
            yield both
    finally:
        nats.stop()
