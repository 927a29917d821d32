"""Real processes for the durability tests: ``mqttref broker`` on a data directory, and paho.

``BrokerProcess`` starts ``mqttref broker -p PORT --data-dir DIR`` as a child
process and can ``kill -9`` it and start it again on the same port and
directory. ``DurableSubscriber`` is a paho-mqtt client (a client written by
others) with a fixed client id and clean session 0 that records every
``on_message`` call, so duplicates are counted, not hidden.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers.peers import restartable_port, stop_process, wait_for_port

MQTTREF = Path(sys.executable).with_name("mqttref")
WAIT = 20.0


def run_broker(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """``mqttref broker ARGS`` to completion (for start-up refusals)."""
    return subprocess.run([str(MQTTREF), "broker", *args], check=False, capture_output=True,
                          text=True, timeout=timeout)


@attrs.define
class BrokerProcess:
    """``mqttref broker`` on one port and one data directory, restartable."""

    data_dir: Path
    config: str = ""
    """TOML text for ``-c``; empty for none."""
    port: int = attrs.field(factory=restartable_port)
    """Below the ephemeral range, so a restart finds it free (see ``restartable_port``)."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"broker-{self.port}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> BrokerProcess:
        command = [str(MQTTREF), "broker", "-p", str(self.port), "--data-dir", str(self.data_dir)]
        if self.config:
            config_path = self.data_dir.parent / f"broker-{self.port}.toml"
            config_path.write_text(self.config)
            command += ["-c", str(config_path)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self.starts += 1
        try:
            wait_for_port(self.port, WAIT, process=self.process)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log ends:\n{self.log()[-2000:]}") from None
        return self

    def kill9(self) -> None:
        """``kill -9``: no signal handler runs, nothing is flushed."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(WAIT)

    def stop(self) -> int | None:
        """SIGTERM and wait: the clean shutdown."""
        process, self.process = self.process, None
        if process is None:
            return None
        return stop_process(process, WAIT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@attrs.frozen
class Received:
    topic: str
    seq: int
    qos: int
    dup: bool


class DurableSubscriber:
    """A paho client with clean session 0 that keeps its session state across reconnects.

    The same paho ``Client`` object is reconnected after a broker restart, as a
    client process that outlives the broker does: paho keeps inbound QoS 2
    messages that await PUBREL only in that object, and it answers a PUBREL
    for an id it does not know with PUBCOMP without delivering (paho's own
    comment, "thus losing a message"), so a fresh object would lose messages
    that the broker handled correctly.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        # paho annotates the delays int, yet only adds them to its clock and sleeps on them:
        # a quarter second is honoured, and the stubs are what is wrong.
        self.client.reconnect_delay_set(0.25, 0.25)  # type: ignore[arg-type]
        self.received: list[Received] = []
        self.distinct: set[tuple[str, int]] = set()
        """(topic, sequence number) of every message received at least once."""
        self.connacks: list[bool] = []
        """Session present of every CONNACK, in order."""
        self.on_count: Callable[[int], None] | None = None
        """Called (in paho's thread) with the number of distinct messages received so far."""
        self._changed = threading.Condition()
        self._subacks: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _c: Any, _u: Any, flags: Any, _reason: Any, _p: Any) -> None:
        with self._changed:
            self.connacks.append(bool(flags.session_present))
            self._changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            item = Received(message.topic, int(message.payload), message.qos, bool(message.dup))
            self.received.append(item)
            self.distinct.add((item.topic, item.seq))
            if self.on_count is not None:
                self.on_count(len(self.distinct))  # before waking the waiters: they see its effect
            self._changed.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._changed:
            self._subacks[mid] = [int(code.value) for code in codes]
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def connect(self) -> None:
        before = len(self.connacks)
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.wait_until(lambda: len(self.connacks) > before), "no CONNACK"

    def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        result, mid = self.client.subscribe(list(filters))
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert mid is not None
        assert self.wait_until(lambda: mid in self._subacks), "no SUBACK"
        return self._subacks.pop(mid)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(port: int, messages: list[tuple[str, bytes, int]], *, retain: bool = False,
                client_id: str = "durability-publisher", timeout: float = WAIT) -> None:
    """Publish with paho and wait until every QoS 1/2 message is acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(100)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *_args: acked.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload, qos in messages:
            info = client.publish(topic, payload, qos, retain)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
        for _ in messages:
            assert acked.acquire(timeout=timeout), "a publish was never acknowledged"
    finally:
        client.disconnect()
        client.loop_stop()


class DurablePublisher:
    """A paho publisher with clean session 0 whose in-flight messages outlive a broker crash.

    paho keeps every unacknowledged QoS 1/2 message of the session and, on
    reconnecting with clean session 0, sends it again (PUBLISH with DUP=1, or
    PUBREL once PUBREC came) [MQTT-4.4.0-1]; the broker must then route a
    QoS 2 message whose PUBREC it sent before the crash no second time.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        # paho annotates the delays int, yet only adds them to its clock and sleeps on them:
        # a quarter second is honoured, and the stubs are what is wrong.
        self.client.reconnect_delay_set(0.25, 0.25)  # type: ignore[arg-type]
        self.port = port
        self.acked = 0
        self.connacks: list[bool] = []
        self.on_count: Callable[[int], None] | None = None
        """Called (in paho's thread) with the number of acknowledged messages so far."""
        self._changed = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect

    def _on_connect(self, _c: Any, _u: Any, flags: Any, _reason: Any, _p: Any) -> None:
        with self._changed:
            self.connacks.append(bool(flags.session_present))
            self._changed.notify_all()

    def _on_publish(self, *_args: Any) -> None:
        with self._changed:
            self.acked += 1
            if self.on_count is not None:
                self.on_count(self.acked)
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.wait_until(lambda: bool(self.connacks)), "no CONNACK"

    def publish(self, messages: list[tuple[str, bytes, int]]) -> None:
        """Hand every message to paho, which keeps 20 in flight and queues the rest."""
        for topic, payload, qos in messages:
            info = self.client.publish(topic, payload, qos)
            assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), info.rc

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
