"""Brokers written by others for the conformance tests: mosquitto, aedes and mqttools, as child
processes."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.peers import (
    HOST,
    MOSQUITTO,
    MosquittoProcess,
    free_port,
    mosquitto_installed,
    require_peer,
    stop_process,
    wait_for_port,
)


def mosquitto_version() -> str:
    out = subprocess.run([str(MOSQUITTO), "-h"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0]
    return first.split("version", 1)[1].strip()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A mosquitto on a free loopback port with a generated config; yields the port."""
    require_peer("mosquitto", mosquitto_installed(), f"the conformance check runs on {MOSQUITTO}")
    # No log: the conformance runs do not read it, and log_type all would write every packet.
    with MosquittoProcess(tmp_path_factory.mktemp("mosquitto"), log=False) as running:
        yield running.port


@pytest.fixture(scope="session")
def mosquitto_max_qos_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """mosquitto configured with ``max_qos 1``: it grants QoS 1 for QoS 2 requests and
    closes the connection of a client that publishes at QoS 2 (its legal choices)."""
    require_peer("mosquitto", mosquitto_installed(), f"the conformance check runs on {MOSQUITTO}")
    with MosquittoProcess(tmp_path_factory.mktemp("mosquitto-q1"), log=False,
                          options=("max_qos 1",)) as running:
        yield running.port


NODE_DIR = Path(__file__).parent / "node"


def aedes_version() -> str:
    package = NODE_DIR / "node_modules" / "aedes" / "package.json"
    version: str = json.loads(package.read_text("utf-8"))["version"]
    return version


def _install_aedes() -> None:
    """``npm ci`` in tests/conformance/node when aedes is missing (as scripts/test does
    for tests/node); skip (fail with MQTTREF_REQUIRE_PEERS=1) when node or npm is not
    there or the install fails."""
    require_peer("node", shutil.which("node") is not None, "Node.js runs aedes")
    if (NODE_DIR / "node_modules" / "aedes").exists():
        return
    require_peer("npm", shutil.which("npm") is not None, "npm installs aedes")
    result = subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=300, check=False)
    require_peer("aedes", result.returncode == 0,
                 f"npm ci in {NODE_DIR} failed: {result.stderr.strip()[:200]}")


@pytest.fixture(scope="session")
def aedes() -> Iterator[int]:
    """aedes (Node.js) on a free loopback port; yields the port."""
    _install_aedes()
    port = free_port()
    process = subprocess.Popen(["node", str(NODE_DIR / "aedes-server.mjs"), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        stop_process(process)


MQTTOOLS = Path(sys.executable).parent / "mqttools"
"""The mqttools script of the interpreter running the tests (the venv's bin dir, where the
``test`` extra installs it), found whatever PATH holds."""


def mqttools_version() -> str:
    return importlib.metadata.version("mqttools")


@pytest.fixture(scope="session")
def mqttools() -> Iterator[int]:
    """mqttools' broker (Python, MQTT 5.0 only) on a free loopback port; yields the port.

    ``--secure-port 0`` with no certificate files: mqttools opens no TLS listener then."""
    require_peer("mqttools", MQTTOOLS.exists(),
                 f"{MQTTOOLS}: pip install mqttools==0.50.0 (the test extra) runs the broker")
    port = free_port()
    process = subprocess.Popen([str(MQTTOOLS), "broker", "--host", HOST, "--port", str(port),
                                "--secure-port", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield port
    finally:
        stop_process(process)
