"""A persistent session as keys of the sessions bucket, and back (no NATS here).

``JetStreamSessionStore`` writes each part of a session under its own key; another
node rebuilds the session from those keys (``record_from_entries``). What a 5.0
session holds must come back unchanged: message properties, expiry instants (carried
as wall-clock time between the two nodes' loop clocks), subscription options,
in-flight states in the order they were sent, a delayed will.
"""

from __future__ import annotations

import json

from mqttref.impl.cluster.session_store import (
    Clocks,
    JetStreamSessionStore,
    decode_live_will,
    decode_message,
    decode_outbound,
    encode_message,
    encode_outbound,
    record_from_entries,
    session_prefix,
)
from mqttref.impl.codec.packets import Properties, QoS, Will
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import SessionExpiry
from mqttref.impl.store.memory import MemoryStore

PROPERTIES = Properties(content_type="text/plain", message_expiry_interval=60,
                        user_properties=(("k", "v"),))


def here() -> Clocks:
    """A node whose loop clock reads 100 when the wall clock reads 1,000,000."""
    return Clocks(loop_clock=lambda: 100.0, wall_clock=lambda: 1_000_000.0)


def there() -> Clocks:
    """Another node, its loop clock at 5 at the same wall-clock instant."""
    return Clocks(loop_clock=lambda: 5.0, wall_clock=lambda: 1_000_000.0)


def test_an_outbound_message_keeps_its_properties_and_its_remaining_lifetime() -> None:
    message = OutboundMessage("a/b", 0, QoS.EXACTLY_ONCE, b"\x00\xff", True, PROPERTIES,
                              expires_at=160.0, share="$share/g/a/#")
    value = json.loads(json.dumps(encode_outbound(message, here())))
    back = decode_outbound(value, 42, there())
    assert back == message._replace(packet_id=42, expires_at=65.0)


def test_a_will_message_keeps_its_origin_and_properties() -> None:
    will = Message("w", b"gone", QoS.AT_LEAST_ONCE, True, properties=PROPERTIES,
                   origin="c1")
    back = decode_message(json.loads(json.dumps(encode_message(will, here()))), there())
    assert back.same_as(will)
    assert (back.properties, back.origin, back.expires_at) == (PROPERTIES, "c1", None)


def _entry(client_id: str, suffix: str, value: object) -> tuple[str, bytes]:
    return f"{session_prefix(client_id)}.{suffix}", json.dumps(value).encode()


def test_a_session_comes_back_from_its_keys_with_queue_and_in_flight_in_order() -> None:
    clocks = here()
    first = OutboundMessage("t/1", 0, QoS.AT_LEAST_ONCE, b"1")
    second = OutboundMessage("t/2", 0, QoS.EXACTLY_ONCE, b"2")
    entries = [
        _entry("c.1", "meta", {"disconnected_at": 999.0, "expiry_interval": 30.0}),
        _entry("c.1", "sub.dC8j", {"qos": 2, "no_local": True, "retain_as_published": False,
                                   "identifier": 7}),
        _entry("c.1", "q.12", {"message": encode_outbound(second, clocks)}),
        _entry("c.1", "q.3", {"message": encode_outbound(first, clocks)}),
        _entry("c.1", "f.9", {"state": "AWAITING_PUBCOMP", "order": 2,
                              "message": encode_outbound(second, clocks)}),
        _entry("c.1", "f.4", {"state": "AWAITING_PUBACK", "order": 1,
                              "message": encode_outbound(first, clocks)}),
        _entry("c.1", "r.5", {}),
        _entry("c.1", "lastwill", {"ignored": "here"}),
    ]
    record, will = record_from_entries("c.1", entries, clocks)
    assert record is not None
    assert will is None
    assert record.expiry == SessionExpiry(999.0, 30.0)
    assert record.subscriptions == {"t/#": QoS.EXACTLY_ONCE}
    assert record.options["t/#"].no_local
    assert record.options["t/#"].identifier == 7
    assert [seq for seq, _m in record.queue] == [3, 12]
    assert [(i.packet_id, i.state) for i in record.inflight] == [
        (4, OutboundState.AWAITING_PUBACK), (9, OutboundState.AWAITING_PUBCOMP)]
    assert record.awaiting_rel == frozenset({5})


def test_keys_without_a_meta_key_are_no_persistent_session() -> None:
    assert record_from_entries("x", [_entry("x", "lastwill", {})], here()) == (None, None)


def test_a_live_will_drops_its_delay_from_the_properties_and_keeps_it_apart() -> None:
    store = JetStreamSessionStore(MemoryStore())
    will = Will("w/t", b"bye", QoS.AT_LEAST_ONCE, False,
                Properties(will_delay_interval=30, content_type="x"))
    store.live_will_set("c", will)
    [data] = store._later.values()  # what the next commit writes
    assert data is not None
    message, delay = decode_live_will(data)
    assert (message.topic, message.payload, message.qos, delay) == ("w/t", b"bye", 1, 30)
    assert message.properties == Properties(content_type="x")
