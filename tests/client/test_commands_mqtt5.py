"""``mqttref pub``/``sub`` with mosquitto 2.0's MQTT v5 options (-V, -D, -x), beside
mosquitto_pub and mosquitto_sub at v5, against mosquitto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.brokers import BROKER_KINDS, Broker, running_broker
from tests.client.test_commands import (
    _kill_leftover_processes,  # noqa: F401 (the autouse fixture, for this module too)
    finish,
    mosquitto_pub,
    mqttref,
    pub,
    start,
    start_mqttref_sub,
)


@pytest.fixture(params=BROKER_KINDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """mosquitto 2.0 and the mqttref broker, each at level 5."""
    with running_broker(request.param, tmp_path) as running:
        yield running


def test_mosquitto_sub_sees_the_properties_mqttref_pub_sets(broker: Broker) -> None:
    sub = start(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-i", "msub5",
         "-V", "mqttv5", "-t", "v5/#", "-q", "1", "-C", "1", "-F", "%t %p|%C|%R|%D|%P|%F"]
    )  # fmt: skip
    broker.wait_for_subscription("msub5")
    pub(broker, "-V", "mqttv5", "-t", "v5/t", "-m", "hi", "-q", "1",
        "-D", "publish", "content-type", "text/plain",
        "-D", "publish", "response-topic", "v5/reply",
        "-D", "publish", "correlation-data", "xyz",
        "-D", "publish", "user-property", "b", "2",
        "-D", "publish", "user-property", "a", "1",
        "-D", "publish", "payload-format-indicator", "1",
        "-D", "publish", "message-expiry-interval", "30",
        "-D", "connect", "session-expiry-interval", "60")  # fmt: skip
    code, out, _ = finish(sub)
    assert code == 0
    assert out == b"v5/t hi|text/plain|v5/reply|xyz|b:2 a:1|1\n"


def test_mqttref_sub_prints_the_properties_mosquitto_pub_sets(broker: Broker) -> None:
    sub = start_mqttref_sub(broker, "rsub5", "-V", "5", "-t", "v5/#", "-C", "1", "-q", "2",
                            "-D", "subscribe", "subscription-identifier", "5",
                            "-F", "%t %p|%C|%P|%S|%E")  # fmt: skip
    mosquitto_pub(broker, "-V", "mqttv5", "-t", "v5/m", "-m", "yo", "-q", "2",
                  "-D", "publish", "content-type", "a/b",
                  "-D", "publish", "user-property", "k", "v",
                  "-D", "publish", "message-expiry-interval", "30")  # fmt: skip
    code, out, err = finish(sub)
    assert (code, err) == (0, b"")
    topic_payload, content, users, ids, expiry = out.rstrip(b"\n").split(b"|")
    assert (topic_payload, content, users, ids) == (b"v5/m yo", b"a/b", b"k:v", b"5")
    assert 0 < int(expiry) <= 30


def test_sub_retain_handling_2_skips_the_retained_message(broker: Broker) -> None:
    mosquitto_pub(broker, "-t", "rh", "-m", "old", "-r")
    sub = start_mqttref_sub(broker, "rh2", "-V", "mqttv5", "-t", "rh", "-C", "1",
                            "--retain-handling", "2")  # fmt: skip
    mosquitto_pub(broker, "-t", "rh", "-m", "new")
    assert finish(sub)[:2] == (0, b"new\n")


def test_sub_no_local_and_a_persistent_v5_session_with_x(broker: Broker) -> None:
    args = ("-V", "mqttv5", "-c", "-x", "60", "-q", "1", "-t", "px", "-C", "1", "--no-local")
    first = start_mqttref_sub(broker, "px", *args)
    mosquitto_pub(broker, "-t", "px", "-m", "one", "-q", "1")
    assert finish(first)[:2] == (0, b"one\n")
    mosquitto_pub(broker, "-t", "px", "-m", "while away", "-q", "1")
    again = mqttref("sub", "-h", broker.host, "-p", str(broker.port), "-i", "px", *args)
    assert (again.returncode, again.stdout) == (0, b"while away\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-D", "foo", "bar", "baz"], "Invalid command 'foo' given in -D argument"),
        (["-D", "publish", "bogus", "1"], "Invalid property name 'bogus'"),
        (["-D", "connect", "content-type", "x"], "content-type property not allowed for connect"),
        (["-D", "publish", "topic-alias", "3"], "topic-alias property not supported for publish"),
        (
            ["-D", "publish", "message-expiry-interval", "99999999999"],
            "Property value (99999999999) out of range for property message-expiry-interval.",
        ),
        (["-D", "connect", "receive-maximum", "0"], "Property value (0) out of range"),
        (["-D", "publish"], "not enough arguments"),
        (["-D", "publish", "user-property", "only-a-name"], "a name and a value"),
        (["-V", "mqttv311", "-D", "publish", "content-type", "x"], "need MQTT v5"),
        (["-x", "10"], "-x applies to MQTT v5 clients only"),
        (["-V", "5", "-x", "abc"], "session-expiry-interval not a number."),
        (["-V", "5", "-x", "-1"], "You must provide a client id"),
        (["-V", "mqttv4"], "invalid choice: 'mqttv4'"),
    ],
)
def test_bad_v5_options_fail_before_connecting_with_code_2(args: list[str], message: str) -> None:
    result = mqttref("pub", "-p", "1", "-t", "t", "-m", "x", *args)
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert "cannot connect" not in result.stderr.decode()


def test_sub_subscription_options_need_v5() -> None:
    result = mqttref("sub", "-p", "1", "-t", "t", "--no-local")
    assert result.returncode == 2
    assert "need MQTT v5" in result.stderr.decode()
