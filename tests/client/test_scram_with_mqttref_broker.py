"""SCRAM-SHA-256 enhanced authentication end to end: the mqttref client (MQTT 5.0) and
the mqttref broker over a real socket, both sides of RFC 7677 proving themselves."""

from __future__ import annotations

import asyncio

import pytest

from mqttref.impl.auth import ScramSha256Client
from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config
from mqttref.impl.client.client import Client
from mqttref.impl.client.errors import ConnectionRefused
from mqttref.impl.codec.errors import ReasonCode


async def exchange(password: str) -> list[bytes]:
    config = Config(port=0, users={"alice": "pencil"})
    async with Broker(config) as broker:
        client = Client("127.0.0.1", broker.port, client_id="scram", protocol=5,
                        authenticator=ScramSha256Client("alice", password))
        async with client:
            await client.subscribe("s/t", qos=1)
            await client.publish("s/t", b"proved", qos=1)
            await client.reauthenticate()
            await client.publish("s/t", b"again", qos=1)
            got = []
            async for message in client.messages:
                got.append(message.payload)
                if len(got) == 2:
                    break
            return got


def test_the_right_password_connects_and_survives_re_authentication() -> None:
    assert asyncio.run(exchange("pencil")) == [b"proved", b"again"]


def test_a_wrong_password_is_refused_with_0x86() -> None:
    with pytest.raises(ConnectionRefused) as refused:
        asyncio.run(exchange("wrong"))
    assert refused.value.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
