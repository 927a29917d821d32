"""Brokers written by others for the conformance tests: mosquitto and aedes, as child processes."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MOSQUITTO = Path("/usr/sbin/mosquitto")


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


def mosquitto_version() -> str:
    out = subprocess.run([str(MOSQUITTO), "-h"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0]
    return first.split("version", 1)[1].strip()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A mosquitto on a free loopback port with a generated config; yields the port."""
    if not MOSQUITTO.exists():
        pytest.skip("mosquitto is not installed")
    directory = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([str(MOSQUITTO), "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


NODE_DIR = Path(__file__).parent / "node"


def aedes_version() -> str:
    package = NODE_DIR / "node_modules" / "aedes" / "package.json"
    version: str = json.loads(package.read_text("utf-8"))["version"]
    return version


def _install_aedes() -> None:
    """``npm ci`` in tests/conformance/node when aedes is missing (as scripts/test does
    for tests/node); skip when node or npm is not there or the install fails."""
    if (NODE_DIR / "node_modules" / "aedes").exists():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run aedes")
    result = subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot install aedes: {result.stderr.strip()[:200]}")


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
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
