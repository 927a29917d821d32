"""A store that cannot write (disk full, I/O error) stops the broker: fail-stop.

No acknowledgement may leave for a change that is not on disk, and no later
change may be written without the lost ones; so the broker stops at the
first failed commit, and a broker restarted on the directory gives back
everything acknowledged before.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import PubAck, Publish, QoS
from mqttref.impl.store import SQLiteStore
from tests.durability.processes import (
    MQTTREF,
    WAIT,
    BrokerProcess,
    DurableSubscriber,
    publish_all,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import restartable_port, wait_for_port
from tests.helpers.raw_client import CLOSED, RawClient

Q1 = QoS.AT_LEAST_ONCE


def test_a_failed_commit_acknowledges_nothing_and_stops_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path), retry_interval=0)
    running = BrokerThread(config).start()
    try:
        subscriber = RawClient(running.port)
        subscriber.connect("kept", clean_session=False)
        subscriber.subscribe("t", Q1)
        subscriber.sock.close()
        publisher = RawClient(running.port)
        publisher.connect("pub")
        publisher.send(Publish("t", b"before", Q1, packet_id=1))
        assert publisher.receive() == PubAck(1)

        def disk_full(self: SQLiteStore, db: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(SQLiteStore, "_apply", disk_full)
        publisher.send(Publish("t", b"after", Q1, packet_id=2))
        assert publisher.receive_all(quiet=2.0) == [CLOSED]  # no PUBACK, then closed
        assert running.wait_for(lambda b: b.stopped.is_set())
        failure = running.call(lambda b: b.failure)
        assert failure is not None
        assert "disk is full" in str(failure)
    finally:
        running.stop()
    monkeypatch.undo()
    with BrokerThread(config) as again:
        subscriber = RawClient(again.port)
        assert subscriber.connect("kept", clean_session=False).session_present
        packet = subscriber.receive()
        assert isinstance(packet, Publish)
        assert packet.payload == b"before"
        assert subscriber.receive_all() == []


def test_a_full_disk_stops_the_command_with_one_line_and_exit_1(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes past the limit fail with EFBIG, as a full disk would."""
    data_dir = tmp_path / "data"
    BrokerProcess(data_dir).start().stop()  # create the database without a limit
    port = restartable_port()
    prlimit = shutil.which("prlimit")
    assert prlimit is not None, "prlimit (util-linux) is needed for this test"
    process = subprocess.Popen(
        [prlimit, f"--fsize={256 * 1024}", str(MQTTREF), "broker", "-p", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    acknowledged = 0
    try:
        wait_for_port(port, WAIT, process=process)
        subscriber = DurableSubscriber(port, "offline")
        subscriber.connect()
        subscriber.subscribe(("big", 1))
        subscriber.disconnect()
        payload = b"x" * 8192
        for _ in range(100):  # 800 KiB: far past the limit
            try:
                publish_all(port, [("big", payload, 1)], timeout=3.0)
            except (AssertionError, OSError):
                break
            acknowledged += 1
        _out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("mqttref broker: error:")]
    assert len(errors) == 1
    assert "mqttref.db: cannot write" in errors[0]
    assert 0 < acknowledged < 100
    # Everything acknowledged before the failure is there after a restart.
    broker = BrokerProcess(data_dir, port=restartable_port()).start()
    try:
        subscriber = DurableSubscriber(broker.port, "offline")
        received: list[bytes | bytearray] = []  # paho's MQTTMessage.payload
        subscriber.client.on_message = lambda _c, _u, m: received.append(m.payload)
        subscriber.connect()
        subscriber.wait_until(lambda: False, timeout=1.0)
        subscriber.disconnect()
        assert subscriber.connacks == [True]
        assert received == [payload] * acknowledged
    finally:
        broker.stop()
