"""Hypothesis strategies for every MQTT control packet at every protocol level.

Shared by the codec's property tests and the stateful tests: import them as
``tests.strategies``. Every strategy generates only *valid* values (what a
conforming peer may send at that level), so that ``encode`` accepts them and
a conforming receiver must accept the bytes.

The spec facts used here (which property may stand on which packet, which
reason codes each packet may carry, the range of each property) are written
out again from the specification's tables on purpose, instead of being read
from ``mqttref.impl``: ``tests/codec/test_spec_tables.py`` checks that both
transcriptions agree, so a wrong entry in the implementation's tables cannot
hide behind a strategy generated from the same mistake.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mqttref.impl.codec.packets import (
    SUBACK_FAILURE,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)

LEVELS = (ProtocolLevel.MQTT_3_1, ProtocolLevel.MQTT_3_1_1, ProtocolLevel.MQTT_5)
V5 = ProtocolLevel.MQTT_5
WILL = "WILL"
"""The Will Properties of CONNECT, listed like a packet kind in Table 2-4."""

# --------------------------------------------------------------------------------------
# Spec tables, transcribed from MQTT 5.0 (Table 2-4 and each packet's reason code table)
# --------------------------------------------------------------------------------------

_ACKS = {"CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK",
         "DISCONNECT", "AUTH"}  # fmt: skip

PROPERTY_TABLE: dict[str, tuple[int, str, frozenset[str]]] = {
    # field name: (identifier, type, packets it may stand on)
    "payload_format_indicator": (0x01, "byte", frozenset({"PUBLISH", WILL})),
    "message_expiry_interval": (0x02, "u32", frozenset({"PUBLISH", WILL})),
    "content_type": (0x03, "string", frozenset({"PUBLISH", WILL})),
    "response_topic": (0x08, "string", frozenset({"PUBLISH", WILL})),
    "correlation_data": (0x09, "binary", frozenset({"PUBLISH", WILL})),
    "subscription_identifiers": (0x0B, "varint", frozenset({"PUBLISH", "SUBSCRIBE"})),
    "session_expiry_interval": (0x11, "u32", frozenset({"CONNECT", "CONNACK", "DISCONNECT"})),
    "assigned_client_identifier": (0x12, "string", frozenset({"CONNACK"})),
    "server_keep_alive": (0x13, "u16", frozenset({"CONNACK"})),
    "authentication_method": (0x15, "string", frozenset({"CONNECT", "CONNACK", "AUTH"})),
    "authentication_data": (0x16, "binary", frozenset({"CONNECT", "CONNACK", "AUTH"})),
    "request_problem_information": (0x17, "byte", frozenset({"CONNECT"})),
    "will_delay_interval": (0x18, "u32", frozenset({WILL})),
    "request_response_information": (0x19, "byte", frozenset({"CONNECT"})),
    "response_information": (0x1A, "string", frozenset({"CONNACK"})),
    "server_reference": (0x1C, "string", frozenset({"CONNACK", "DISCONNECT"})),
    "reason_string": (0x1F, "string", frozenset(_ACKS)),
    "receive_maximum": (0x21, "u16", frozenset({"CONNECT", "CONNACK"})),
    "topic_alias_maximum": (0x22, "u16", frozenset({"CONNECT", "CONNACK"})),
    "topic_alias": (0x23, "u16", frozenset({"PUBLISH"})),
    "maximum_qos": (0x24, "byte", frozenset({"CONNACK"})),
    "retain_available": (0x25, "byte", frozenset({"CONNACK"})),
    "user_properties": (0x26, "pair", frozenset(_ACKS | {"CONNECT", "PUBLISH", WILL,
                                                        "SUBSCRIBE", "UNSUBSCRIBE"})),
    "maximum_packet_size": (0x27, "u32", frozenset({"CONNECT", "CONNACK"})),
    "wildcard_subscription_available": (0x28, "byte", frozenset({"CONNACK"})),
    "subscription_identifier_available": (0x29, "byte", frozenset({"CONNACK"})),
    "shared_subscription_available": (0x2A, "byte", frozenset({"CONNACK"})),
}  # fmt: skip

BOOLEAN_PROPERTIES = frozenset({
    "payload_format_indicator", "request_problem_information", "request_response_information",
    "maximum_qos", "retain_available", "wildcard_subscription_available",
    "subscription_identifier_available", "shared_subscription_available",
})  # fmt: skip
"""Byte properties whose only values are 0 and 1 ("a Protocol Error ... other than 0 or 1")."""

NONZERO_PROPERTIES = frozenset({"receive_maximum", "maximum_packet_size", "topic_alias"})
"""Properties for which 0 is a Protocol Error (3.1.2.11.3, 3.1.2.11.4, 3.3.2.3.4)."""

REASON_CODES: dict[str, frozenset[int]] = {
    "CONNACK": frozenset({0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                          0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}),
    "PUBACK": frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}),
    "PUBREC": frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}),
    "PUBREL": frozenset({0x00, 0x92}),
    "PUBCOMP": frozenset({0x00, 0x92}),
    "SUBACK": frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1,
                         0xA2}),
    "UNSUBACK": frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}),
    "DISCONNECT": frozenset({0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E,
                             0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B,
                             0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}),
    "AUTH": frozenset({0x00, 0x18, 0x19}),
}  # fmt: skip
"""MQTT 5.0 reason codes each packet may carry (3.2.2.2, 3.4.2.1, ... 3.15.2.1)."""

# --------------------------------------------------------------------------------------
# Strings, topics, payloads, identifiers
# --------------------------------------------------------------------------------------

_CHARS = st.characters(
    exclude_categories=["Cs"],  # surrogates cannot be UTF-8 [MQTT-1.5.3-1]
    exclude_characters="\x00",  # U+0000 [MQTT-1.5.3-2]
)
_LEVEL_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#/")
_WORDS = st.sampled_from(["a", "b", "sport", "tennis", "player1", "$SYS", "ünï", "\ufeff",
                          "x y", "𪛔", "room-1"])  # fmt: skip


def mqtt_strings(max_size: int = 20, min_size: int = 0) -> st.SearchStrategy[str]:
    """A UTF-8 Encoded String (1.5.4): any scalar value but U+0000, short."""
    return st.text(_CHARS, min_size=min_size, max_size=max_size)


def topic_levels() -> st.SearchStrategy[str]:
    """One level of a topic name: possibly empty, never a wildcard or a separator."""
    return st.one_of(_WORDS, st.text(_LEVEL_CHARS, max_size=8))


def topic_names(max_levels: int = 5) -> st.SearchStrategy[str]:
    """A valid Topic Name: non-empty [MQTT-4.7.3-1], no wildcard [MQTT-4.7.1-1], no U+0000.

    Empty levels (``a//b``, ``/a``) and a leading ``$`` are valid and included.
    """
    return (
        st.lists(topic_levels(), min_size=1, max_size=max_levels)
        .map("/".join)
        .filter(bool)
    )


def topic_filters(max_levels: int = 5) -> st.SearchStrategy[str]:
    """A valid Topic Filter: ``+`` as whole levels, ``#`` only as the whole last level."""
    level = st.one_of(topic_levels(), st.just("+"))
    plain = st.lists(level, min_size=1, max_size=max_levels).map("/".join)
    multi = st.lists(level, max_size=max_levels - 1).map(lambda ls: "/".join([*ls, "#"]))
    return st.one_of(plain, multi).filter(bool)


def shared_topic_filters() -> st.SearchStrategy[str]:
    """An MQTT 5.0 Shared Subscription filter ``$share/{ShareName}/{filter}`` (4.8.2)."""
    share_name = st.text(_LEVEL_CHARS, min_size=1, max_size=8)
    return st.builds(lambda n, f: f"$share/{n}/{f}", share_name, topic_filters())


def payloads(max_size: int = 64) -> st.SearchStrategy[bytes]:
    """An application message: any bytes, including none."""
    return st.binary(max_size=max_size)


def client_ids() -> st.SearchStrategy[str]:
    """Any Client Identifier the wire can carry (the Server may still refuse it)."""
    return mqtt_strings(max_size=23)


def portable_client_ids() -> st.SearchStrategy[str]:
    """1-23 of ``0-9a-zA-Z``: what every Server MUST accept [MQTT-3.1.3-5]."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return st.text(alphabet, min_size=1, max_size=23)


def packet_ids() -> st.SearchStrategy[int]:
    """A non-zero Packet Identifier [MQTT-2.3.1-1]."""
    return st.integers(1, 0xFFFF)


def qos_levels() -> st.SearchStrategy[QoS]:
    return st.sampled_from(QoS)


def protocol_levels() -> st.SearchStrategy[ProtocolLevel]:
    return st.sampled_from(LEVELS)


# --------------------------------------------------------------------------------------
# MQTT 5.0 properties
# --------------------------------------------------------------------------------------

_U16 = st.integers(0, 0xFFFF)
_U32 = st.integers(0, 0xFFFFFFFF)
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "byte": st.integers(0, 1),
    "u16": _U16,
    "u32": _U32,
    "string": mqtt_strings(),
    "binary": st.binary(max_size=16),
}


def _value(name: str) -> st.SearchStrategy[Any]:
    kind = PROPERTY_TABLE[name][1]
    if name == "response_topic":
        return topic_names()  # it MUST NOT hold wildcards [MQTT-3.3.2-14]
    if name in NONZERO_PROPERTIES:
        return st.integers(1, 0xFFFF if kind == "u16" else 0xFFFFFFFF)
    return _VALUES[kind]


def properties(
    kind: str, *, exclude: frozenset[str] = frozenset()
) -> st.SearchStrategy[Properties]:
    """A Properties value with only what may stand on ``kind`` (a packet type name or WILL).

    ``exclude`` leaves out properties the caller wants to control itself.
    """
    names = sorted(
        name for name, (_, _, allowed) in PROPERTY_TABLE.items()
        if kind in allowed and name not in exclude
    )
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name in names:
        if name == "user_properties":
            pair = st.tuples(mqtt_strings(max_size=8), mqtt_strings(max_size=8))
            fields[name] = st.lists(pair, max_size=3).map(tuple)
        elif name == "subscription_identifiers":
            one = st.integers(1, 268_435_455)
            most = 1 if kind == "SUBSCRIBE" else 3  # one per SUBSCRIBE (3.8.2.1.2)
            fields[name] = st.lists(one, max_size=most).map(tuple)
        else:
            fields[name] = st.none() | _value(name)
    if not fields:
        return st.just(Properties())
    return st.one_of(st.just(Properties()), st.fixed_dictionaries(fields).map(
        lambda values: Properties(**values)))


# --------------------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------------------


@st.composite
def wills(draw: st.DrawFn, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> Will:
    props = draw(properties(WILL)) if level is V5 else Properties()
    return Will(draw(topic_names()), draw(payloads()), draw(qos_levels()), draw(st.booleans()),
                props)


@st.composite
def connects(draw: st.DrawFn, level: ProtocolLevel | None = None) -> Connect:
    level = level if level is not None else draw(protocol_levels())
    username = draw(st.none() | mqtt_strings(max_size=12))
    password = draw(st.none() | st.binary(max_size=12))
    if username is None and level is not V5:
        password = None  # a password needs a user name below 5.0 [MQTT-3.1.2-22]
    return Connect(
        protocol_level=level,
        client_id=draw(client_ids()),
        clean_session=draw(st.booleans()),
        keep_alive=draw(_U16),
        will=draw(st.none() | wills(level)),
        username=username,
        password=password,
        properties=draw(properties("CONNECT")) if level is V5 else Properties(),
    )


@st.composite
def connacks(draw: st.DrawFn, level: ProtocolLevel) -> ConnAck:
    if level is V5:
        code = draw(st.sampled_from(sorted(REASON_CODES["CONNACK"])))
        props = draw(properties("CONNACK"))
    else:
        code, props = draw(st.integers(0, 5)), Properties()
    # 3.1 has no Session Present flag; it is 0 on a refusal [MQTT-3.2.2-4].
    present = level is not ProtocolLevel.MQTT_3_1 and code == 0 and draw(st.booleans())
    return ConnAck(present, code, props)


@st.composite
def publishes(
    draw: st.DrawFn,
    level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
    *,
    qos: st.SearchStrategy[QoS] | None = None,
    topics: st.SearchStrategy[str] | None = None,
    payload: st.SearchStrategy[bytes] | None = None,
    from_client: bool = False,
) -> Publish:
    """A PUBLISH; ``from_client`` leaves out what only a server may send in it
    (Subscription Identifiers [MQTT-3.3.4-6])."""
    q = draw(qos if qos is not None else qos_levels())
    topic = draw(topics if topics is not None else topic_names())
    exclude = frozenset({"subscription_identifiers"}) if from_client else frozenset()
    props = draw(properties("PUBLISH", exclude=exclude)) if level is V5 else Properties()
    if level is V5 and props.topic_alias is not None and draw(st.booleans()):
        topic = ""  # a 5.0 PUBLISH may name its topic by alias alone (3.3.2.3.4)
    return Publish(
        topic=topic,
        payload=draw(payload if payload is not None else payloads()),
        qos=q,
        retain=draw(st.booleans()),
        dup=bool(q) and draw(st.booleans()),  # 0 on QoS 0 [MQTT-3.3.1-2]
        packet_id=draw(packet_ids()) if q else None,
        properties=props,
    )


def _acks(cls: type[PubAck | PubRec | PubRel | PubComp], level: ProtocolLevel) -> Any:
    name = cls.packet_type.name
    if level is not V5:
        return st.builds(cls, packet_ids())
    return st.builds(cls, packet_ids(), st.sampled_from(sorted(REASON_CODES[name])),
                     properties(name))


@st.composite
def subscriptions(draw: st.DrawFn, level: ProtocolLevel) -> Subscription:
    if level is not V5:
        return Subscription(draw(topic_filters()), draw(qos_levels()))
    shared = draw(st.booleans()) and draw(st.booleans())
    topic_filter = draw(shared_topic_filters() if shared else topic_filters())
    return Subscription(
        topic_filter,
        draw(qos_levels()),
        no_local=not shared and draw(st.booleans()),  # not on a shared one [MQTT-3.8.3-4]
        retain_as_published=draw(st.booleans()),
        retain_handling=draw(st.integers(0, 2)),
    )


@st.composite
def subscribes(draw: st.DrawFn, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> Subscribe:
    subs = draw(st.lists(subscriptions(level), min_size=1, max_size=4))
    props = draw(properties("SUBSCRIBE")) if level is V5 else Properties()
    return Subscribe(draw(packet_ids()), tuple(subs), props)


@st.composite
def subacks(draw: st.DrawFn, level: ProtocolLevel) -> SubAck:
    codes = (st.sampled_from(sorted(REASON_CODES["SUBACK"])) if level is V5
             else st.sampled_from([0, 1, 2, SUBACK_FAILURE]))
    props = draw(properties("SUBACK")) if level is V5 else Properties()
    return SubAck(draw(packet_ids()), tuple(draw(st.lists(codes, min_size=1, max_size=4))),
                  props)


@st.composite
def unsubscribes(draw: st.DrawFn, level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> Unsubscribe:
    filters = draw(st.lists(topic_filters(), min_size=1, max_size=4))
    props = draw(properties("UNSUBSCRIBE")) if level is V5 else Properties()
    return Unsubscribe(draw(packet_ids()), tuple(filters), props)


@st.composite
def unsubacks(draw: st.DrawFn, level: ProtocolLevel) -> UnsubAck:
    if level is not V5:
        return UnsubAck(draw(packet_ids()))
    codes = st.sampled_from(sorted(REASON_CODES["UNSUBACK"]))
    return UnsubAck(draw(packet_ids()), tuple(draw(st.lists(codes, min_size=1, max_size=4))),
                    draw(properties("UNSUBACK")))


def disconnects(level: ProtocolLevel) -> st.SearchStrategy[Disconnect]:
    if level is not V5:
        return st.just(Disconnect())
    return st.builds(Disconnect, st.sampled_from(sorted(REASON_CODES["DISCONNECT"])),
                     properties("DISCONNECT"))


def auths() -> st.SearchStrategy[Auth]:
    """AUTH exists at 5.0 only."""
    return st.builds(Auth, st.sampled_from(sorted(REASON_CODES["AUTH"])), properties("AUTH"))


def packets_of_type(ptype: PacketType, level: ProtocolLevel) -> st.SearchStrategy[Packet]:
    """Valid packets of one type at ``level`` (AUTH only at 5.0)."""
    table: dict[PacketType, Any] = {
        PacketType.CONNECT: lambda: connects(level),
        PacketType.CONNACK: lambda: connacks(level),
        PacketType.PUBLISH: lambda: publishes(level),
        PacketType.PUBACK: lambda: _acks(PubAck, level),
        PacketType.PUBREC: lambda: _acks(PubRec, level),
        PacketType.PUBREL: lambda: _acks(PubRel, level),
        PacketType.PUBCOMP: lambda: _acks(PubComp, level),
        PacketType.SUBSCRIBE: lambda: subscribes(level),
        PacketType.SUBACK: lambda: subacks(level),
        PacketType.UNSUBSCRIBE: lambda: unsubscribes(level),
        PacketType.UNSUBACK: lambda: unsubacks(level),
        PacketType.PINGREQ: lambda: st.just(PingReq()),
        PacketType.PINGRESP: lambda: st.just(PingResp()),
        PacketType.DISCONNECT: lambda: disconnects(level),
        PacketType.AUTH: auths,
    }
    if ptype is PacketType.AUTH and level is not V5:
        raise ValueError("AUTH exists at MQTT 5.0 only")
    strategy: st.SearchStrategy[Packet] = table[ptype]()
    return strategy


def packet_types(level: ProtocolLevel) -> list[PacketType]:
    """The packet types that exist at ``level``."""
    return [t for t in PacketType if t is not PacketType.AUTH or level is V5]


def packets(level: ProtocolLevel, *, connect: bool = True) -> st.SearchStrategy[Packet]:
    """Any valid packet at ``level`` but CONNECT, unless ``connect`` (which names its level)."""
    return st.one_of([packets_of_type(t, level) for t in packet_types(level)
                      if connect or t is not PacketType.CONNECT])


_CLIENT_SENDS = (PacketType.PUBLISH, PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL,
                 PacketType.PUBCOMP, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE,
                 PacketType.PINGREQ, PacketType.DISCONNECT, PacketType.AUTH)  # fmt: skip
_SERVER_SENDS = (PacketType.CONNACK, PacketType.PUBLISH, PacketType.PUBACK, PacketType.PUBREC,
                 PacketType.PUBREL, PacketType.PUBCOMP, PacketType.SUBACK, PacketType.UNSUBACK,
                 PacketType.PINGRESP, PacketType.DISCONNECT, PacketType.AUTH)  # fmt: skip


def client_packets(level: ProtocolLevel) -> st.SearchStrategy[Packet]:
    """What a client may send after its CONNECT (2.1.2's direction column)."""
    return st.one_of([
        publishes(level, from_client=True) if t is PacketType.PUBLISH
        else packets_of_type(t, level)
        for t in _CLIENT_SENDS if t is not PacketType.AUTH or level is V5
    ])


def server_packets(level: ProtocolLevel) -> st.SearchStrategy[Packet]:
    """What a server may send (2.1.2's direction column)."""
    return st.one_of([packets_of_type(t, level) for t in _SERVER_SENDS
                      if t is not PacketType.AUTH or level is V5])


CLIENT_SENDS = frozenset(_CLIENT_SENDS) | {PacketType.CONNECT}
SERVER_SENDS = frozenset(_SERVER_SENDS)
