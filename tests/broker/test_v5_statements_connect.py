"""MQTT 5.0 statements of the CONNECT packet (3.1) that bind the server, each shown by
the broker meeting it on a raw socket: one CONNECT per connection, the protocol name and
version, the reserved flag, and the Client Identifier (3.1.3). Clean Start is in
``test_v5_statements_session.py``, the will in ``_will.py``, the CONNECT properties in
``_connect_properties.py`` and the server's answer in ``_connack.py``.

Driven as ``test_v5_statements_packet_format.py`` describes.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Publish,
    Subscription,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peer5 import (
    CLOSED,
    KEEP,
    Q1,
    V5,
    Peer,
    R,
    connack_of,
    frame,
    publish,
    session,
    string,
)

# --- 3.1 CONNECT -----------------------------------------------------------------------------


def test_a_second_connect_is_a_protocol_error_and_gets_no_second_connack(
    broker: BrokerThread,
) -> None:
    """A second CONNECT, the very bytes the broker accepted first, is a Protocol Error: the
    broker closes the connection [MQTT-3.1.0-2] after DISCONNECT 0x82 [MQTT-4.13.1-1], and
    never sends another CONNACK [MQTT-3.2.0-2]."""
    connect = Connect(V5, "twice")
    with Peer(broker.port) as peer:
        peer.send(connect)
        assert peer.expect(ConnAck).return_code == R.SUCCESS
        assert peer.pinged()
        peer.send(connect)
        answer = peer.rest()
        assert [type(p).__name__ if p != CLOSED else p for p in answer] == [
            "Disconnect", CLOSED]
        assert isinstance(answer[0], Disconnect)
        assert answer[0].reason_code == R.PROTOCOL_ERROR
        assert [f[0] for f in peer.frames].count(0x20) == 1


def connect_bytes(name: str = "MQTT", level: int = 5, flags: int = 0x02,
                  client_id: str = "c") -> bytes:
    return frame(0x10, string(name) + bytes([level, flags]) + b"\x00\x3c\x00" + string(client_id))


def refused_raw(port: int, data: bytes) -> list[bytes | None]:
    """Send ``data``; the frames the broker answers with as written, then None (closed)."""
    with Peer(port) as peer:
        peer.send_bytes(data)
        return [*peer.frames_until_closed(), None]


def test_a_protocol_name_other_than_mqtt_is_not_accepted_and_closed(
    broker: BrokerThread,
) -> None:
    """The protocol name must be "MQTT"; a server that does not accept the CONNECT MAY
    answer CONNACK 0x84 and then MUST close [MQTT-3.1.2-1]. The broker closes (with no
    CONNACK, or 0x84), while the same CONNECT named "MQTT" is accepted."""
    for name in ("MQTX", "mqtt", "MQT"):
        answer = refused_raw(broker.port, connect_bytes(name=name))
        assert answer in ([None], [b"\x20\x03\x00\x84\x00", None]), (name, answer)
    accepted = refused_raw(broker.port, connect_bytes() + encode(Disconnect(), V5))
    assert accepted[0] is not None
    assert (accepted[0][0], accepted[0][2:4]) == (0x20, b"\x00\x00")  # CONNACK Success


def test_a_protocol_version_the_broker_does_not_speak_is_refused_and_closed(
    broker: BrokerThread,
) -> None:
    """A Protocol Version the server does not accept: it MAY answer CONNACK 0x84 and then
    MUST close [MQTT-3.1.2-2]. For a level it cannot know the client reads, the broker
    answers in the form every level shares (3.1.1's CONNACK 0x01, unacceptable protocol
    version) or 5.0's 0x84, and closes."""
    for level in (0, 2, 6, 255):
        answer = refused_raw(broker.port, connect_bytes(level=level))
        assert answer in ([None], [b"\x20\x02\x00\x01", None],
                          [b"\x20\x03\x00\x84\x00", None]), (level, answer)


def test_a_connect_with_its_reserved_flag_set_is_not_accepted(broker: BrokerThread) -> None:
    """The server validates that CONNECT's reserved flag is 0 [MQTT-3.1.2-3]; if not, the
    packet is malformed: no session, a close (with CONNACK 0x81 at most) [MQTT-3.1.4-1],
    where the same CONNECT with the bit clear is accepted."""
    answer = refused_raw(broker.port, connect_bytes(flags=0x03, client_id="reserved"))
    assert answer in ([None], [b"\x20\x03\x00\x81\x00", None]), answer
    assert not broker.call(lambda b: "reserved" in b.sessions)
    accepted = refused_raw(broker.port, connect_bytes(flags=0x02, client_id="reserved")
                           + encode(Disconnect(), V5))
    assert accepted[0] is not None
    assert accepted[0][2:4] == b"\x00\x00"  # session present 0, Success


# --- 3.1.3 the Client Identifier --------------------------------------------------------------


@pytest.mark.parametrize("client_id", [
    "0123456789abcdefghijklm", "nopqrstuvwxyzABCDEFGHIJ", "KLMNOPQRSTUVWXYZ", "a", "Z9"])
def test_client_ids_of_1_to_23_letters_and_digits_are_accepted(
    broker: BrokerThread, client_id: str,
) -> None:
    """The server allows Client Identifiers of 1 to 23 bytes of 0-9, a-z and A-Z
    [MQTT-3.1.3-5]: CONNACK 0x00 [MQTT-3.1.4-5], the identifier kept as given (no
    Assigned Client Identifier), and the session named by it."""
    peer, raw, connack = connack_of(broker.port, Connect(V5, client_id))
    with peer:
        assert raw[3] == R.SUCCESS
        assert connack.properties.assigned_client_identifier is None
        assert broker.call(lambda b: client_id in b.sessions)


def test_an_empty_client_id_gets_a_unique_assigned_one_and_is_that_client(
    broker: BrokerThread,
) -> None:
    """A zero-length ClientID is given a unique one [MQTT-3.1.3-6], told in CONNACK's
    Assigned Client Identifier and used as if the client had sent it [MQTT-3.1.3-7]: not
    the name of any other session in the server [MQTT-3.2.2-16] (two at once get two, and
    neither takes over the other), and the session it names is resumed by it later."""
    with session(broker, "existing", properties=KEEP):
        first, _raw, one = connack_of(broker.port, Connect(V5, "", properties=KEEP))
        second, _raw, two = connack_of(broker.port, Connect(V5, ""))
        assigned = one.properties.assigned_client_identifier
        other = two.properties.assigned_client_identifier
        assert assigned
        assert other
        assert len({assigned, other, "existing"}) == 3
        assert first.pinged()
        assert second.pinged()
        first.subscribe(Subscription("w/assigned", Q1))
        first.drop()
        second.sock.close()
        with session(broker, "pub") as pub:
            publish(pub, "w/assigned", b"kept", Q1)
        again, _raw, connack = connack_of(broker.port, Connect(V5, assigned, False,
                                                              properties=KEEP))
        with again:
            assert connack.session_present
            assert again.expect(Publish).payload == b"kept"


def test_a_client_id_the_broker_rejects_gets_0x85_and_the_close(
    broker: BrokerThread,
) -> None:
    """A rejected ClientID MAY be answered CONNACK 0x85 and then the connection MUST close
    [MQTT-3.1.3-8]: 2,000 characters, above the broker's max_client_id_length; Session
    Present 0 with the non-zero code [MQTT-3.2.2-6], closed as 0x80 or more requires
    [MQTT-3.2.2-7]."""
    peer, raw, connack = connack_of(broker.port, Connect(V5, "x" * 2000))
    with peer:
        assert connack.return_code == R.CLIENT_IDENTIFIER_NOT_VALID
        assert raw[2] == 0x00
        assert peer.next() == CLOSED
