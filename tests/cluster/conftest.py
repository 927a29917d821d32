"""A real cluster for the tests: one nats-server with JetStream and three mqttref nodes.

Everything runs as child processes on loopback: ``nats-server -js`` with its store
in a temporary directory, and three ``mqttref broker --memory --cluster ...``
nodes, n1 to n3, each on a port outside the ephemeral range so that a node killed
with SIGKILL (``NodeProcess.kill``) or a stopped nats-server comes back on the
same port. The cluster is made once per test session (CI time); a test that
kills or stops something brings it back before it ends, and ``cluster`` checks
every process is up before each test that uses it.

nats-server is a peer like mosquitto: without it these tests skip, or fail under
``MQTTREF_REQUIRE_PEERS=1`` (CI).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.helpers.peers import (
    HOST,
    require_peer,
    restartable_port,
    stop_process,
    wait_for_port,
)

NATS_SERVER = "nats-server"
NODE_NAMES = ("n1", "n2", "n3")


def nats_server_installed() -> bool:
    return shutil.which(NATS_SERVER) is not None


def require_nats_server() -> None:
    require_peer(NATS_SERVER, nats_server_installed(),
                 "the cluster tests run mqttref nodes on a real nats-server (apt install "
                 "nats-server)")


@attrs.define
class NatsServer:
    """``nats-server -js`` on a fixed loopback port, its JetStream store in ``store``."""

    store: Path
    log: Path
    port: int = attrs.field(factory=restartable_port)
    monitor_port: int = attrs.field(factory=restartable_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self) -> NatsServer:
        """Start (again, on the same port and store: streams and buckets survive)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [NATS_SERVER, "-js", "-a", HOST, "-p", str(self.port), "-m",
                 str(self.monitor_port), "-sd", str(self.store)],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str) -> Any:
        """A page of the monitoring endpoint (``/connz?subs=1``, ``/subsz``...) as JSON."""
        url = f"http://{HOST}:{self.monitor_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def subscriptions_of(self, node: str) -> set[str]:
        """The NATS subjects the node's connection subscribes to, as the server sees them."""
        page = self.monitor("/connz?subs=1")
        found: set[str] = set()
        for connection in page.get("connections") or ():
            if connection.get("name") == f"mqttref-{node}":
                found.update(connection.get("subscriptions_list") or ())
        return found


@attrs.define
class NodeProcess:
    """One ``mqttref broker --cluster`` node, killable and restartable on its port."""

    name: str
    nats: NatsServer
    log: Path
    port: int = attrs.field(factory=restartable_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "mqttref", "broker", "--memory", "--cluster",
                self.nats.url, "--node-name", self.name, "-p", str(self.port),
                *self.extra_args]

    def start(self) -> NodeProcess:
        """Start and wait until it listens (it listens only once it is in the cluster)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=20, process=self.process)
        return self

    def kill(self) -> None:
        """``kill -9``: no goodbye to NATS or to its clients."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@attrs.define
class Cluster:
    """The nats-server and the nodes n1, n2, n3."""

    nats: NatsServer
    nodes: list[NodeProcess]

    def node(self, name: str) -> NodeProcess:
        return next(node for node in self.nodes if node.name == name)

    def ensure_running(self) -> None:
        """Bring back whatever a previous test left stopped."""
        if not self.nats.running:
            self.nats.start()
        for node in self.nodes:
            if not node.running:
                node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nats.stop()

    def logs(self) -> str:
        """The end of every log, for a failing test's message."""
        parts = []
        for path in [self.nats.log, *(node.log for node in self.nodes)]:
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name}\n{text[-3000:]}")
        return "\n".join(parts)


@pytest.fixture(scope="session")
def cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_nats_server()
    base = tmp_path_factory.mktemp("cluster")
    nats = NatsServer(store=base / "jetstream", log=base / "nats.log")
    nodes = [NodeProcess(name, nats, base / f"{name}.log") for name in NODE_NAMES]
    cluster = Cluster(nats, nodes)
    try:
        nats.start()
        for node in nodes:
            node.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(cluster_session: Cluster) -> Cluster:
    """The session's cluster, every process up."""
    cluster_session.ensure_running()
    return cluster_session
