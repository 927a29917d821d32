"""The real 5.0 client, judged by ``ClientModel`` against the real mqttref broker's limits.

The broker tells a small Receive Maximum (``max_awaiting_rel = 2``), Topic
Alias Maximum (2) and Maximum Packet Size (200 bytes) in CONNACK and gives the
topics it sends aliases of its own; the client subscribes to what it publishes,
so both directions of QoS 1 and 2, and both alias maps, are exercised. Every
packet of the client's ``on_packet`` trace goes to the model (``model.client``
with ``model.client5``), with its encoded size: it must accept the real client,
and reject one whose send window, alias table or size check is patched to
ignore the server's CONNACK (issue 16). The model found one rule the client
broke (a resumed session's re-sends beyond a lower Receive Maximum): its
regression test drives the client core packet by packet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttref.client import Client
from mqttref.impl.client import protocol
from mqttref.impl.client.mqtt5 import OutboundAliases
from mqttref.impl.client.options import ClientOptions
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import ConnAck, Packet, Properties, ProtocolLevel, PubAck, Publish
from mqttref.model.client import ClientModel
from mqttref.model.errors import Violation
from tests.client.brokers import MqttrefBroker

LIMITS = (
    "max_awaiting_rel = 2\ntopic_alias_maximum = 2\nsend_topic_aliases = true\n"
    "max_packet_size = 200\n"
)
TOPICS = ("j/a", "j/b/c", "j/d")
MESSAGES = 12
WAIT = 10.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MqttrefBroker]:
    running = MqttrefBroker(tmp_path, extra_config=LIMITS)
    running.start()
    try:
        yield running
    finally:
        running.stop()


class Judge:
    """Feeds the client's packets to the model; keeps every verdict instead of raising
    (the client swallows callback errors)."""

    def __init__(self) -> None:
        self.model = ClientModel(name="client under test")
        self.violations: list[Violation] = []
        self.trace: list[tuple[str, Packet]] = []

    def __call__(self, direction: str, packet: Packet) -> None:
        self.trace.append((direction, packet))
        try:
            if direction == "sent":
                self.model.sent(packet, len(encode(packet, ProtocolLevel.MQTT_5)))
            else:
                self.model.received(packet)
        except Violation as violation:
            self.violations.append(violation)

    def refs(self) -> set[str]:
        return {ref for violation in self.violations for ref in violation.refs}


async def publish_to_itself(broker: MqttrefBroker, judge: Judge) -> int:
    """Publish ``MESSAGES`` at QoS 1 and 2 at once on three topics, to a subscription
    of the same client; how many came back (all, unless the broker closed)."""
    async with Client(
        "127.0.0.1",
        broker.port,
        protocol=5,
        max_inflight=20,
        receive_maximum=3,
        topic_alias_maximum=2,
        on_packet=judge,
    ) as client:
        await client.subscribe("j/#", 2)
        messages = client.messages
        sends = [client.publish(TOPICS[n % 3], b"m%d" % n, 1 + n % 2) for n in range(MESSAGES)]
        await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), WAIT)
        received = 0
        try:
            while received < MESSAGES:
                await asyncio.wait_for(anext(messages), WAIT if not judge.violations else 1)
                received += 1
        except (TimeoutError, Exception):  # the broker closed on a broken client
            pass
        return received


async def test_the_model_accepts_the_real_client_within_the_brokers_limits(
    broker: MqttrefBroker,
) -> None:
    judge = Judge()
    assert await publish_to_itself(broker, judge) == MESSAGES
    assert not judge.violations, judge.violations
    assert judge.model.obligations() == []
    connection = judge.model.v5
    assert connection is not None
    assert connection.quota is not None
    assert connection.aliases is not None
    assert connection.quota.maximum == 2
    assert connection.quota.peak == 2  # the limit was reached, and kept
    assert connection.aliases.maximum == 2
    assert connection.connack is not None
    assert connection.connack.properties.maximum_packet_size == 200
    sent = [p for d, p in judge.trace if d == "sent" and isinstance(p, Publish)]
    received = [p for d, p in judge.trace if d == "received" and isinstance(p, Publish)]
    assert {p.properties.topic_alias for p in sent} == {1, 2, None}  # j/d goes in full
    assert any(p.topic == "" for p in sent)
    assert any(p.topic == "" and p.properties.topic_alias for p in received)


async def test_a_client_beyond_the_servers_receive_maximum_is_caught(
    broker: MqttrefBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[MQTT-3.3.4-7]: the send window patched to ignore the server's Receive Maximum."""
    monkeypatch.setattr(
        protocol.ClientProtocol, "send_window", property(lambda self: self.options.max_inflight)
    )
    judge = Judge()
    await publish_to_itself(broker, judge)
    assert "MQTT-3.3.4-7" in judge.refs(), judge.violations


async def test_a_client_beyond_the_servers_topic_alias_maximum_is_caught(
    broker: MqttrefBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[MQTT-3.2.2-17] [MQTT-3.3.2-9]: the alias table patched to one alias too many."""

    def one_too_many(maximum: int = 0) -> OutboundAliases:
        return OutboundAliases(maximum + 1 if maximum else 0)

    monkeypatch.setattr(protocol, "OutboundAliases", one_too_many)
    judge = Judge()
    await publish_to_itself(broker, judge)
    assert judge.refs() >= {"MQTT-3.2.2-17", "MQTT-3.3.2-9"}, judge.violations


def test_a_resumed_session_re_sends_within_the_new_receive_maximum() -> None:
    """[MQTT-3.3.4-7] [MQTT-4.4.0-1] [MQTT-4.6.0-1]: five messages unacknowledged when the
    connection dropped; the server that resumes the session allows two at a time. The
    client re-sent all five at once before (found by the model)."""
    judge = Judge()
    options = ClientOptions(
        client_id="c",
        clean_session=False,
        protocol_level=ProtocolLevel.MQTT_5,
        session_expiry_interval=60,
    )
    core = protocol.ClientProtocol(options, trace=judge)
    core.connection_made(0.0)
    core.packets_to_send()  # the trace sees a packet as the shell takes it to send
    core.receive_packet(ConnAck(False, 0, Properties(receive_maximum=20)), 0.0)
    for n in range(5):
        core.publish("t", b"%d" % n, 1, False, 0.0)
    assert len(core.packets_to_send()) == 5
    core.connection_lost(1.0)
    judge.model.connection_lost()
    core.connection_made(1.0)
    core.packets_to_send()
    core.receive_packet(ConnAck(True, 0, Properties(receive_maximum=2)), 1.0)
    core.publish("t", b"new", 1, False, 1.0)  # waits behind the re-sends
    resent = []
    for packet_id in range(1, 7):
        resent += [p for p in core.packets_to_send() if isinstance(p, Publish)]
        core.receive_packet(PubAck(packet_id), 2.0)
    assert not judge.violations, judge.violations
    assert [(p.packet_id, p.dup, p.payload) for p in resent] == [
        (1, True, b"0"), (2, True, b"1"), (3, True, b"2"), (4, True, b"3"), (5, True, b"4"),
        (6, False, b"new"),
    ]  # fmt: skip
    assert judge.model.obligations() == []


async def test_a_client_beyond_the_servers_maximum_packet_size_is_caught(
    broker: MqttrefBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[MQTT-3.2.2-15]: the client's own check of the server's limits patched away."""
    monkeypatch.setattr(protocol.ClientProtocol, "_beyond_limits", lambda self, publish: None)
    judge = Judge()
    async with Client("127.0.0.1", broker.port, protocol=5, on_packet=judge) as client:
        await client.publish("j/big", b"x" * 300, 0)
        with contextlib.suppress(Exception):  # the broker closes on it
            await client.publish("j/after", b"", 1)
    assert "MQTT-3.2.2-15" in judge.refs(), judge.violations
