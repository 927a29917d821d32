"""MQTT 5.0 enhanced authentication in the broker's core: SCRAM-SHA-256 (RFC 7677)
through AUTH packets before CONNACK and again while connected (4.12)."""

from __future__ import annotations

import attrs

from mqttref.impl.auth import SCRAM_SHA_256, AuthError, ScramSha256Client
from mqttref.impl.broker.authentication import authenticators_for
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import Auth, ConnAck, Connect, Disconnect, Properties, ProtocolLevel
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import Client5, accept5

V5 = ProtocolLevel.MQTT_5
R = ReasonCode


def scram_world(**config: object) -> World:
    world = World(Config(port=0, users={"alice": "pencil"}, **config))  # type: ignore[arg-type]
    world.ports = attrs.evolve(world.ports, authenticators=authenticators_for(world.config))
    return world


def scram_connect(world: World, password: str, *, user: str = "alice"
                  ) -> tuple[Client5, ScramSha256Client, ConnAck]:
    """CONNECT with SCRAM-SHA-256, answer the server's challenge, return the CONNACK."""
    scram = ScramSha256Client(user, password)
    client = accept5(world)
    client.send(Connect(V5, "c", username=user, properties=Properties(
        authentication_method=SCRAM_SHA_256, authentication_data=scram.initial_data())),
        now=0.0)
    [challenge] = client.received()
    assert isinstance(challenge, Auth)
    assert challenge.reason_code == R.CONTINUE_AUTHENTICATION  # 0x18
    assert challenge.properties.authentication_method == SCRAM_SHA_256
    client.send(Auth(R.CONTINUE_AUTHENTICATION, Properties(
        authentication_method=SCRAM_SHA_256,
        authentication_data=scram.challenge(challenge.properties.authentication_data))),
        now=0.1)
    [connack] = client.received()
    assert isinstance(connack, ConnAck)
    return client, scram, connack


def test_scram_sha_256_with_the_right_password_connects_and_proves_the_server() -> None:
    world = scram_world()
    client, scram, connack = scram_connect(world, "pencil")
    assert connack.return_code == R.SUCCESS
    assert connack.properties.authentication_method == SCRAM_SHA_256  # [MQTT-4.12.0-5]
    scram.finish(connack.properties.authentication_data)  # the server's signature checks out
    assert "c" in world.table.sessions
    assert not client.closed()


def test_scram_sha_256_with_a_wrong_password_is_refused_with_0x86() -> None:
    world = scram_world()
    client, _scram, connack = scram_connect(world, "wrong")
    assert connack.return_code == R.BAD_USER_NAME_OR_PASSWORD
    assert client.closed()
    assert "c" not in world.table.sessions


def test_an_unknown_user_is_refused_like_a_wrong_password() -> None:
    world = scram_world()
    _client, _scram, connack = scram_connect(world, "pencil", user="mallory")
    assert connack.return_code == R.BAD_USER_NAME_OR_PASSWORD


def test_a_method_the_broker_does_not_offer_is_refused_with_0x8c() -> None:
    world = scram_world()
    client = accept5(world)
    client.send(Connect(V5, "c", properties=Properties(authentication_method="KERBEROS")),
                now=0.0)
    [connack] = client.received()
    assert isinstance(connack, ConnAck)
    assert connack.return_code == R.BAD_AUTHENTICATION_METHOD
    assert client.closed()


def test_without_users_no_method_is_offered() -> None:
    world = World()
    assert isinstance(world.ports, BrokerPorts)
    client = accept5(world)
    client.send(Connect(V5, "c", properties=Properties(
        authentication_method=SCRAM_SHA_256, authentication_data=b"n,,n=a,r=x")), now=0.0)
    [connack] = client.received()
    assert isinstance(connack, ConnAck)
    assert connack.return_code == R.BAD_AUTHENTICATION_METHOD


def test_re_authentication_while_connected_ends_in_auth_0x00() -> None:
    world = scram_world()
    client, scram, connack = scram_connect(world, "pencil")
    scram.finish(connack.properties.authentication_data)
    client.send(Auth(R.REAUTHENTICATE, Properties(
        authentication_method=SCRAM_SHA_256, authentication_data=scram.initial_data())),
        now=1.0)
    [challenge] = client.received()
    assert isinstance(challenge, Auth)
    assert challenge.reason_code == R.CONTINUE_AUTHENTICATION
    client.send(Auth(R.CONTINUE_AUTHENTICATION, Properties(
        authentication_method=SCRAM_SHA_256,
        authentication_data=scram.challenge(challenge.properties.authentication_data))),
        now=1.1)
    [done] = client.received()
    assert isinstance(done, Auth)
    assert done.reason_code == R.SUCCESS
    scram.finish(done.properties.authentication_data)
    assert not client.closed()


def test_re_authentication_with_another_method_is_a_protocol_error() -> None:
    world = scram_world()
    client, _scram, _connack = scram_connect(world, "pencil")
    client.send(Auth(R.REAUTHENTICATE, Properties(authentication_method="OTHER")), now=1.0)
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == R.PROTOCOL_ERROR  # [MQTT-4.12.1-1]
    assert client.closed()


def test_auth_without_a_method_in_connect_is_a_protocol_error() -> None:
    world = World()
    client = accept5(world)
    client.send(Connect(V5, "c"), now=0.0)
    client.received()
    client.send(Auth(R.REAUTHENTICATE, Properties(authentication_method=SCRAM_SHA_256)),
                now=1.0)
    [disconnect] = client.received()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == R.PROTOCOL_ERROR


def test_a_client_checks_a_server_that_does_not_know_its_password() -> None:
    """Mutual authentication: a server-final from a server holding another verifier
    fails the client's check (RFC 5802 section 5.1, v=)."""
    world = scram_world()
    _client, scram, connack = scram_connect(world, "pencil")
    other = scram_world()
    _c2, _s2, other_connack = scram_connect(other, "pencil")
    try:
        scram.finish(other_connack.properties.authentication_data)
    except AuthError:
        pass
    else:
        raise AssertionError("a signature from another exchange was accepted")
    assert connack.return_code == R.SUCCESS
