"""Broker URLs (``-L``, ``Client.from_url``): default ports, user and password, topic or path."""

from __future__ import annotations

import pytest

from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.client.url import BrokerUrl, parse_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://localhost/a/b", BrokerUrl("mqtt", "localhost", 1883, path="/a/b")),
        ("MQTTS://h/t", BrokerUrl("mqtts", "h", 8883, path="/t")),
        ("ws://h", BrokerUrl("ws", "h", 80)),
        ("wss://h:9443/ws", BrokerUrl("wss", "h", 9443, path="/ws")),
        ("mqtt://u:p:q@h:1884/a/#", BrokerUrl("mqtt", "h", 1884, "u", "p:q", "/a/#")),
        ("mqtt://me@h/+/x", BrokerUrl("mqtt", "h", 1883, "me", None, "/+/x")),
        ("mqtt://u:p@ss@h/t", BrokerUrl("mqtt", "h", 1883, "u", "p@ss", "/t")),
        ("mqtt://[::1]:1999/t", BrokerUrl("mqtt", "::1", 1999, path="/t")),
    ],
)
def test_parse_url_takes_mosquittos_form_and_websocket_urls(url: str, expected: BrokerUrl) -> None:
    assert parse_url(url) == expected


def test_the_path_is_the_topic_of_mqtt_urls_and_the_resource_of_websocket_urls() -> None:
    assert parse_url("mqtts://h/a/#").topic == "a/#"
    assert parse_url("mqtt://h/").topic is None
    assert parse_url("ws://h/a/b").topic is None
    assert parse_url("ws://h/a/b").websocket_path == "/a/b"
    assert parse_url("wss://h").websocket_path == "/mqtt"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("localhost:1883", "must start with mqtt://, mqtts://, ws:// or wss://"),
        ("tcp://h/t", "must start with"),
        ("mqtt:///t", "no host"),
        ("mqtt://h:/t", "port must be 1..65535, not ''"),
        ("mqtt://h:x/t", "port must be 1..65535, not 'x'"),
        ("mqtt://h:65536/t", "port must be 1..65535"),
        ("mqtt://:pw@h/t", "empty user name"),
        ("mqtt://[::1/t", "no ']'"),
        ("mqtt://[::1]x/t", "unexpected 'x'"),
    ],
)
def test_a_malformed_url_says_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_url(url)
    assert str(err.value).startswith(f"bad URL {url!r}: ")
    assert complaint in str(err.value)
