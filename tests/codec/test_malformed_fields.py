"""Violations inside a packet's fields: ids, topics, filters, strings, CONNECT, trailing bytes."""

from __future__ import annotations

import pytest

from mqttref.impl.codec.errors import (
    MalformedPacket,
    ProtocolError,
    ReasonCode,
    TopicFilterInvalid,
    TopicNameInvalid,
    UnsupportedProtocol,
)
from mqttref.impl.codec.packets import Connect, ProtocolLevel, Publish

from .wirebytes import accepts, connect, frame, raw_string, rejects, string, u16

V31 = ProtocolLevel.MQTT_3_1
V311 = ProtocolLevel.MQTT_3_1_1
V5 = ProtocolLevel.MQTT_5
MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR

# ---------------------------------------------------------------- packet identifiers

ZERO_ID = {
    "PUBLISH-qos1": frame(0x32, string("a") + u16(0) + b"x"),
    "PUBLISH-qos2": frame(0x34, string("a") + u16(0) + b"x"),
    "PUBACK": frame(0x40, u16(0)),
    "PUBREC": frame(0x50, u16(0)),
    "PUBREL": frame(0x62, u16(0)),
    "PUBCOMP": frame(0x70, u16(0)),
    "SUBSCRIBE": frame(0x82, u16(0) + string("a") + b"\x00"),
    "SUBACK": frame(0x90, u16(0) + b"\x00"),
    "UNSUBSCRIBE": frame(0xA2, u16(0) + string("a")),
    "UNSUBACK": frame(0xB0, u16(0)),
}


@pytest.mark.parametrize("data", ZERO_ID.values(), ids=ZERO_ID.keys())
def test_packet_identifier_0_is_malformed_where_one_is_required(data: bytes) -> None:
    rejects(data, MalformedPacket, MALFORMED, "MQTT-2.3.1-1", level=V311)


def test_a_qos_1_publish_cut_before_its_packet_identifier_is_malformed() -> None:
    """BAD-INPUTS: a truncated QoS > 0 PUBLISH overflowed NanoMQ's heap."""
    rejects(frame(0x32, string("a/b")), MalformedPacket, MALFORMED, "§2.2.3", level=V311)


# ---------------------------------------------------------------- topic names

@pytest.mark.parametrize("level", [V31, V311, V5])
def test_publish_with_an_empty_topic_is_refused(level: ProtocolLevel) -> None:
    """BAD-INPUTS: a zero-length topic crashed mosquitto (CVE-2021-34432)."""
    body = string("") + (b"\x00" if level is V5 else b"") + b"x"
    rejects(frame(0x30, body), TopicNameInvalid, ReasonCode.TOPIC_NAME_INVALID, "MQTT-4.7.3-1",
            level=level)


@pytest.mark.parametrize("topic", ["a/+", "+", "#", "a/#", "a+b", "sport/ten#nis"])
@pytest.mark.parametrize("level", [V311, V5])
def test_publish_with_a_wildcard_in_its_topic_is_refused(level: ProtocolLevel, topic: str) -> None:
    """BAD-INPUTS: ActiveMQ delivered a wildcard topic to a ``+`` subscriber."""
    body = string(topic) + (b"\x00" if level is V5 else b"") + b"x"
    rejects(frame(0x30, body), TopicNameInvalid, ReasonCode.TOPIC_NAME_INVALID, "MQTT-3.3.2-2",
            level=level)


def test_will_topic_with_a_wildcard_is_refused() -> None:
    payload = string("c") + string("a/#") + raw_string(b"bye")
    rejects(connect(flags=0x06, payload=payload), TopicNameInvalid,
            ReasonCode.TOPIC_NAME_INVALID, "MQTT-3.3.2-2")


# ---------------------------------------------------------------- SUBSCRIBE / UNSUBSCRIBE

@pytest.mark.parametrize("level", [V311, V5])
def test_subscribe_without_a_topic_filter_is_a_protocol_error(level: ProtocolLevel) -> None:
    body = u16(1) + (b"\x00" if level is V5 else b"")
    rejects(frame(0x82, body), ProtocolError, PROTOCOL, "MQTT-3.8.3-3", level=level)


@pytest.mark.parametrize("level", [V311, V5])
def test_unsubscribe_without_a_topic_filter_is_a_protocol_error(level: ProtocolLevel) -> None:
    body = u16(1) + (b"\x00" if level is V5 else b"")
    rejects(frame(0xA2, body), ProtocolError, PROTOCOL, "MQTT-3.10.3-2", level=level)


@pytest.mark.parametrize("options", [0x04, 0x08, 0x10, 0x40, 0x80, 0xFC])
def test_subscribe_requested_qos_byte_with_reserved_bits_is_malformed_at_3_1_1(
    options: int,
) -> None:
    rejects(frame(0x82, u16(1) + string("a") + bytes([options])), MalformedPacket, MALFORMED,
            "MQTT-3.8.3-4", level=V311)


@pytest.mark.parametrize("options", [0x40, 0x80, 0xC0])
def test_subscription_options_with_reserved_bits_are_malformed_at_5(options: int) -> None:
    rejects(frame(0x82, u16(1) + b"\x00" + string("a") + bytes([options])), MalformedPacket,
            MALFORMED, "MQTT-3.8.3-5", level=V5)


def test_subscribe_requesting_qos_3_is_malformed_at_3_1_1() -> None:
    rejects(frame(0x82, u16(1) + string("a") + b"\x03"), MalformedPacket, MALFORMED,
            "MQTT-3.8.3-4", level=V311)


def test_subscribe_requesting_maximum_qos_3_is_a_protocol_error_at_5() -> None:
    """5.0 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"."""
    rejects(frame(0x82, u16(1) + b"\x00" + string("a") + b"\x03"), ProtocolError, PROTOCOL,
            "§3.8.3.1", level=V5)


def test_subscribe_with_retain_handling_3_is_a_protocol_error() -> None:
    rejects(frame(0x82, u16(1) + b"\x00" + string("a") + b"\x30"), ProtocolError, PROTOCOL,
            "§3.8.3.1", level=V5)


def test_no_local_on_a_shared_subscription_is_a_protocol_error() -> None:
    rejects(frame(0x82, u16(1) + b"\x00" + string("$share/g/a") + b"\x04"), ProtocolError,
            PROTOCOL, "MQTT-3.8.3-4", level=V5)


def test_subscribe_cut_inside_its_options_byte_is_malformed() -> None:
    rejects(frame(0x82, u16(1) + string("a")), MalformedPacket, MALFORMED, "§2.2.3", level=V311)


BAD_FILTERS = {
    "a/#/b": "MQTT-4.7.1-2",
    "#/a": "MQTT-4.7.1-2",
    "a/b#": "MQTT-4.7.1-2",
    "##": "MQTT-4.7.1-2",
    "a+": "MQTT-4.7.1-3",
    "+a": "MQTT-4.7.1-3",
    "a/+b/c": "MQTT-4.7.1-3",
    "++": "MQTT-4.7.1-3",
    "": "MQTT-4.7.3-1",
}


@pytest.mark.parametrize(("topic_filter", "ref"), BAD_FILTERS.items(), ids=BAD_FILTERS.keys())
@pytest.mark.parametrize("level", [V311, V5])
def test_subscribe_with_an_invalid_filter_is_refused(
    level: ProtocolLevel, topic_filter: str, ref: str
) -> None:
    """BAD-INPUTS: invalid wildcard filters sent amqtt's regex into ReDoS."""
    props = b"\x00" if level is V5 else b""
    body = u16(1) + props + string(topic_filter) + b"\x01"
    rejects(frame(0x82, body), TopicFilterInvalid, ReasonCode.TOPIC_FILTER_INVALID, ref,
            level=level)


@pytest.mark.parametrize(("topic_filter", "ref"), BAD_FILTERS.items(), ids=BAD_FILTERS.keys())
def test_unsubscribe_with_an_invalid_filter_is_refused(topic_filter: str, ref: str) -> None:
    body = u16(1) + string("ok/+") + string(topic_filter)
    rejects(frame(0xA2, body), TopicFilterInvalid, ReasonCode.TOPIC_FILTER_INVALID, ref,
            level=V311)


BAD_SHARED = {
    "$share/": "MQTT-4.8.2-1",
    "$share//a": "MQTT-4.8.2-1",
    "$share/g": "MQTT-4.8.2-2",
    "$share/g/": "MQTT-4.8.2-2",
    "$share/g+/a": "MQTT-4.8.2-2",
    "$share/#/a": "MQTT-4.8.2-2",
}


@pytest.mark.parametrize(("topic_filter", "ref"), BAD_SHARED.items(), ids=BAD_SHARED.keys())
def test_a_malformed_shared_subscription_is_refused_at_5(topic_filter: str, ref: str) -> None:
    """``$share/{ShareName}/{filter}``: a ShareName of one character or more without
    wildcards, then a topic filter (4.8.2)."""
    sub = u16(1) + b"\x00" + string(topic_filter) + b"\x01"
    rejects(frame(0x82, sub), TopicFilterInvalid, ReasonCode.TOPIC_FILTER_INVALID,
            exc_ref(topic_filter, ref), level=V5)
    unsub = u16(1) + b"\x00" + string(topic_filter)
    rejects(frame(0xA2, unsub), TopicFilterInvalid, ReasonCode.TOPIC_FILTER_INVALID,
            exc_ref(topic_filter, ref), level=V5)


def exc_ref(topic_filter: str, ref: str) -> str:
    """``$share/g+/a`` and ``$share/#/a`` also break the wildcard rules of 4.7.1, checked
    first on the whole filter."""
    return {"$share/g+/a": "MQTT-4.7.1-3", "$share/#/a": "MQTT-4.7.1-2"}.get(topic_filter, ref)


@pytest.mark.parametrize("topic_filter", ["$share/g/a", "$share/consumer1/sport/+/#",
                                          "$share/g//x", "$share/g/#"])
def test_well_formed_shared_subscriptions_are_accepted_at_5(topic_filter: str) -> None:
    packets = accepts(frame(0x82, u16(1) + b"\x00" + string(topic_filter) + b"\x01"), level=V5)
    assert packets[0].subscriptions[0].topic_filter == topic_filter  # type: ignore[union-attr]


def test_share_prefixed_filters_are_ordinary_filters_below_5() -> None:
    """3.1.1 has no shared subscriptions: ``$share/g`` is just a filter there."""
    assert len(accepts(frame(0x82, u16(1) + string("$share/g") + b"\x00"), level=V311)) == 1


@pytest.mark.parametrize("topic_filter", ["#", "+", "+/+", "a/+/b/#", "/", "//", "$SYS/#", "+/"])
def test_valid_wildcard_filters_are_accepted(topic_filter: str) -> None:
    packets = accepts(frame(0x82, u16(1) + string(topic_filter) + b"\x00"), level=V311)
    assert packets[0].subscriptions[0].topic_filter == topic_filter  # type: ignore[union-attr]


def test_a_subscribe_of_65000_levels_is_decoded_without_recursion() -> None:
    """BAD-INPUTS: a filter of ~65,000 levels overflowed mosquitto's stack (CVE-2019-11779)."""
    topic_filter = "/" * 65_000
    packets = accepts(frame(0x82, u16(1) + string(topic_filter) + b"\x00"), level=V311)
    assert packets[0].subscriptions[0].topic_filter == topic_filter  # type: ignore[union-attr]


# ---------------------------------------------------------------- UTF-8 strings

ILL_FORMED = {
    "lone-continuation": b"\x80",
    "invalid-byte-ff": b"a\xff",
    "truncated-sequence": b"\xe2\x82",
    "overlong-slash": b"\xc0\xaf",
    "overlong-nul": b"\xc0\x80",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "above-10ffff": b"\xf4\x90\x80\x80",
}


def _string_fields(raw: bytes) -> dict[str, tuple[bytes, ProtocolLevel]]:
    """Each place a UTF-8 string stands, holding ``raw``: (packet bytes, level)."""
    s = raw_string(raw)
    return {
        "publish-topic": (frame(0x30, s + b"x"), V311),
        "publish-topic-v5": (frame(0x30, s + b"\x00x"), V5),
        "client-id": (connect(payload=s), V311),
        "will-topic": (connect(flags=0x06, payload=string("c") + s + raw_string(b"")), V311),
        "user-name": (connect(flags=0x82, payload=string("c") + s), V311),
        "subscribe-filter": (frame(0x82, u16(1) + s + b"\x00"), V311),
        "unsubscribe-filter": (frame(0xA2, u16(1) + s), V311),
        "content-type": (frame(0x30, string("a") + bytes([3 + len(raw), 0x03]) + s + b"x"), V5),
        "user-property-name": (frame(0xE0, b"\x00" + bytes([6 + len(raw), 0x26]) + s
                                     + string("v")), V5),
        "reason-string": (frame(0x40, u16(1) + b"\x00" + bytes([3 + len(raw), 0x1F]) + s), V5),
    }


UTF8_CASES = [(name, field) for name in ILL_FORMED for field in _string_fields(b"")]


@pytest.mark.parametrize(("bad", "field"), UTF8_CASES, ids=[f"{b}-{f}" for b, f in UTF8_CASES])
def test_ill_formed_utf8_is_malformed_in_every_string_field(bad: str, field: str) -> None:
    data, level = _string_fields(ILL_FORMED[bad])[field]
    rejects(data, MalformedPacket, MALFORMED, "MQTT-1.5.3-1", level=level)


NUL_FIELDS = list(_string_fields(b""))


@pytest.mark.parametrize("field", NUL_FIELDS)
def test_u0000_is_malformed_in_every_string_field(field: str) -> None:
    """BAD-INPUTS: VernemQ accepted U+0000 in a topic; a C subscriber saw it truncated."""
    data, level = _string_fields(b"a\x00b")[field]
    rejects(data, MalformedPacket, MALFORMED, "MQTT-1.5.3-2", level=level)


@pytest.mark.parametrize("field", NUL_FIELDS)
def test_the_same_fields_accept_well_formed_utf8(field: str) -> None:
    data, level = _string_fields("A\U0002a6d4 é\ufeff".encode())[field]
    assert len(accepts(data, level=level)) == 1


def test_a_byte_order_mark_is_kept_not_stripped() -> None:
    """"0xEF 0xBB 0xBF ... MUST NOT be skipped over or stripped off" [MQTT-1.5.3-3]."""
    packets = accepts(frame(0x30, raw_string(b"\xef\xbb\xbfa") + b"x"), level=V311)
    assert packets == [Publish("\ufeffa", b"x")]


# ---------------------------------------------------------------- CONNECT


@pytest.mark.parametrize(
    ("name", "level"),
    [(b"MQIsdp", 4), (b"MQIsdp", 5), (b"MQTT", 3), (b"MQTT", 6), (b"MQTT", 0), (b"MQIsdp", 6)],
)
def test_connect_with_a_protocol_name_wrong_for_its_level_is_unsupported(
    name: bytes, level: int
) -> None:
    """Answered with CONNACK 0x01 / reason 0x84 [MQTT-3.1.2-2]."""
    rejects(connect(name=name, level=level), UnsupportedProtocol,
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, "MQTT-3.1.2-2")


@pytest.mark.parametrize("name", [b"MQTX", b"mqtt", b"", b"MQTT "])
def test_connect_with_an_unknown_protocol_name_is_malformed(name: bytes) -> None:
    rejects(connect(name=name), MalformedPacket, MALFORMED, "MQTT-3.1.2-1")


@pytest.mark.parametrize("level", [3, 4, 5])
def test_connect_reserved_flag_is_malformed(level: int) -> None:
    name = b"MQIsdp" if level == 3 else b"MQTT"
    rejects(connect(name=name, level=level, flags=0x03), MalformedPacket, MALFORMED,
            "MQTT-3.1.2-3")


@pytest.mark.parametrize(
    ("flags", "ref"),
    [(0x0A, "MQTT-3.1.2-13"), (0x12, "MQTT-3.1.2-13"), (0x22, "MQTT-3.1.2-15"),
     (0x1E, "MQTT-3.1.2-14")],
    ids=["will-qos1-no-will", "will-qos2-no-will", "will-retain-no-will", "will-qos3"],
)
def test_connect_with_inconsistent_will_flags_is_malformed(flags: int, ref: str) -> None:
    payload = string("c") + (string("w") + raw_string(b"") if flags & 0x04 else b"")
    rejects(connect(flags=flags, payload=payload), MalformedPacket, MALFORMED, ref)


@pytest.mark.parametrize(("name", "level"), [(b"MQIsdp", 3), (b"MQTT", 4)])
def test_connect_password_without_user_name_is_malformed_below_5(name: bytes, level: int) -> None:
    payload = string("c") + raw_string(b"secret")
    rejects(connect(name=name, level=level, flags=0x42, payload=payload), MalformedPacket,
            MALFORMED, "MQTT-3.1.2-22")


def test_connect_password_without_user_name_is_allowed_at_5() -> None:
    """5.0 dropped the rule: "a Password ... without a User Name" is allowed (3.1.2.9)."""
    payload = string("c") + raw_string(b"secret")
    packets = accepts(connect(level=5, flags=0x42, payload=payload))
    assert packets == [Connect(V5, "c", True, 60, password=b"secret")]


def test_connect_missing_its_declared_user_name_is_malformed() -> None:
    rejects(connect(flags=0x82), MalformedPacket, MALFORMED, "§2.2.3")


# ---------------------------------------------------------------- trailing bytes

TRAILING = {
    "CONNECT": (connect(payload=string("c") + b"\x00"), V311),
    "CONNECT-v5": (connect(level=5, payload=string("c") + b"\x00"), None),
    "CONNACK": (frame(0x20, b"\x00\x00\x00"), V311),
    "PUBACK": (frame(0x40, u16(1) + b"\x00"), V311),
    "PUBREL": (frame(0x62, u16(1) + b"\x00"), V311),
    "PUBACK-v5": (frame(0x40, u16(1) + b"\x00\x00\x00"), V5),
    "UNSUBACK": (frame(0xB0, u16(1) + b"\x00"), V311),
    "PINGREQ": (frame(0xC0, b"\x00"), V311),
    "PINGRESP": (frame(0xD0, b"\x00"), V311),
    "DISCONNECT": (frame(0xE0, b"\x00"), V311),
    "DISCONNECT-v5": (frame(0xE0, b"\x00\x00\x00"), V5),
    "AUTH-v5": (frame(0xF0, b"\x00\x00\x00"), V5),
}


@pytest.mark.parametrize("case", TRAILING, ids=TRAILING.keys())
def test_bytes_after_the_last_field_are_malformed(case: str) -> None:
    """The Remaining Length must be the length of the fields, no more (2.2.3)."""
    data, level = TRAILING[case]
    rejects(data, MalformedPacket, MALFORMED, "§2.2.3", level=level)


def test_a_field_running_past_the_remaining_length_is_malformed() -> None:
    """A string whose length prefix points into the next packet."""
    data = frame(0x30, u16(10) + b"ab") + frame(0xC0, b"")
    rejects(data, MalformedPacket, MALFORMED, "§2.2.3", level=V311)
