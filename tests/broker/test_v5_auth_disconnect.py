"""A client's DISCONNECT in the middle of enhanced authentication (4.12), on raw sockets.

Between CONNECT and CONNACK the client may send AUTH or DISCONNECT [MQTT-3.1.2-30] and "can
close the connection at any point in this process. It MAY send a DISCONNECT packet before
doing so" (4.12): a clean close, answered with nothing (no DISCONNECT before a CONNACK
[MQTT-3.14.0-1]), with no session opened and no will published whatever the reason code,
as the CONNECT was never accepted. During a re-authentication (4.12.1) a DISCONNECT is an
ordinary one: 0x00 discards the will [MQTT-3.14.4-3], 0x04 has it published."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mqttref.impl.auth import SCRAM_SHA_256, ScramSha256Client
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    Auth,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
    Publish,
    QoS,
    Subscribe,
    Subscription,
    Will,
)
from tests.broker.test_v5_packet_size import V5, Wire
from tests.helpers.broker_thread import BrokerThread

R = ReasonCode
WILL = Will("wills/c", b"gone")
FENCE = Publish("wills/fence", b"after")


@pytest.fixture
def broker(start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return start_broker(users={"alice": "pencil"})


@pytest.fixture
def watcher(broker: BrokerThread) -> Iterator[Wire]:
    """Subscribed to every will: what it receives shows whether one was published."""
    with Wire(broker) as wire:
        wire.connect("watcher")
        wire.send(Subscribe(1, (Subscription("wills/#", QoS.AT_MOST_ONCE),)))
        assert wire.frame() == bytes.fromhex("90 04 00 01 00 00")
        yield wire


def next_will(watcher: Wire, broker: BrokerThread) -> bytes:
    """The next message on wills/#, once the fence is published after it: the fence
    itself when no will went out before."""
    with Wire(broker) as fence:
        fence.connect("fence")
        fence.send(FENCE)
        fence.send(Disconnect())
        assert fence.frames_until_closed() == []
    return watcher.frame()


def auth_of(frame: bytes) -> Auth:
    [packet] = Decoder(role=Role.CLIENT, protocol_level=V5).feed(frame)
    assert isinstance(packet, Auth), packet
    return packet


def begin_scram(client: Wire, scram: ScramSha256Client, *, will: Will | None = None,
                clean_session: bool = True) -> Auth:
    """CONNECT naming SCRAM-SHA-256; the server's first AUTH 0x18, after checking its bytes
    begin as AUTH with that reason code (3.15.2.1)."""
    properties = Properties(authentication_method=SCRAM_SHA_256,
                            authentication_data=scram.initial_data(),
                            session_expiry_interval=None if clean_session else 60)
    client.send(Connect(V5, "c", clean_session, will=will, username="alice",
                        properties=properties))
    frame = client.frame()
    assert frame[0] == 0xF0
    assert frame[2] == R.CONTINUE_AUTHENTICATION
    return auth_of(frame)


def finish_scram(client: Wire, scram: ScramSha256Client, challenge: Auth) -> bytes:
    client.send(Auth(R.CONTINUE_AUTHENTICATION, Properties(
        authentication_method=SCRAM_SHA_256,
        authentication_data=scram.challenge(challenge.properties.authentication_data))))
    return client.frame()


def scram_connected(client: Wire, *, will: Will | None = None) -> ScramSha256Client:
    scram = ScramSha256Client("alice", "pencil")
    connack = finish_scram(client, scram, begin_scram(client, scram, will=will))
    assert connack[0] == 0x20
    assert connack[3] == R.SUCCESS
    return scram


# Before CONNACK ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", [R.SUCCESS, R.DISCONNECT_WITH_WILL],
                         ids=["0x00", "0x04"])
def test_a_disconnect_during_the_first_exchange_closes_cleanly_without_an_answer(
    broker: BrokerThread, watcher: Wire, reason: ReasonCode,
) -> None:
    with Wire(broker) as client:
        begin_scram(client, ScramSha256Client("alice", "pencil"), will=WILL)
        client.send(Disconnect(reason))
        assert client.frames_until_closed() == []  # no CONNACK 0x82, no DISCONNECT
    # The CONNECT was never accepted: its will never stored, so never published.
    assert next_will(watcher, broker) == encode(FENCE, V5)


def test_a_disconnect_during_the_first_exchange_leaves_no_session(
    broker: BrokerThread,
) -> None:
    with Wire(broker) as client:
        begin_scram(client, ScramSha256Client("alice", "pencil"), clean_session=False)
        client.send(Disconnect())
        assert client.frames_until_closed() == []
    with Wire(broker) as client:
        scram = ScramSha256Client("alice", "pencil")
        challenge = begin_scram(client, scram, clean_session=False)
        connack = finish_scram(client, scram, challenge)
        assert connack[2:4] == bytes([0, R.SUCCESS])  # session present 0


def test_the_broker_goes_on_serving_others_after_such_a_disconnect(
    broker: BrokerThread, watcher: Wire,
) -> None:
    with Wire(broker) as client:
        begin_scram(client, ScramSha256Client("alice", "pencil"))
        client.send(Disconnect())
        assert client.frames_until_closed() == []
    watcher.send(PingReq())
    assert watcher.frame() == encode(PingResp(), V5)


def test_another_packet_during_the_first_exchange_is_refused_with_connack_0x82(
    broker: BrokerThread,
) -> None:
    """Only AUTH or DISCONNECT until CONNACK [MQTT-3.1.2-30]."""
    with Wire(broker) as client:
        begin_scram(client, ScramSha256Client("alice", "pencil"))
        client.send(PingReq())
        assert client.frames_until_closed() == [bytes.fromhex("20 03 00 82 00")]


# During a re-authentication ------------------------------------------------------------


def start_reauthentication(client: Wire, scram: ScramSha256Client) -> None:
    client.send(Auth(R.REAUTHENTICATE, Properties(
        authentication_method=SCRAM_SHA_256, authentication_data=scram.initial_data())))
    frame = client.frame()
    assert frame[0] == 0xF0
    assert frame[2] == R.CONTINUE_AUTHENTICATION


def test_a_disconnect_0x00_during_re_authentication_discards_the_will(
    broker: BrokerThread, watcher: Wire,
) -> None:
    with Wire(broker) as client:
        scram = scram_connected(client, will=WILL)
        start_reauthentication(client, scram)
        client.send(Disconnect(R.SUCCESS))
        assert client.frames_until_closed() == []
    assert next_will(watcher, broker) == encode(FENCE, V5)  # [MQTT-3.14.4-3]


def test_a_disconnect_0x04_during_re_authentication_publishes_the_will(
    broker: BrokerThread, watcher: Wire,
) -> None:
    with Wire(broker) as client:
        scram = scram_connected(client, will=WILL)
        start_reauthentication(client, scram)
        client.send(Disconnect(R.DISCONNECT_WITH_WILL))
        assert client.frames_until_closed() == []
    assert next_will(watcher, broker) == encode(Publish("wills/c", b"gone"), V5)
