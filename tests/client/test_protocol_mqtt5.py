"""The client core at MQTT 5.0, packet by packet with no sockets and no clock.

Each test feeds the core what a 5.0 server would send and reads what the core
sends back and reports: every (state, packet) row 5.0 adds to the receive table,
the reason codes of each acknowledgement, the server's limits, topic aliases
both ways, and the arguments refused before anything is sent.
"""

from __future__ import annotations

import attrs
import pytest

from mqttref.impl.client.errors import (
    AuthenticationFailed,
    ConnectionRefused,
    InvalidArgument,
    NotSupportedByServer,
    PayloadTooLarge,
    ProtocolViolation,
    PublishRefused,
    ServerDisconnected,
)
from mqttref.impl.client.events import (
    CloseConnection,
    Connected,
    ConnectRefused,
    Event,
    MessageReceived,
    PublishCompleted,
    PublishFailed,
    SubscribeCompleted,
    UnsubscribeCompleted,
)
from mqttref.impl.client.options import ClientOptions
from mqttref.impl.client.protocol import (
    RECEIVE_TABLE,
    RECEIVE_TABLE_5,
    ClientProtocol,
    ConnectionState,
)
from mqttref.impl.client.validation import check_protocol
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    PacketType,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscription,
    UnsubAck,
    Will,
)

V5 = ProtocolLevel.MQTT_5


def core5(connack: Properties = NO_PROPERTIES, **options: object) -> ClientProtocol:
    """A 5.0 core connected with a CONNACK carrying ``connack``."""
    options = {"client_id": "c", "protocol_level": V5, **options}
    core = ClientProtocol(ClientOptions(**options))  # type: ignore[arg-type]
    core.connection_made(0.0)
    core.packets_to_send()
    core.receive_packet(ConnAck(False, 0, connack), 0.0)
    core.events()
    return core


def closed_with(events: list[Event]) -> Exception:
    (close,) = [e for e in events if isinstance(e, CloseConnection)]
    return close.error


# -- the protocol level ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "level"),
    [(5, 5), ("5", 5), ("5.0", 5), ("mqttv5", 5), ("MQTTv5", 5), (4, 4), ("3.1.1", 4),
     ("mqttv311", 4), ("311", 4), (3, 3), ("3.1", 3), ("mqttv31", 3), ("31", 3)],
)  # fmt: skip
def test_every_spelling_of_a_protocol_version_is_understood(
    spelling: int | str, level: int
) -> None:
    assert check_protocol(spelling) == level


@pytest.mark.parametrize("bad", [6, 2, "5.1", "mqttv4", "", True])
def test_an_unknown_protocol_version_is_refused_with_the_spellings(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="use 5"):
        check_protocol(bad)  # type: ignore[arg-type]


# -- CONNECT and CONNACK -------------------------------------------------------------


def test_connect_carries_the_5_0_properties_and_clean_start() -> None:
    options = ClientOptions(
        client_id="c", protocol_level=V5, clean_session=False, session_expiry_interval=60,
        receive_maximum=5, topic_alias_maximum=3, request_response_information=True,
        request_problem_information=False, user_properties=[("a", "1"), ("a", "2")],
        max_packet_size=1000,
    )  # fmt: skip
    core = ClientProtocol(options)
    core.connection_made(0.0)
    (connect,) = core.packets_to_send()
    assert isinstance(connect, Connect)
    assert connect.clean_session is False  # the Clean Start flag at 5.0
    assert connect.properties == Properties(
        session_expiry_interval=60, receive_maximum=5, maximum_packet_size=1005,
        topic_alias_maximum=3, request_response_information=1,
        request_problem_information=0, user_properties=(("a", "1"), ("a", "2")),
    )  # fmt: skip
    encode(connect)  # the codec takes it


def test_a_refusing_connack_reason_code_is_reported_with_its_reason_string() -> None:
    core = ClientProtocol(ClientOptions(client_id="c", protocol_level=V5))
    core.connection_made(0.0)
    core.receive_packet(ConnAck(False, 0x86, Properties(reason_string="who?")), 0.0)
    (refused,) = core.events()
    assert refused == ConnectRefused(0x86, Properties(reason_string="who?"), mqtt5=True)
    error = ConnectionRefused(0x86, reason_string="who?", mqtt5=True)
    assert str(error).endswith("bad user name or password (reason code 0x86): who?")


def test_connected_carries_the_connack_properties() -> None:
    core = ClientProtocol(ClientOptions(client_id="", protocol_level=V5))
    core.connection_made(0.0)
    props = Properties(assigned_client_identifier="given", server_keep_alive=7)
    core.receive_packet(ConnAck(False, 0, props), 0.0)
    assert core.events() == [Connected(False, 0, props)]
    assert core.keep_alive == 7
    assert core.get_timer() == 7.0  # the server's keep alive, not our 60 [MQTT-3.2.2-22]
    core.connection_lost(1.0)
    core.connection_made(1.0)
    (connect,) = core.packets_to_send()
    assert isinstance(connect, Connect)
    assert connect.client_id == "given"


def test_the_servers_receive_maximum_narrows_the_window() -> None:
    core = core5(Properties(receive_maximum=2))
    for n in range(4):
        core.publish("t", str(n).encode(), 1, False, 1.0)
    assert [p.payload for p in core.packets_to_send() if isinstance(p, Publish)] == [b"0", b"1"]
    core.receive_packet(PubAck(1), 2.0)
    assert [p.payload for p in core.packets_to_send() if isinstance(p, Publish)] == [b"2"]


def test_a_publish_beyond_maximum_qos_retain_or_packet_size_fails_locally() -> None:
    core = core5(Properties(maximum_qos=1, retain_available=0, maximum_packet_size=50))
    with pytest.raises(NotSupportedByServer, match="Maximum QoS is 1") as qos:
        core.publish("t", b"", 2, False, 1.0)
    assert qos.value.reason_code == 0x9B
    with pytest.raises(NotSupportedByServer) as retain:
        core.publish("t", b"", 0, True, 1.0)
    assert retain.value.reason_code == 0x9A
    with pytest.raises(PayloadTooLarge, match="Maximum Packet Size of 50"):
        core.publish("t", b"x" * 50, 0, False, 1.0)
    assert core.packets_to_send() == []
    core.publish("t", b"x" * 10, 1, False, 1.0)
    assert len(core.packets_to_send()) == 1


def test_a_queued_publish_beyond_the_limits_fails_once_connack_tells_them() -> None:
    core = ClientProtocol(ClientOptions(client_id="c", protocol_level=V5))
    core.connection_made(0.0)
    handle = core.publish("t", b"", 2, False, 0.0)
    core.receive_packet(ConnAck(False, 0, Properties(maximum_qos=0)), 0.0)
    failed = [e for e in core.events() if isinstance(e, PublishFailed)]
    assert [(f.handle, type(f.error)) for f in failed] == [(handle, NotSupportedByServer)]


# -- acknowledgements ------------------------------------------------------------------


def test_a_puback_with_a_failure_reason_fails_the_publish_with_code_and_string() -> None:
    core = core5()
    handle = core.publish("t", b"", 1, False, 0.0)
    core.receive_packet(PubAck(1, 0x87, Properties(reason_string="no")), 0.0)
    (failed,) = core.events()
    assert isinstance(failed, PublishFailed)
    assert failed.handle == handle
    assert isinstance(failed.error, PublishRefused)
    assert (failed.error.reason_code, failed.error.reason_string) == (0x87, "no")
    assert core.inflight_count == 0


def test_a_pubrec_with_a_failure_reason_ends_the_flow_without_pubrel() -> None:
    core = core5()
    core.publish("t", b"", 2, False, 0.0)
    core.packets_to_send()
    core.receive_packet(PubRec(1, 0x80), 0.0)
    assert core.packets_to_send() == []
    assert isinstance(core.events()[0], PublishFailed)
    assert core.inflight_count == 0


def test_no_matching_subscribers_is_a_success_reported_through_pubcomp() -> None:
    core = core5()
    handle = core.publish("t", b"", 2, False, 0.0)
    core.packets_to_send()
    core.receive_packet(PubRec(1, 0x10), 0.0)
    assert core.packets_to_send() == [PubRel(1)]
    core.receive_packet(PubComp(1), 0.0)
    assert core.events() == [PublishCompleted(handle, 0x10)]


def test_suback_and_unsuback_reason_codes_come_back_as_values() -> None:
    core = core5()
    pid = core.subscribe([("a", 1), ("b", 1)], 0.0, subscription_identifier=9)
    core.receive_packet(SubAck(pid, (1, 0x87)), 0.0)
    assert core.events() == [SubscribeCompleted(pid, (1, 0x87))]
    assert core.subscriptions == {"a": QoS.AT_LEAST_ONCE}
    pid = core.unsubscribe(["a", "z"], 0.0)
    core.receive_packet(UnsubAck(pid, (0, 0x11)), 0.0)
    assert core.events() == [UnsubscribeCompleted(pid, (0, 0x11))]


def test_an_unsuback_with_the_wrong_number_of_reason_codes_is_a_protocol_error() -> None:
    core = core5()
    pid = core.unsubscribe(["a", "b"], 0.0)
    core.packets_to_send()
    core.receive_packet(UnsubAck(pid, (0,)), 0.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)
    assert core.packets_to_send() == [Disconnect(0x82)]  # [MQTT-4.13.1-1]


# -- the rows 5.0 adds to the receive table ----------------------------------------------


def test_the_5_0_table_adds_auth_and_disconnect_rows_only() -> None:
    assert set(RECEIVE_TABLE_5) - set(RECEIVE_TABLE) == {
        (ConnectionState.CONNECTING, PacketType.AUTH),
        (ConnectionState.CONNECTED, PacketType.AUTH),
        (ConnectionState.CONNECTED, PacketType.DISCONNECT),
    }


def test_a_servers_disconnect_closes_with_its_reason_and_nothing_sent_back() -> None:
    core = core5()
    props = Properties(reason_string="bye", server_reference="other:1883")
    core.receive_packet(Disconnect(0x9C, props), 0.0)
    error = closed_with(core.events())
    assert isinstance(error, ServerDisconnected)
    assert (error.reason_code, error.reason_string, error.server_reference) == (
        0x9C, "bye", "other:1883"
    )  # fmt: skip
    assert core.packets_to_send() == []
    assert core.state is ConnectionState.CLOSING


def test_disconnect_before_connack_is_a_protocol_error() -> None:
    core = ClientProtocol(ClientOptions(client_id="c", protocol_level=V5))
    core.connection_made(0.0)
    core.receive_packet(Disconnect(0x80), 0.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)


@attrs.define
class EchoAuthenticator:
    """Answers each challenge with the challenge reversed; checks the server's last word."""

    method: str = "ECHO"
    seen: list[bytes | None] = attrs.field(factory=list)

    def initial_data(self) -> bytes | None:
        return b"hello"

    def challenge(self, data: bytes | None) -> bytes | None:
        self.seen.append(data)
        return None if data is None else data[::-1]

    def finish(self, data: bytes | None) -> None:
        self.seen.append(data)
        if data != b"ok":
            raise AuthenticationFailed("the server's proof is wrong")


def auth(code: int, data: bytes, method: str = "ECHO") -> Auth:
    return Auth(code, Properties(authentication_method=method, authentication_data=data))


def test_an_auth_exchange_before_connack_goes_through_the_authenticator() -> None:
    authenticator = EchoAuthenticator()
    options = ClientOptions(client_id="c", protocol_level=V5, authenticator=authenticator)
    core = ClientProtocol(options)
    core.connection_made(0.0)
    (connect,) = core.packets_to_send()
    assert isinstance(connect, Connect)
    assert connect.properties.authentication_method == "ECHO"
    assert connect.properties.authentication_data == b"hello"
    core.receive_packet(auth(0x18, b"abc"), 0.0)
    assert core.packets_to_send() == [auth(0x18, b"cba")]
    core.receive_packet(ConnAck(False, 0, auth(0, b"ok").properties), 0.0)
    assert isinstance(core.events()[0], Connected)
    assert authenticator.seen == [b"abc", b"ok"]
    core.reauthenticate(1.0)
    assert core.packets_to_send() == [auth(0x19, b"hello")]
    core.receive_packet(auth(0x00, b"bad"), 1.0)
    assert isinstance(closed_with(core.events()), AuthenticationFailed)
    assert core.packets_to_send() == [Disconnect(0x87)]


def test_auth_without_an_authenticator_or_with_another_method_is_a_protocol_error() -> None:
    core = ClientProtocol(ClientOptions(client_id="c", protocol_level=V5))
    core.connection_made(0.0)
    core.receive_packet(auth(0x18, b""), 0.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)
    options = ClientOptions(client_id="c", protocol_level=V5, authenticator=EchoAuthenticator())
    core = ClientProtocol(options)
    core.connection_made(0.0)
    core.receive_packet(auth(0x18, b"", method="OTHER"), 0.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)


# -- topic aliases and receive maximum ---------------------------------------------------


def received(core: ClientProtocol) -> list[tuple[str, bytes]]:
    return [
        (e.message.topic, e.message.payload)
        for e in core.events()
        if isinstance(e, MessageReceived)
    ]


def test_an_inbound_topic_alias_is_set_by_a_topic_and_then_stands_for_it() -> None:
    core = core5(topic_alias_maximum=2)
    core.receive_packet(Publish("a/b", b"1", properties=Properties(topic_alias=2)), 0.0)
    core.receive_packet(Publish("", b"2", properties=Properties(topic_alias=2)), 0.0)
    assert received(core) == [("a/b", b"1"), ("a/b", b"2")]


@pytest.mark.parametrize(("alias", "reason"), [(3, 0x94), (1, 0x82)])
def test_an_alias_above_our_maximum_or_never_set_closes_with_disconnect(
    alias: int, reason: int
) -> None:
    core = core5(topic_alias_maximum=2)
    core.receive_packet(Publish("", b"x", properties=Properties(topic_alias=alias)), 0.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)
    assert core.packets_to_send() == [Disconnect(reason)]


def test_inbound_aliases_are_forgotten_with_the_connection() -> None:
    core = core5(topic_alias_maximum=2)
    core.receive_packet(Publish("a", b"1", properties=Properties(topic_alias=1)), 0.0)
    core.connection_lost(1.0)
    core.connection_made(1.0)
    core.receive_packet(ConnAck(False, 0), 1.0)
    core.events()
    core.receive_packet(Publish("", b"2", properties=Properties(topic_alias=1)), 1.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)


def test_outbound_aliases_stay_within_the_servers_maximum_and_restart_per_connection() -> None:
    core = core5(Properties(topic_alias_maximum=1), clean_session=False)
    for topic in ("a", "a", "b", "b"):
        core.publish(topic, b"", 1, False, 0.0)
    sent = [(p.topic, p.properties.topic_alias) for p in core.packets_to_send()
            if isinstance(p, Publish)]  # fmt: skip
    assert sent == [("a", 1), ("", 1), ("b", None), ("b", None)]
    core.connection_lost(1.0)
    core.connection_made(1.0)
    core.receive_packet(ConnAck(True, 0, Properties(topic_alias_maximum=1)), 1.0)
    resent = [(p.topic, p.properties.topic_alias, p.dup) for p in core.packets_to_send()
              if isinstance(p, Publish)]  # fmt: skip
    assert resent[:2] == [("a", 1, True), ("", 1, True)]


def test_no_aliases_when_turned_off() -> None:
    core = core5(Properties(topic_alias_maximum=5), auto_topic_alias=False)
    core.publish("a", b"", 0, False, 0.0)
    core.publish("a", b"", 0, False, 0.0)
    assert [p.topic for p in core.packets_to_send() if isinstance(p, Publish)] == ["a", "a"]


def test_more_unacknowledged_deliveries_than_our_receive_maximum_close_with_0x93() -> None:
    core = core5(receive_maximum=1)
    core.receive_packet(Publish("t", b"1", QoS.AT_LEAST_ONCE, packet_id=1), 0.0)
    core.receive_packet(Publish("t", b"2", QoS.AT_LEAST_ONCE, packet_id=2), 0.0)
    assert isinstance(closed_with(core.events()), ProtocolViolation)
    assert core.packets_to_send() == [Disconnect(0x93)]


def test_received_messages_carry_their_properties() -> None:
    core = core5()
    props = Properties(subscription_identifiers=(3, 4), user_properties=(("k", "v"),))
    core.receive_packet(Publish("t", b"", properties=props), 0.0)
    (event,) = core.events()
    assert isinstance(event, MessageReceived)
    assert event.message.properties == props


# -- arguments refused before anything is sent ---------------------------------------------


def test_disconnect_sends_its_reason_code_and_session_expiry() -> None:
    core = core5(session_expiry_interval=10)
    core.disconnect(1.0, 0x04, session_expiry_interval=0)
    assert core.packets_to_send() == [Disconnect(0x04, Properties(session_expiry_interval=0))]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.disconnect(0.0, session_expiry_interval=5), "3.14.2.2.2"),
        (lambda c: c.disconnect(0.0, 0x8E), "cannot disconnect with reason 0x8E"),
        (lambda c: c.subscribe([("t", 0)], 0.0, subscription_identifier=0), "1..268435455"),
        (lambda c: c.subscribe([Subscription("t", QoS(0), retain_handling=3)], 0.0),
         "retain handling"),
        (lambda c: c.subscribe([Subscription("$share/g/t", QoS(0), no_local=True)], 0.0),
         "MQTT-3.8.3-4"),
        (lambda c: c.subscribe([("$share/+/t", 0)], 0.0), "holds a wildcard"),
        (lambda c: c.subscribe([("$share/g", 0)], 0.0), "no topic filter"),
        (lambda c: c.publish("t", b"", 0, False, 0.0,
                             properties=Properties(response_topic="r/#")), "response topic"),
        (lambda c: c.publish("t", b"\xff", 0, False, 0.0,
                             properties=Properties(payload_format_indicator=1)), "UTF-8"),
        (lambda c: c.publish("t", b"", 0, False, 0.0,
                             properties=Properties(subscription_identifiers=(1,))),
         "subscription identifier"),
        (lambda c: c.publish("t", b"", 0, False, 0.0, properties=Properties(topic_alias=1)),
         "topic aliases are chosen by the client"),
        (lambda c: c.publish("t", b"", 0, False, 0.0,
                             properties=Properties(session_expiry_interval=1)),
         "invalid PUBLISH properties"),
    ],
)  # fmt: skip
def test_bad_5_0_arguments_raise_invalid_argument(call: object, message: str) -> None:
    core = core5()
    with pytest.raises(InvalidArgument) as caught:
        call(core)  # type: ignore[operator]
    assert message in str(caught.value)
    assert core.packets_to_send() == []


@pytest.mark.parametrize(
    "options",
    [
        {"receive_maximum": 0},
        {"session_expiry_interval": -1},
        {"topic_alias_maximum": 70000},
        {"will": Will("w", b"", properties=Properties(topic_alias=1))},
    ],
)
def test_bad_5_0_options_are_refused_when_built(options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        ClientOptions(client_id="c", protocol_level=V5, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options", [{"session_expiry_interval": 5}, {"user_properties": [("a", "b")]}]
)
def test_5_0_options_below_5_0_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match=r"need MQTT 5\.0"):
        ClientOptions(client_id="c", **options)  # type: ignore[arg-type]


def test_properties_below_5_0_are_refused() -> None:
    core = ClientProtocol(ClientOptions(client_id="c"))
    with pytest.raises(InvalidArgument, match=r"need MQTT 5\.0"):
        core.publish("t", b"", 0, False, 0.0, properties=Properties(content_type="x"))
    with pytest.raises(InvalidArgument, match=r"need MQTT 5\.0"):
        core.subscribe([Subscription("t", QoS(0), no_local=True)], 0.0)
