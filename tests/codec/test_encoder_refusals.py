"""The encoder refuses values the wire cannot carry, so nothing invalid leaves mqttref."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import EncodeError
from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)

V31 = ProtocolLevel.MQTT_3_1
V311 = ProtocolLevel.MQTT_3_1_1
V5 = ProtocolLevel.MQTT_5
Q0, Q1 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE

IMPOSSIBLE: dict[str, tuple[Packet, ProtocolLevel]] = {
    "publish-qos0-with-packet-id": (Publish("a", b"", Q0, packet_id=1), V311),
    "publish-qos1-without-packet-id": (Publish("a", b"", Q1), V311),
    "publish-packet-id-0": (Publish("a", b"", Q1, packet_id=0), V311),
    "publish-packet-id-65536": (Publish("a", b"", Q1, packet_id=65536), V311),
    "publish-dup-at-qos0": (Publish("a", b"", Q0, dup=True), V311),
    "publish-qos3": (Publish("a", b"", 3, packet_id=1), V311),  # type: ignore[arg-type]
    "publish-empty-topic": (Publish("", b""), V311),
    "publish-empty-topic-no-alias-v5": (Publish("", b""), V5),
    "publish-wildcard-plus": (Publish("a/+", b""), V311),
    "publish-wildcard-hash": (Publish("a/#", b""), V5),
    "publish-u0000-topic": (Publish("a\x00b", b""), V311),
    "publish-lone-surrogate": (Publish("a\ud800", b""), V311),
    "publish-topic-65536-bytes": (Publish("a" * 65536, b""), V311),
    "publish-properties-below-5": (Publish("a", b"", properties=Properties(topic_alias=1)), V311),
    "publish-topic-alias-0": (Publish("a", b"", properties=Properties(topic_alias=0)), V5),
    "publish-property-not-allowed": (
        Publish("a", b"", properties=Properties(session_expiry_interval=1)), V5),
    "publish-user-property-u0000": (
        Publish("a", b"", properties=Properties(user_properties=(("k\x00", "v"),))), V5),
    "publish-response-topic-wildcard": (
        Publish("a", b"", properties=Properties(response_topic="r/#")), V5),
    "puback-id-0": (PubAck(0), V311),
    "puback-reason-below-5": (PubAck(1, 0x10), V311),
    "puback-reason-not-for-puback": (PubAck(1, 0x92), V5),
    "pubrel-reason-not-for-pubrel": (PubRel(1, 0x10), V5),
    "subscribe-no-filter": (Subscribe(1, ()), V311),
    "subscribe-invalid-filter": (Subscribe(1, (Subscription("a/#/b", Q0),)), V311),
    "subscribe-plus-inside-level": (Subscribe(1, (Subscription("a+", Q0),)), V5),
    "subscribe-qos3": (Subscribe(1, (Subscription("a", 3),)), V311),  # type: ignore[arg-type]
    "subscribe-options-below-5": (Subscribe(1, (Subscription("a", Q0, no_local=True),)), V311),
    "subscribe-retain-handling-3": (
        Subscribe(1, (Subscription("a", Q0, retain_handling=3),)), V5),
    "subscribe-no-local-on-shared": (
        Subscribe(1, (Subscription("$share/g/a", Q0, no_local=True),)), V5),
    "subscribe-shared-without-filter": (Subscribe(1, (Subscription("$share/g", Q0),)), V5),
    "unsubscribe-shared-empty-name": (Unsubscribe(1, ("$share//a",)), V5),
    "subscribe-two-subscription-ids": (
        Subscribe(1, (Subscription("a", Q0),), Properties(subscription_identifiers=(1, 2))), V5),
    "subscribe-subscription-id-0": (
        Subscribe(1, (Subscription("a", Q0),), Properties(subscription_identifiers=(0,))), V5),
    "suback-no-code": (SubAck(1, ()), V311),
    "suback-code-3-below-5": (SubAck(1, (3,)), V311),
    "suback-code-not-for-suback": (SubAck(1, (0x04,)), V5),
    "unsubscribe-no-filter": (Unsubscribe(1, ()), V311),
    "unsubscribe-invalid-filter": (Unsubscribe(1, ("#/a",)), V311),
    "unsuback-codes-below-5": (UnsubAck(1, (0,)), V311),
    "unsuback-no-code-at-5": (UnsubAck(1, ()), V5),
    "connack-session-present-at-3-1": (ConnAck(True, 0), V31),
    "connack-session-present-on-refusal": (ConnAck(True, 5), V311),
    "connack-return-code-6": (ConnAck(False, 6), V311),
    "connack-reason-not-for-connack": (ConnAck(False, 0x04), V5),
    "connect-password-without-user-3-1-1": (Connect(V311, "c", password=b"pw"), V311),
    "connect-password-without-user-3-1": (Connect(V31, "c", password=b"pw"), V31),
    "connect-keep-alive-65536": (Connect(V311, "c", keep_alive=65536), V311),
    "connect-will-wildcard-topic": (Connect(V311, "c", will=Will("a/+", b"")), V311),
    "connect-will-qos3": (Connect(V311, "c", will=Will("a", b"", 3)), V311),  # type: ignore[arg-type]
    "connect-will-payload-65536": (Connect(V311, "c", will=Will("a", bytes(65536))), V311),
    "connect-will-properties-below-5": (
        Connect(V311, "c", will=Will("a", b"", properties=Properties(will_delay_interval=1))),
        V311),
    "connect-properties-below-5": (
        Connect(V311, "c", properties=Properties(session_expiry_interval=1)), V311),
    "connect-client-id-u0000": (Connect(V311, "a\x00"), V311),
    "disconnect-reason-below-5": (Disconnect(0x04), V311),
    "disconnect-reason-not-for-disconnect": (Disconnect(0x01), V5),
    "auth-below-5": (Auth(), V311),
    "auth-reason-not-for-auth": (Auth(0x04), V5),
}


@pytest.mark.parametrize("case", IMPOSSIBLE, ids=IMPOSSIBLE.keys())
def test_the_encoder_refuses_a_value_the_wire_cannot_carry(case: str) -> None:
    packet, level = IMPOSSIBLE[case]
    with pytest.raises(EncodeError):
        encode(packet, level)


def test_an_encode_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="packet identifier"):
        encode(PubAck(0))


def test_a_publish_of_the_largest_remaining_length_plus_one_is_refused() -> None:
    """268,435,455 is the largest Remaining Length (2.2.3)."""
    topic = "t"
    payload = bytes(268_435_455 - (2 + len(topic)) + 1)
    with pytest.raises(EncodeError):
        encode(Publish(topic, payload))
