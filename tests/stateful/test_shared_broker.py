"""The exploration judges its own example on a broker other clients use too.

``mqttref check`` explores someone's broker, where other programs publish, its own
conformance checks leave wills behind, and earlier examples' clients may still be
closing. The example's ``#`` and ``+/a`` subscriptions match their messages, which the
model cannot know: they are acknowledged and left unjudged (a ``$`` topic is always
judged, since a first-level wildcard must not match it [MQTT-4.7.2-1]). And what an
example leaves must not reach the next one: the cleanup ends the example's sessions
before it clears its retained topics, because ending a session that is still
connected publishes its will, which may be retained.
"""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import attrs
from hypothesis.stateful import run_state_machine_as_test

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    PingReq,
    ProtocolLevel,
    Publish,
    PubRel,
    QoS,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.oracle.stateful.machine import BrokerMachine, cleanup, machine_for
from mqttref.oracle.stateful.settings import machine_settings, shrinking_limited_to
from tests.helpers.broker_thread import BrokerThread
from tests.stateful.inprocess import InProcessTarget

V311 = ProtocolLevel.MQTT_3_1_1


def publish_noise(host: str, port: int, stop: threading.Event) -> None:
    """Another client: messages at every QoS on a topic '+/a' and '#' match, and a
    retained one, until ``stop``."""
    with socket.create_connection((host, port)) as sock:
        sock.sendall(encode(Connect(V311, "someone-else"), V311)
                     + encode(Publish("noise/kept", b"r", QoS(1), True, False, 1), V311))
        n = 1
        while not stop.wait(0.05):
            n = n % 60000 + 2
            sock.sendall(
                encode(Publish("other/a", b"q0", QoS(0)), V311)
                + encode(Publish("other/a", b"q1", QoS(1), False, False, n), V311)
                + encode(Publish("other/a", b"q2", QoS(2), False, False, n + 1), V311)
                + encode(PubRel(n + 1), V311))
            sock.setblocking(False)
            try:
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                pass
            sock.setblocking(True)


@attrs.define
class BusyBrokerTarget(InProcessTarget):
    """A fresh in-process broker per example, with another client publishing on it."""

    _stop: threading.Event = attrs.field(factory=threading.Event)
    _noise: threading.Thread | None = None

    def start_example(self) -> tuple[str, int]:
        host, port = super().start_example()
        self._stop = threading.Event()
        self._noise = threading.Thread(target=publish_noise, args=(host, port, self._stop),
                                       daemon=True)
        self._noise.start()
        return host, port

    def end_example(self) -> None:
        self._stop.set()
        if self._noise is not None:
            self._noise.join(5)
        super().end_example()

    def describe(self) -> str:
        return "the in-process mqttref broker, with another client publishing"


def test_other_clients_messages_are_acknowledged_and_not_judged() -> None:
    machine = machine_for(BusyBrokerTarget())
    with shrinking_limited_to(10):
        run_state_machine_as_test(machine, settings=machine_settings(
            "ci", max_examples=8, stateful_step_count=20))


def test_cleanup_ends_sessions_before_clearing_retained_topics_so_no_will_is_left() -> None:
    with BrokerThread() as running:
        prefix = "xcleanup"
        will = Will(f"{prefix}/w", b"will", QoS(0), retain=True)
        connect = Connect(V311, f"{prefix}-c0", clean_session=False, keep_alive=0, will=will)
        still_connected = socket.create_connection((running.host, running.port))
        still_connected.sendall(encode(connect, V311))
        still_connected.recv(4)  # CONNACK
        machine = SimpleNamespace(prefix=prefix, last_connect={"c0": connect},
                                  retained_topics={will.topic})
        cleanup(running.host, running.port, cast(BrokerMachine, machine))
        assert retained_on(running.host, running.port, f"{prefix}/#") == b""
        still_connected.close()


def retained_on(host: str, port: int, topic_filter: str) -> bytes:
    """What a new subscription to ``topic_filter`` receives before its PINGRESP."""
    with socket.create_connection((host, port), timeout=3) as sock:
        sock.sendall(encode(Connect(V311, "looker"), V311)
                     + encode(Subscribe(1, (Subscription(topic_filter, QoS(0)),)), V311))
        time.sleep(0.2)
        sock.sendall(encode(PingReq(), V311))
        received = b""
        while not received.endswith(b"\xd0\x00"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        sock.sendall(encode(Disconnect(), V311))
    # CONNACK (4 bytes) and SUBACK (5 bytes) first; anything before PINGRESP is a PUBLISH
    return received[9:-2]


_: Any = None
