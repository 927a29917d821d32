"""Level-5 clients beside 3.1.1 ones on one broker: CONNECT, session, will, DISCONNECT.

Each scenario feeds the broker model the packets of a conforming server, then
those of a server breaking one statement, and checks the model names exactly
that statement (and that the rejection leaves the model as it was).
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    Will,
)
from mqttref.model import BrokerModel, Closed, Drop, Send, TimePasses, Violation
from tests.model.helpers import connect, publish, subscribe


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel(expiry_margin=2.0)


def connect5(
    client: str,
    *,
    clean_start: bool = True,
    session_expiry: int | None = None,
    will: Will | None = None,
    client_id: str | None = None,
) -> Send:
    """A level-5 CONNECT (Clean Start, Session Expiry Interval, will)."""
    return Send(
        client,
        Connect(
            ProtocolLevel.MQTT_5,
            client if client_id is None else client_id,
            clean_session=clean_start,
            keep_alive=0,
            will=will,
            properties=Properties(session_expiry_interval=session_expiry),
        ),
    )


def connected5(
    model: BrokerModel, client: str, *, present: bool = False, **options: object
) -> None:
    """A level-5 CONNECT and the CONNACK 0x00 that accepts it."""
    model.apply(connect5(client, **options))  # type: ignore[arg-type]
    model.observe(client, ConnAck(present, 0x00))


def refs_of(model: BrokerModel, client: str, observation: object) -> tuple[str, ...]:
    """The statements the model names for ``observation``; it must reject it unchanged."""
    snapshot = [repr(o) for o in model.obligations()]
    with pytest.raises(Violation) as caught:
        model.observe(client, observation)  # type: ignore[arg-type]
    assert [repr(o) for o in model.obligations()] == snapshot
    return caught.value.refs


def will5(delay: int) -> Will:
    return Will("wills/a", b"gone", properties=Properties(will_delay_interval=delay))


# ------------------------------------------------------------------- CONNACK


def test_a_level_5_connect_is_accepted_with_a_5_0_reason_code(model: BrokerModel) -> None:
    """3.2.2.2: 0x00 accepts; 0x01 is a 3.1.1 return code, no Connect Reason Code
    [MQTT-3.2.2-8]; under 3.1.1 the same server answering a level-5 CONNECT with
    0x01 was the rule, not at fault."""
    model.apply(connect5("a"))
    assert refs_of(model, "a", ConnAck(False, 0x01)) == ("MQTT-3.2.2-8",)
    model.observe("a", ConnAck(False, 0x00))
    assert model.check_quiescent() == []


def test_a_level_5_connect_may_be_refused_with_a_refusal_code(model: BrokerModel) -> None:
    """A refusal (0x87 Not authorized) carries Session Present 0 [MQTT-3.2.2-6] and
    the close follows."""
    model.apply(connect5("a"))
    assert refs_of(model, "a", ConnAck(True, 0x87)) == ("MQTT-3.2.2-6",)
    model.observe("a", ConnAck(False, 0x87))
    assert [o.what for o in model.obligations("a")] == ["close (connack_refused)"]
    model.observe("a", Closed())


def test_clean_start_1_answers_session_present_0(model: BrokerModel) -> None:
    """[MQTT-3.2.2-2]: even when a session for the ClientID exists."""
    connected5(model, "a", clean_start=False, session_expiry=100)
    model.apply(Send("a", Disconnect()))
    model.apply(connect5("a", clean_start=True, session_expiry=100))
    assert refs_of(model, "a", ConnAck(True, 0x00)) == ("MQTT-3.2.2-2",)
    model.observe("a", ConnAck(False, 0x00))


def test_a_session_outlives_its_connection_for_its_expiry_interval(model: BrokerModel) -> None:
    """[MQTT-3.2.2-3]: Clean Start 0 and a stored session: Session Present 1."""
    connected5(model, "a", clean_start=False, session_expiry=100)
    model.apply(Send("a", Disconnect()))
    model.apply(TimePasses(99))
    model.apply(connect5("a", clean_start=False, session_expiry=100))
    assert refs_of(model, "a", ConnAck(False, 0x00)) == ("MQTT-3.2.2-3",)
    model.observe("a", ConnAck(True, 0x00))


def test_a_session_with_expiry_0_ends_with_its_connection(model: BrokerModel) -> None:
    """No Session Expiry Interval: the session ends at the close, so a later
    Clean Start 0 finds none [MQTT-3.2.2-3]."""
    connected5(model, "a", clean_start=False)
    model.apply(Drop("a"))
    model.apply(connect5("a", clean_start=False))
    assert refs_of(model, "a", ConnAck(True, 0x00)) == ("MQTT-3.2.2-3",)
    model.observe("a", ConnAck(False, 0x00))


def test_an_expired_session_is_gone_after_the_margin(model: BrokerModel) -> None:
    """[MQTT-4.1.0-2]: past the interval and the margin, Session Present 1 is wrong;
    inside the margin either answer is allowed."""
    connected5(model, "a", clean_start=False, session_expiry=10)
    model.apply(Drop("a"))
    model.apply(TimePasses(11))
    model.apply(connect5("a", clean_start=False, session_expiry=10))
    model.observe("a", ConnAck(True, 0x00))  # still there: inside the margin
    model.apply(Drop("a"))
    model.apply(TimePasses(13))
    model.apply(connect5("a", clean_start=False, session_expiry=10))
    assert refs_of(model, "a", ConnAck(True, 0x00)) == ("MQTT-3.2.2-3",)
    model.observe("a", ConnAck(False, 0x00))


def test_an_expired_session_gets_no_messages(model: BrokerModel) -> None:
    """Messages to a session that must be gone are owed to nobody: after expiry its
    subscription delivers nothing on reconnect [MQTT-4.1.0-2]."""
    connected5(model, "sub", clean_start=False, session_expiry=10)
    subscribe(model, "sub", "t", 1)
    model.apply(Drop("sub"))
    model.apply(TimePasses(30))
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 1, 1)))
    model.observe("pub", PubAck(1))
    connected5(model, "sub", clean_start=False, session_expiry=10)
    assert model.check_quiescent() == []
    assert refs_of(model, "sub", publish("t", b"m", 1, 1)) == ("MQTT-4.1.0-2",)


def test_a_3_1_1_client_and_a_5_0_client_share_a_broker(model: BrokerModel) -> None:
    """A 3.1.1 CONNECT is still judged by 3.1.1's return codes, beside a 5.0 one."""
    connected5(model, "five")
    model.apply(Send("four", Connect(ProtocolLevel.MQTT_3_1_1, "four")))
    assert refs_of(model, "four", ConnAck(False, 0x87))[0] == "MQTT-3.1.4-4"
    model.observe("four", ConnAck(False, 0x00))
    assert model.check_quiescent() == []


# ------------------------------------------------------------------ takeover


def test_a_taken_over_level_5_connection_gets_disconnect_0x8e(model: BrokerModel) -> None:
    """[MQTT-3.1.4-3]: the existing connection is sent DISCONNECT 0x8E (if any) and
    closed; 0x80 is not the takeover's code."""
    connected5(model, "old", client_id="id")
    model.apply(connect5("new", client_id="id"))
    model.observe("new", ConnAck(False, 0x00))
    assert "MQTT-3.1.4-3" in refs_of(model, "old", Disconnect(0x80))
    model.observe("old", Disconnect(0x8E))
    assert refs_of(model, "old", publish("x", b"y")) == ("MQTT-3.14.4-1",)
    assert [o.refs for o in model.obligations("old")] == [("MQTT-3.1.4-3",)]
    model.observe("old", Closed())
    assert model.check_quiescent() == []


def test_a_taken_over_3_1_1_connection_just_closes(model: BrokerModel) -> None:
    """A 3.1.1 client has no DISCONNECT from the server; a level-5 CONNECT with its
    ClientID closes it all the same."""
    connect(model, "old", client_id="id")
    model.apply(connect5("new", client_id="id"))
    model.observe("new", ConnAck(False, 0x00))
    assert refs_of(model, "old", Disconnect(0x8E)) == ("MQTT-3.2.0-1",)
    model.observe("old", Closed())
    assert model.check_quiescent() == []


# --------------------------------------------------------- server DISCONNECT


def test_no_server_disconnect_before_connack(model: BrokerModel) -> None:
    """[MQTT-3.14.0-1]."""
    model.apply(connect5("a"))
    assert refs_of(model, "a", Disconnect(0x80)) == ("MQTT-3.14.0-1",)


def test_a_server_disconnect_needs_a_server_disconnect_code(model: BrokerModel) -> None:
    """[MQTT-3.14.2-1]: 0x04 (Disconnect with Will Message) is the Client's code; the
    server's own reasons (0x89 Server busy) may end a connection, then the close is
    owed [MQTT-3.14.4-2]."""
    connected5(model, "a")
    assert refs_of(model, "a", Disconnect(0x04)) == ("MQTT-3.14.2-1",)
    model.observe("a", Disconnect(0x89))
    assert [o.refs for o in model.check_quiescent()] == [("MQTT-3.14.4-2",)]
    model.observe("a", Closed())
    assert model.check_quiescent() == []


def test_a_disconnect_with_an_expiry_after_connect_zero_is_a_protocol_error(
    model: BrokerModel,
) -> None:
    """3.14.2.2.2: a Session Expiry Interval on DISCONNECT after one of 0 on CONNECT
    is a Protocol Error: the close is owed [MQTT-4.13.1-1], DISCONNECT 0x82 fits it,
    0x8E does not."""
    connected5(model, "a")
    model.apply(Send("a", Disconnect(0x00, Properties(session_expiry_interval=60))))
    assert "MQTT-4.13.1-1" in refs_of(model, "a", Disconnect(0x8E))
    model.observe("a", Disconnect(0x82))
    model.observe("a", Closed())
    assert model.check_quiescent() == []


# ---------------------------------------------------------------------- will


def subscribed_to_wills(model: BrokerModel) -> None:
    connect(model, "watcher")
    subscribe(model, "watcher", "wills/#", 0)


def test_a_delayed_will_waits_for_its_delay(model: BrokerModel) -> None:
    """[MQTT-3.1.2-8]: published once the Will Delay Interval has passed, not before;
    owed after the margin."""
    subscribed_to_wills(model)
    connected5(model, "a", session_expiry=100, will=will5(10))
    model.apply(Drop("a"))
    assert refs_of(model, "watcher", publish("wills/a", b"gone")) == ("MQTT-3.1.2-8",)
    model.apply(TimePasses(10))
    assert model.check_quiescent() == []  # due, inside its margin
    model.apply(TimePasses(3))
    assert [o.refs for o in model.check_quiescent()] == [("MQTT-3.1.2-8", "MQTT-4.5.0-1")]
    model.observe("watcher", publish("wills/a", b"gone"))
    assert model.check_quiescent() == []


def test_the_will_goes_when_the_session_ends_before_its_delay(model: BrokerModel) -> None:
    """[MQTT-3.1.2-8]: whichever is first: a session of 0 ends with the connection."""
    subscribed_to_wills(model)
    connected5(model, "a", will=will5(60))
    model.apply(Drop("a"))
    assert [o.refs for o in model.check_quiescent()] == [("MQTT-3.1.2-8", "MQTT-4.5.0-1")]
    model.observe("watcher", publish("wills/a", b"gone"))


def test_a_resuming_reconnection_cancels_a_delayed_will(model: BrokerModel) -> None:
    """[MQTT-3.1.3-9]: reconnecting to the session before the delay passed: no will."""
    subscribed_to_wills(model)
    connected5(model, "a", clean_start=False, session_expiry=100, will=will5(10))
    model.apply(Drop("a"))
    model.apply(TimePasses(5))
    connected5(model, "a", clean_start=False, session_expiry=100, present=True)
    model.apply(TimePasses(20))
    assert model.check_quiescent() == []
    assert refs_of(model, "watcher", publish("wills/a", b"gone")) == ("MQTT-3.1.3-9",)


@pytest.mark.parametrize(("code", "owed"), [(0x00, False), (0x04, True)])
def test_disconnect_0_discards_the_will_and_0x04_keeps_it(
    model: BrokerModel, code: int, owed: bool
) -> None:
    """[MQTT-3.14.4-3]: only a Normal disconnection (0x00) discards the will."""
    subscribed_to_wills(model)
    connected5(model, "a", will=will5(0))
    model.apply(Send("a", Disconnect(code)))
    assert bool(model.check_quiescent()) is owed
    if owed:
        model.observe("watcher", publish("wills/a", b"gone"))
    else:
        assert refs_of(model, "watcher", publish("wills/a", b"gone")) == ("MQTT-3.14.4-3",)


@pytest.mark.parametrize("properties", [Properties(receive_maximum=0),
                                        Properties(maximum_packet_size=0)])
def test_a_connect_with_a_zero_limit_is_a_protocol_error(
    model: BrokerModel, properties: Properties
) -> None:
    """3.1.2.11.3/3.1.2.11.4: a Receive Maximum or Maximum Packet Size of 0 is a
    Protocol Error: the server answers CONNACK 0x82 and closes, or just closes
    [MQTT-4.13.1-1]; it does not accept."""
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_5, "a", properties=properties)))
    assert [o.what for o in model.obligations("a")] == ["CONNACK or close"]
    assert refs_of(model, "a", ConnAck(False, 0x00)) == ("MQTT-3.1.4-5", "MQTT-3.2.2-8")
    model.observe("a", ConnAck(False, 0x82))
    model.observe("a", Closed())
    assert model.check_quiescent() == []
