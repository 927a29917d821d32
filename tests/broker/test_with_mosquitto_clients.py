"""The broker with mosquitto_pub and mosquitto_sub, and `mqttref broker` as a process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import free_port, wait_for_port

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None, reason="mosquitto-clients is not installed"
)
MQTTREF = Path(sys.executable).with_name("mqttref")


def sub(port: int, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-W", "10", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(0.4)  # mosquitto_sub offers no "subscribed" signal; give it time to SUBSCRIBE
    return process


def pub(port: int, *args: str) -> None:
    subprocess.run(["mosquitto_pub", "-p", str(port), *args], check=True, timeout=10)


def lines(process: subprocess.Popen[str]) -> list[str]:
    out, _err = process.communicate(timeout=15)
    return out.splitlines()


@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_mosquitto_pub_to_mosquitto_sub_at_each_qos(broker: BrokerThread, qos: str) -> None:
    receiver = sub(broker.port, "-t", "m/#", "-q", "2", "-v", "-C", "3")
    for n in range(3):
        pub(broker.port, "-t", f"m/{n}", "-m", f"hello {n}", "-q", qos)
    assert lines(receiver) == [f"m/{n} hello {n}" for n in range(3)]


def test_retained_with_mosquitto_clients_set_replace_and_clear(broker: BrokerThread) -> None:
    pub(broker.port, "-t", "ret", "-m", "first", "-r", "-q", "1")
    pub(broker.port, "-t", "ret", "-m", "second", "-r", "-q", "1")
    receiver = sub(broker.port, "-t", "ret", "-C", "1", "-F", "%r %p")
    assert lines(receiver) == ["1 second"]
    pub(broker.port, "-t", "ret", "-n", "-r")
    quiet = subprocess.run(
        ["mosquitto_sub", "-p", str(broker.port), "-t", "ret", "-W", "1"],
        check=False, capture_output=True, text=True, timeout=10,
    )
    assert quiet.stdout == ""


def test_a_killed_mosquitto_sub_has_its_will_published(broker: BrokerThread) -> None:
    watcher = sub(broker.port, "-t", "wills/#", "-C", "1", "-v")
    victim = sub(broker.port, "-t", "anything", "-i", "victim",
                 "--will-topic", "wills/victim", "--will-payload", "lost", "--will-qos", "1")
    victim.kill()  # no DISCONNECT: the kernel closes the socket
    victim.communicate()
    assert lines(watcher) == ["wills/victim lost"]


def test_persistent_mosquitto_sub_gets_its_offline_queue(broker: BrokerThread) -> None:
    first = sub(broker.port, "-t", "off/#", "-q", "1", "-i", "persistent", "-c", "-C", "1")
    pub(broker.port, "-t", "off/0", "-m", "online", "-q", "1")
    assert lines(first) == ["online"]
    for n in range(1, 4):
        pub(broker.port, "-t", f"off/{n}", "-m", f"offline {n}", "-q", "1")
    back = sub(broker.port, "-t", "off/#", "-q", "1", "-i", "persistent", "-c", "-C", "3")
    assert lines(back) == [f"offline {n}" for n in range(1, 4)]


@pytest.fixture
def mqttref_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [str(MQTTREF), "broker", "-p", str(port), "-v", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_broker(process, port)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for_broker(process: subprocess.Popen[str], port: int, timeout: float = 30.0) -> None:
    """Until the broker listens; fail at once, with its message, if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _out, err = process.communicate()
            raise AssertionError(f"mqttref broker exited with {process.returncode}: {err}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError(f"mqttref broker does not listen on {port} after {timeout} s")


def test_the_mqttref_broker_command_serves_mosquitto_clients_and_stops_on_sigterm(
    mqttref_process: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = mqttref_process
    receiver = sub(port, "-t", "cmd/#", "-q", "2", "-C", "3")
    for qos in "012":
        pub(port, "-t", "cmd/x", "-m", f"qos {qos}", "-q", qos)
    assert lines(receiver) == ["qos 0", "qos 1", "qos 2"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    _out, err = process.communicate()
    assert "SUBSCRIBE" in err  # -v logs every packet type
    assert "mqttref broker stopped" in err


def test_sigint_stops_the_broker_cleanly(
    mqttref_process: tuple[subprocess.Popen[str], int],
) -> None:
    process, _port = mqttref_process
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("max_inflight = 0\n", "max_inflight"),
        ("retry_interval = 'soon'\n", "retry_interval"),
        ("colour = 'blue'\n", "colour"),
    ],
)
def test_a_bad_config_file_exits_2_naming_the_key(
    tmp_path: Path, content: str, key: str
) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(content)
    result = subprocess.run([str(MQTTREF), "broker", "-c", str(config)],
                            check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"error: {key}:" in result.stderr


@pytest.mark.parametrize("args", [["-p", "99999"], ["-p", "many"], ["--bogus"]])
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    result = subprocess.run([str(MQTTREF), "broker", *args],
                            check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1


def test_a_config_file_sets_the_limits(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "broker.toml"
    config.write_text(f"[broker]\nport = {port}\nmax_keep_alive = 30\n")
    process = subprocess.Popen([str(MQTTREF), "broker", "-c", str(config), "--memory"],
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for_port(port)
        refused = subprocess.run(
            ["mosquitto_pub", "-p", str(port), "-k", "60", "-t", "t", "-m", "x"],
            check=False, capture_output=True, text=True, timeout=10,
        )
        assert refused.returncode != 0
        accepted = subprocess.run(
            ["mosquitto_pub", "-p", str(port), "-k", "30", "-t", "t", "-m", "x"],
            check=False, capture_output=True, text=True, timeout=10,
        )
        assert accepted.returncode == 0
    finally:
        process.terminate()
        process.wait(10)
