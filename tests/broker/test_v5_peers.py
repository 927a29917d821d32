"""The broker at MQTT 5.0 with clients written by others: paho-mqtt 2 at MQTTv5,
mosquitto_pub/mosquitto_sub -V mqttv5, and MQTT.js 5; plus the DISCONNECT a 5.0
client is sent when the broker stops, seen on a raw socket."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import ConnAck, Connect, Disconnect, ProtocolLevel
from tests.broker.paho_client import Paho
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import require_peer
from tests.helpers.raw_client import CLOSED, RawClient

NODE_DIR = Path(__file__).parent.parent / "node"
WAIT = 5.0


def paho_properties(packet_type: int) -> Any:
    """paho's Properties: attributes made by name at run time, so typed as Any here."""
    return PahoProperties(packet_type)  # type: ignore[no-untyped-call]


def prop(message: mqtt.MQTTMessage, name: str) -> Any:
    """One property of a received message, None when absent."""
    return getattr(message.properties, name, None)


class Paho5:
    """One paho-mqtt client at MQTTv5 on its own network thread."""

    def __init__(self, port: int, client_id: str, *, clean_start: bool = True,
                 session_expiry: int | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.session_present = False
        self.disconnect_reason: int | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_disconnect = self._on_disconnect
        properties = paho_properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            properties.SessionExpiryInterval = session_expiry
        self.client.connect("127.0.0.1", port, 60, clean_start=clean_start,
                            properties=properties)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.disconnect_reason = int(reason.value)
        self.disconnected.set()

    def subscribe(self, topic_filter: str, qos: int) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_args: done.set()
        self.client.subscribe(topic_filter, qos)
        assert done.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int,
                properties: PahoProperties | None = None) -> None:
        info = self.client.publish(topic, payload, qos, properties=properties)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def expect(self, count: int) -> list[mqtt.MQTTMessage]:
        return [self.messages.get(timeout=WAIT) for _ in range(count)]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_properties(n: int) -> PahoProperties:
    properties = paho_properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("k", "v"), ("n", str(n))]
    properties.ContentType = "text/plain"
    properties.CorrelationData = b"c%d" % n
    properties.ResponseTopic = "reply/to"
    return cast(PahoProperties, properties)


def test_paho_v5_exchanges_messages_at_each_qos_with_their_properties(
    broker: BrokerThread,
) -> None:
    """paho publishes at each QoS with properties; the subscriber gets the User Properties
    unaltered [MQTT-3.3.2-17] in order [MQTT-3.3.2-18], the Content Type [MQTT-3.3.2-20],
    the Correlation Data [MQTT-3.3.2-16] and the Response Topic [MQTT-3.3.2-15]."""
    sub = Paho5(broker.port, "p5-sub")
    sub.subscribe("p5/#", 2)
    pub = Paho5(broker.port, "p5-pub")
    for qos in (0, 1, 2):
        pub.publish(f"p5/{qos}", b"q%d" % qos, qos, publish_properties(qos))
    got = sorted(sub.expect(3), key=lambda m: m.topic)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        ("p5/0", b"q0", 0), ("p5/1", b"q1", 1), ("p5/2", b"q2", 2)]
    for n, message in enumerate(got):
        # In order [MQTT-3.3.2-18], the others unchanged [MQTT-3.3.2-17].
        assert prop(message, "UserProperty") == [("k", "v"), ("n", str(n))]
        assert (prop(message, "ContentType"), prop(message, "CorrelationData"),
                prop(message, "ResponseTopic")) == ("text/plain", b"c%d" % n, "reply/to")
    pub.stop()
    sub.stop()


def test_a_message_crosses_levels_both_ways_with_paho(broker: BrokerThread) -> None:
    old = Paho(broker.port, "p311").connect()
    old.subscribe("x/#", 1)
    new = Paho5(broker.port, "p5")
    new.subscribe("x/#", 1)
    new.publish("x/from5", b"five", 1, publish_properties(1))
    old.publish("x/from311", b"three", 1)
    assert sorted(m.payload for m in old.expect(2)) == [b"five", b"three"]
    got = {m.payload: m for m in new.expect(2)}
    assert prop(got[b"five"], "ContentType") == "text/plain"
    assert prop(got[b"three"], "ContentType") is None  # a 3.1.1 message has none
    new.stop()
    old.disconnect()


def test_paho_v5_session_expiry_keeps_the_session_and_its_messages(
    broker: BrokerThread,
) -> None:
    first = Paho5(broker.port, "keeper", clean_start=False, session_expiry=60)
    first.subscribe("kept", 1)
    first.stop()
    other = Paho5(broker.port, "other")
    other.publish("kept", b"while away", 1)
    other.stop()
    again = Paho5(broker.port, "keeper", clean_start=False, session_expiry=60)
    assert again.session_present
    assert [m.payload for m in again.expect(1)] == [b"while away"]
    again.stop()


def test_paho_v5_taken_over_is_told_0x8e(broker: BrokerThread) -> None:
    first = Paho5(broker.port, "twice")
    second = Paho5(broker.port, "twice")
    assert first.disconnected.wait(WAIT)
    assert first.disconnect_reason == ReasonCode.SESSION_TAKEN_OVER
    second.stop()
    first.client.loop_stop()


def mosquitto(name: str) -> str:
    path = shutil.which(name)
    require_peer(name, path is not None, "the mosquitto-clients package")
    assert path is not None
    return path


@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_mosquitto_clients_at_5_0_carry_user_properties(
    broker: BrokerThread, qos: str,
) -> None:
    receiver = subprocess.Popen(
        [mosquitto("mosquitto_sub"), "-V", "mqttv5", "-p", str(broker.port), "-t", "m5/#",
         "-q", "2", "-C", "2", "-W", "10", "-F", "%t|%p|%q|%P"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(0.5)  # mosquitto_sub says nothing when subscribed
    for n in range(2):
        subprocess.run(
            [mosquitto("mosquitto_pub"), "-V", "mqttv5", "-p", str(broker.port),
             "-t", f"m5/{n}", "-m", f"hello {n}", "-q", qos,
             "-D", "publish", "user-property", "k", f"v{n}"],
            check=True, timeout=10)
    out, err = receiver.communicate(timeout=15)
    assert out.splitlines() == [f"m5/{n}|hello {n}|{qos}|k:v{n}" for n in range(2)], err


def test_mosquitto_sub_with_session_expiry_gets_what_came_while_away(
    broker: BrokerThread,
) -> None:
    sub = [mosquitto("mosquitto_sub"), "-V", "mqttv5", "-p", str(broker.port), "-t", "away",
           "-q", "1", "-i", "mosq-keeper", "-c", "-x", "60"]
    subprocess.run([*sub, "-W", "1"], check=False, timeout=10, capture_output=True)
    subprocess.run([mosquitto("mosquitto_pub"), "-V", "mqttv5", "-p", str(broker.port),
                    "-t", "away", "-m", "kept", "-q", "1"], check=True, timeout=10)
    again = subprocess.run([*sub, "-C", "1", "-W", "5"], check=False, timeout=10,
                           capture_output=True, text=True)
    assert again.stdout.splitlines() == ["kept"], again.stderr


def test_mqttjs_5_exchanges_messages_with_properties_aliases_and_sessions(
    broker: BrokerThread,
) -> None:
    node = shutil.which("node")
    require_peer("node", node is not None, "Node.js, for MQTT.js")
    require_peer("mqtt (npm)", (NODE_DIR / "node_modules" / "mqtt").is_dir(),
                 "run npm ci in tests/node")
    assert node is not None
    run = subprocess.run([node, str(NODE_DIR / "mqttjs_v5.mjs"), str(broker.port)],
                         capture_output=True, text=True, timeout=30, check=False)
    result = json.loads(run.stdout or "{}")
    assert "error" not in result, result
    assert result["topicAliasMaximum"] == 10
    assert [(m["payload"], m["qos"]) for m in result["received"]] == [
        ("q0", 0), ("q1", 1), ("q2", 2)]
    for n, message in enumerate(result["received"]):
        # Every copy has its whole topic back, whether MQTT.js sent it or its alias.
        assert message["topic"] == "js/a/long/topic/name"
        assert message["userProperties"] == {"k": "v", "n": str(n)}
        assert (message["contentType"], message["correlationData"]) == ("text/plain", f"c{n}")
    assert result["sessionPresent"] is True
    assert result["kept"] == ["while away"]


def test_a_5_0_client_is_sent_disconnect_0x8b_when_the_broker_stops() -> None:
    broker = BrokerThread().start()
    try:
        with RawClient(broker.port) as client:
            client.send_bytes(encode(Connect(ProtocolLevel.MQTT_5, "stays"), ProtocolLevel.MQTT_5))
            client.decoder.protocol_level = ProtocolLevel.MQTT_5
            connack = client.receive()
            assert isinstance(connack, ConnAck)
            assert connack.return_code == 0
            broker.stop()
            disconnect = client.receive()
            assert isinstance(disconnect, Disconnect)
            assert disconnect.reason_code == ReasonCode.SERVER_SHUTTING_DOWN
            assert client.receive() == CLOSED
    finally:
        broker.stop()


def test_mqttjs_5_resolves_the_topic_aliases_the_broker_sends(
    start_broker: Callable[..., BrokerThread],
) -> None:
    """With ``send_topic_aliases`` the broker gives a repeated topic an alias within the
    client's Topic Alias Maximum; MQTT.js, written by others, reads it back whole."""
    node = shutil.which("node")
    require_peer("node", node is not None, "Node.js, for MQTT.js")
    require_peer("mqtt (npm)", (NODE_DIR / "node_modules" / "mqtt").is_dir(),
                 "run npm ci in tests/node")
    assert node is not None
    broker = start_broker(send_topic_aliases=True)
    run = subprocess.run([node, str(NODE_DIR / "mqttjs_v5_aliases.mjs"), str(broker.port)],
                         capture_output=True, text=True, timeout=30, check=False)
    result = json.loads(run.stdout or "{}")
    assert "error" not in result, result
    assert [(m["topic"], m["payload"], m["alias"]) for m in result["received"]] == [
        ("alias/a/long/topic", f"m{n}", 1) for n in (1, 2, 3)]
