"""The choices MQTT 3.1.1 leaves to a server, as configuration keys (docs/broker.md).

Each key is observed over a real socket on an in-process broker configured with
it, next to the default broker that does what it always did; then its bad values
(ConfigError naming the key), the TOML file, the command line, and the pure
decisions in ``limits`` and ``admission``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from mqttref.commands import broker as broker_command
from mqttref.impl.broker.admission import connect_return_code
from mqttref.impl.broker.config import Config, config_from_mapping, load_config
from mqttref.impl.broker.limits import (
    discouraged_code_point,
    filter_problem,
    granted_qos,
    topic_problem,
)
from mqttref.impl.codec.errors import ConfigError
from mqttref.impl.codec.packets import (
    SUBACK_FAILURE,
    ConnAck,
    Connect,
    ConnectReturnCode,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
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
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.legal_choices import DESCRIPTIONS, LEGAL_CHOICES, legal_config
from tests.helpers.raw_client import CLOSED, RawClient

V311 = ProtocolLevel.MQTT_3_1_1
Q0, Q1, Q2 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE
StartBroker = Callable[..., BrokerThread]


def connected(broker: BrokerThread, client_id: str, *, clean_session: bool = True) -> RawClient:
    client = RawClient(broker.port)
    assert client.connect(client_id, clean_session=clean_session).return_code == 0
    return client


def subscribe(client: RawClient, *filters: tuple[str, QoS], packet_id: int = 1) -> tuple[int, ...]:
    client.send(Subscribe(packet_id, tuple(Subscription(f, q) for f, q in filters)))
    answer = client.receive()
    assert isinstance(answer, SubAck), answer
    assert answer.packet_id == packet_id
    return answer.return_codes


def still_open(client: RawClient) -> bool:
    """Answered a PINGREQ: every packet sent before it has been handled."""
    client.send(PingReq())
    return client.receive() == PingResp()


def closed_without_answer(client: RawClient) -> bool:
    return client.receive_all() == [CLOSED]


def publishes(packets: list[Packet | str]) -> list[Publish]:
    return [p for p in packets if isinstance(p, Publish)]


# max_qos ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_qos", "granted"), [(2, (2, 1, 0)), (1, (1, 1, 0)), (0, (0, 0, 0))]
)
def test_suback_grants_at_most_max_qos(start_broker: StartBroker, max_qos: int,
                                       granted: tuple[int, ...]) -> None:
    """[MQTT-3.8.4-6]: the Server might grant a lower maximum QoS than requested."""
    broker = start_broker(max_qos=max_qos)
    with connected(broker, "s") as client:
        assert subscribe(client, ("a", Q2), ("b", Q1), ("c", Q0)) == granted
        assert broker.call(lambda b: b.sessions["s"].subscriptions) == dict(
            zip("abc", granted, strict=True))


@pytest.mark.parametrize("max_qos", [1, 0])
def test_a_qos_2_publish_is_still_accepted_and_delivered_at_the_granted_qos(
    start_broker: StartBroker, max_qos: int
) -> None:
    """3.1.1 cannot tell a client the limit: its QoS 2 PUBLISH gets the whole QoS 2
    flow, and the subscriber gets min(message QoS, granted QoS) [MQTT-3.8.4-6]."""
    broker = start_broker(max_qos=max_qos)
    with connected(broker, "sub") as sub, connected(broker, "pub") as pub:
        assert subscribe(sub, ("t", Q2)) == (max_qos,)
        pub.send(Publish("t", b"m", Q2, packet_id=7))
        assert pub.receive() == PubRec(7)
        pub.send(PubRel(7))
        assert pub.receive() == PubComp(7)
        [got] = publishes(sub.receive_all())
        assert (got.topic, got.payload, got.qos) == ("t", b"m", max_qos)
        assert still_open(pub)


# refusing chosen filters ----------------------------------------------------------------


def test_wildcard_filters_are_refused_and_the_others_granted(start_broker: StartBroker) -> None:
    """[MQTT-3.8.3-2]: a server that does not support wildcards MUST refuse them."""
    broker = start_broker(refuse_wildcard_subscriptions=True)
    with connected(broker, "s") as sub, connected(broker, "p") as pub:
        codes = subscribe(sub, ("a/+", Q1), ("a/b", Q1), ("#", Q0), ("x/#", Q2))
        assert codes == (SUBACK_FAILURE, 1, SUBACK_FAILURE, SUBACK_FAILURE)
        pub.send(Publish("a/b", b"1"))
        pub.send(Publish("x/y", b"2"))
        assert still_open(pub)
        assert [(p.topic, p.payload) for p in publishes(sub.receive_all())] == [("a/b", b"1")]


def test_wildcard_filters_are_granted_by_default(start_broker: StartBroker) -> None:
    broker = start_broker()
    with connected(broker, "s") as sub:
        assert subscribe(sub, ("a/+", Q1), ("a/b", Q1), ("#", Q0)) == (1, 1, 0)


def test_filters_with_a_refused_character_get_0x80(start_broker: StartBroker) -> None:
    broker = start_broker(refuse_filter_characters=" ~")
    with connected(broker, "s") as sub, connected(broker, "p") as pub:
        codes = subscribe(sub, ("a b", Q1), ("ab", Q1), ("a/~", Q0), ("+/ ", Q0), ("a/+", Q2))
        assert codes == (SUBACK_FAILURE, 1, SUBACK_FAILURE, SUBACK_FAILURE, 2)
        assert broker.call(lambda b: sorted(b.sessions["s"].subscriptions)) == ["a/+", "ab"]
        pub.send(Publish("a b", b"name"))  # a topic *name* with a space is still published
        assert still_open(pub)
        assert publishes(sub.receive_all()) == []
    with connected(broker, "t") as other:
        assert subscribe(other, ("a b", Q0)) == (SUBACK_FAILURE,)


# allow_zero_length_clientid -------------------------------------------------------------


def test_an_empty_client_id_is_rejected_with_0x02_then_closed(start_broker: StartBroker) -> None:
    """[MQTT-3.1.3-9]: a rejected ClientId gets CONNACK 0x02 and the close."""
    broker = start_broker(allow_zero_length_clientid=False)
    with RawClient(broker.port) as client:
        client.send(Connect(V311, "", clean_session=True))
        assert client.receive_all() == [
            ConnAck(False, ConnectReturnCode.IDENTIFIER_REJECTED), CLOSED
        ]
    assert broker.call(lambda b: len(b.sessions)) == 0
    with connected(broker, "named") as client:
        assert still_open(client)


def test_an_empty_client_id_gets_one_of_its_own_by_default(start_broker: StartBroker) -> None:
    """[MQTT-3.1.3-6]"""
    broker = start_broker()
    with RawClient(broker.port) as client:
        assert client.connect("", clean_session=True) == ConnAck(False, 0)
        assert still_open(client)
        assert broker.call(lambda b: [c.startswith("mqttref-") for c in b.sessions]) == [True]


# reject_control_characters ---------------------------------------------------------------

DISCOURAGED = ["\x01", "\x07", "\x1b", "\x1f", "\x7f", "\x85", "\x9f", "\ufdd0", "\ufdef",
               "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"]
"""Code points 1.5.3 says SHOULD NOT appear: both control ranges' ends and middles,
and non-characters from U+FDD0-U+FDEF and the end of planes 0, 1 and 16."""


def refused_connects(bad: str) -> dict[str, Connect]:
    return {
        "client id": Connect(V311, f"c{bad}"),
        "user name": Connect(V311, "c", username=f"u{bad}", password=b"p"),
        "will topic": Connect(V311, "c", will=Will(f"w{bad}", b"gone")),
    }


@pytest.mark.parametrize("where", ["client id", "user name", "will topic"])
@pytest.mark.parametrize("bad", ["\x07", "\x9f", "\uffff"], ids=["U+0007", "U+009F", "U+FFFF"])
def test_a_discouraged_code_point_in_connect_closes_without_connack(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture, where: str, bad: str
) -> None:
    """1.5.3: a receiver MAY close the Network Connection; before CONNACK, no CONNACK."""
    broker = start_broker(reject_control_characters=True)
    with caplog.at_level(logging.WARNING, logger="mqttref.broker"), \
            RawClient(broker.port) as client:
        client.send(refused_connects(bad)[where])
        assert closed_without_answer(client)
        assert broker.call(lambda b: len(b.sessions)) == 0
    assert f"U+{ord(bad):04X}" in caplog.text
    assert "refused" in caplog.text


@pytest.mark.parametrize("where", ["client id", "user name"])
def test_control_characters_in_connect_strings_are_accepted_by_default(
    start_broker: StartBroker, where: str
) -> None:
    broker = start_broker()
    with RawClient(broker.port) as client:
        client.send(refused_connects("\x07")[where])
        assert client.receive() == ConnAck(False, 0)
        assert still_open(client)


@pytest.mark.parametrize("bad", DISCOURAGED, ids=[f"U+{ord(c):04X}" for c in DISCOURAGED])
def test_a_discouraged_code_point_in_a_topic_name_closes(
    start_broker: StartBroker, bad: str
) -> None:
    broker = start_broker(reject_control_characters=True)
    with connected(broker, "s") as sub, connected(broker, "p") as pub:
        assert subscribe(sub, ("#", Q0)) == (0,)
        pub.send(Publish(f"t/{bad}", b"x"))
        assert closed_without_answer(pub)
        assert still_open(sub)
        assert publishes(sub.receive_all()) == []


def test_a_non_character_in_a_topic_name_is_published_by_default(
    start_broker: StartBroker,
) -> None:
    broker = start_broker()
    with connected(broker, "s") as sub, connected(broker, "p") as pub:
        assert subscribe(sub, ("#", Q0)) == (0,)
        pub.send(Publish("t/\uffff", b"x"))
        assert still_open(pub)
        assert [p.topic for p in publishes(sub.receive_all())] == ["t/\uffff"]


@pytest.mark.parametrize(
    "packet",
    [Subscribe(2, (Subscription("ok", Q0), Subscription("a\x07", Q0))),
     Subscribe(2, (Subscription("a/\ufdd0", Q1),)),
     Unsubscribe(2, ("ok", "a\x1b[31m"))],
    ids=["subscribe-control", "subscribe-non-character", "unsubscribe-control"],
)
def test_a_discouraged_code_point_in_a_filter_closes(
    start_broker: StartBroker, packet: Subscribe | Unsubscribe
) -> None:
    broker = start_broker(reject_control_characters=True)
    with connected(broker, "s") as client:
        client.send(packet)
        assert closed_without_answer(client)


def test_filters_with_discouraged_code_points_by_default(start_broker: StartBroker) -> None:
    """The default keeps the broker's old answer: 0x80 for a control character, a grant
    for a non-character; UNSUBSCRIBE is answered."""
    broker = start_broker()
    with connected(broker, "s") as client:
        assert subscribe(client, ("ok", Q0), ("a\x07", Q0), ("a/\ufdd0", Q1)) == (
            0, SUBACK_FAILURE, 1)
        client.send(Unsubscribe(3, ("ok", "a\x1b[31m")))
        assert client.receive() == UnsubAck(3)


# max_topic_length and max_topic_levels --------------------------------------------------


def test_filters_over_the_topic_limits_get_0x80(start_broker: StartBroker) -> None:
    broker = start_broker(max_topic_length=64, max_topic_levels=8)
    nine_levels = "/".join("abcdefghi")
    with connected(broker, "s") as client:
        codes = subscribe(client, ("x" * 64, Q1), ("x" * 65, Q1), ("é" * 33, Q1),
                          ("é" * 32, Q1), (nine_levels, Q0), (nine_levels[:-2], Q0))
        assert codes == (1, SUBACK_FAILURE, SUBACK_FAILURE, 1, SUBACK_FAILURE, 0)
        assert still_open(client)


@pytest.mark.parametrize(
    "topic", ["x" * 65, "é" * 33, "/".join("abcdefghi")], ids=["65-bytes", "66-utf8-bytes",
                                                                "9-levels"]
)
def test_a_publish_over_the_topic_limits_closes(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture, topic: str
) -> None:
    broker = start_broker(max_topic_length=64, max_topic_levels=8)
    with connected(broker, "s") as sub, connected(broker, "p") as pub, \
            caplog.at_level(logging.WARNING, logger="mqttref.broker"):
        assert subscribe(sub, ("#", Q0)) == (0,)
        pub.send(Publish("x" * 64, b"fits"))
        pub.send(Publish("/".join("abcdefgh"), b"fits"))
        assert still_open(pub)
        pub.send(Publish(topic, b"too long"))
        assert closed_without_answer(pub)
        assert [p.payload for p in publishes(sub.receive_all())] == [b"fits", b"fits"]
    assert "refused" in caplog.text
    assert "more than" in caplog.text


def test_a_will_topic_over_the_length_limit_closes_without_connack(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(max_topic_length=64)
    with RawClient(broker.port) as client:
        client.send(Connect(V311, "w", will=Will("x" * 65, b"gone")))
        assert closed_without_answer(client)
    with RawClient(broker.port) as client:
        client.send(Connect(V311, "w", will=Will("x" * 64, b"gone")))
        assert client.receive() == ConnAck(False, 0)


def test_long_topics_pass_by_default(start_broker: StartBroker) -> None:
    broker = start_broker()
    with connected(broker, "s") as sub, connected(broker, "p") as pub:
        assert subscribe(sub, ("x" * 65_000, Q1), ("#", Q0)) == (1, 0)
        pub.send(Publish("y" * 65_000, b"long"))
        assert still_open(pub)
        assert [p.payload for p in publishes(sub.receive_all())] == [b"long"]


# queue_qos0_messages ------------------------------------------------------------------


def publish_while_away(broker: BrokerThread, messages: list[tuple[bytes, QoS]]) -> None:
    """A persistent subscriber to ``q`` at QoS 1 goes away; the messages are published."""
    with connected(broker, "away", clean_session=False) as sub:
        assert subscribe(sub, ("q", Q1)) == (1,)
        sub.send(Disconnect())
    assert broker.wait_for(lambda b: b.sessions["away"].connection is None)
    with connected(broker, "pub") as pub:
        for n, (payload, qos) in enumerate(messages, start=1):
            pub.send(Publish("q", payload, qos, packet_id=n if qos else None))
            if qos:
                assert pub.receive() == PubAck(n)
        assert still_open(pub)


def come_back(broker: BrokerThread) -> list[tuple[bytes, int]]:
    with RawClient(broker.port) as sub:
        assert sub.connect("away", clean_session=False) == ConnAck(True, 0)
        got = publishes(sub.receive_all())
        for packet in got:
            if packet.packet_id is not None:
                sub.send(PubAck(packet.packet_id))
        sub.send(Disconnect())
    return [(p.payload, p.qos) for p in got]


MIXED = [(b"a", Q0), (b"b", Q1), (b"c", Q0)]


def test_qos_0_messages_are_not_kept_for_an_absent_client_by_default(
    start_broker: StartBroker,
) -> None:
    broker = start_broker()
    publish_while_away(broker, MIXED)
    assert come_back(broker) == [(b"b", 1)]


def test_queue_qos0_messages_keeps_them_in_order(start_broker: StartBroker) -> None:
    broker = start_broker(queue_qos0_messages=True)
    publish_while_away(broker, MIXED)
    assert come_back(broker) == [(b"a", 0), (b"b", 1), (b"c", 0)]


def test_queued_qos_0_messages_count_against_max_queued(start_broker: StartBroker) -> None:
    """The newest message beyond ``max_queued`` is dropped and counted, QoS 0 or not."""
    broker = start_broker(queue_qos0_messages=True, max_queued=2)
    publish_while_away(broker, [(b"a", Q0), (b"b", Q0), (b"c", Q0), (b"d", Q1)])
    assert broker.call(lambda b: b.sessions["away"].dropped) == 2
    assert come_back(broker) == [(b"a", 0), (b"b", 0)]


def test_queued_qos_0_messages_survive_a_restart_with_the_sqlite_store(tmp_path: Path) -> None:
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path), queue_qos0_messages=True)
    with BrokerThread(config) as broker:
        publish_while_away(broker, MIXED)
    with BrokerThread(config) as broker:
        assert come_back(broker) == [(b"a", 0), (b"b", 1), (b"c", 0)]


# the legal choices helper ----------------------------------------------------------------


def test_every_legal_choice_is_a_valid_config_with_a_description() -> None:
    assert set(LEGAL_CHOICES) == set(DESCRIPTIONS)
    fields = {field.name for field in attrs.fields(Config)}
    for name, overrides in LEGAL_CHOICES.items():
        assert set(overrides) <= fields, name
        config = legal_config(name, port=0)
        assert config.port == 0
        assert all(getattr(config, key) == value for key, value in overrides.items())
        assert DESCRIPTIONS[name]
        assert "\n" not in DESCRIPTIONS[name]
    for required in ("max_qos_1", "max_qos_0", "refuse_wildcards", "refuse_space_filters",
                     "no_empty_client_id", "close_on_control_characters", "short_topics",
                     "no_offline_qos0"):
        assert required in LEGAL_CHOICES


def test_a_legal_choice_starts_a_broker(start_broker: StartBroker) -> None:
    broker = start_broker(**LEGAL_CHOICES["refuse_space_filters"])
    with connected(broker, "s") as client:
        assert subscribe(client, ("a b", Q0)) == (SUBACK_FAILURE,)


# configuration: defaults, bad values, TOML, command line ---------------------------------


def test_the_defaults_keep_the_old_behaviour() -> None:
    config = Config()
    assert config.max_qos == 2
    assert config.refuse_wildcard_subscriptions is False
    assert config.refuse_filter_characters == ""
    assert config.allow_zero_length_clientid is True
    assert config.reject_control_characters is False
    assert config.max_topic_length == 65_535
    assert config.max_topic_levels == 200
    assert config.queue_qos0_messages is False
    assert config.max_queued == 1000


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_qos", 3), ("max_qos", -1), ("max_qos", True), ("max_qos", "1"), ("max_qos", 1.0),
        ("refuse_wildcard_subscriptions", "yes"), ("refuse_wildcard_subscriptions", 1),
        ("refuse_filter_characters", 5), ("refuse_filter_characters", ["a"]),
        ("refuse_filter_characters", "\x00"),
        ("allow_zero_length_clientid", "false"), ("allow_zero_length_clientid", 0),
        ("reject_control_characters", None), ("reject_control_characters", "true"),
        ("max_topic_length", 0), ("max_topic_length", 65_536), ("max_topic_length", "64"),
        ("max_topic_levels", 0), ("max_topic_levels", 1.5),
        ("queue_qos0_messages", "true"), ("queue_qos0_messages", 1),
        ("max_queued", 0),
        ("max_queued_messages", 100),  # mosquitto's name: max_queued is the one key
    ],
)
def test_a_bad_value_raises_config_error_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({key: value})
    assert str(caught.value).startswith(f"{key}:")
    assert "\n" not in str(caught.value)


TOML = """\
max_qos = 1
refuse_wildcard_subscriptions = true
refuse_filter_characters = " "
allow_zero_length_clientid = false
reject_control_characters = true
max_topic_length = 64
max_topic_levels = 8
queue_qos0_messages = true
max_queued = 50
"""
FROM_TOML: dict[str, Any] = {
    "max_qos": 1, "refuse_wildcard_subscriptions": True, "refuse_filter_characters": " ",
    "allow_zero_length_clientid": False, "reject_control_characters": True,
    "max_topic_length": 64, "max_topic_levels": 8, "queue_qos0_messages": True,
    "max_queued": 50,
}


@pytest.mark.parametrize("table", ["", "[broker]\n"], ids=["top-level", "broker-table"])
def test_the_keys_load_from_a_toml_file(tmp_path: Path, table: str) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(table + TOML)
    assert load_config(path) == Config(**FROM_TOML)


def test_a_bad_value_in_the_toml_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("max_qos = 3\n")
    with pytest.raises(ConfigError, match=r"^max_qos: must be 0, 1 or 2, got 3$"):
        load_config(path)


def parse(*argv: str) -> argparse.Namespace:
    """The ``mqttref broker`` parser alone (the other subcommands need not import)."""
    parser = argparse.ArgumentParser(prog="mqttref")
    broker_command.register(parser.add_subparsers(dest="command").add_parser)
    return parser.parse_args(["broker", *argv])


def test_the_keys_are_command_line_options() -> None:
    config = broker_command.build_config(parse(
        "--memory", "--max-qos", "1", "--refuse-wildcard-subscriptions",
        "--refuse-filter-characters", " ", "--no-allow-zero-length-clientid",
        "--reject-control-characters", "--max-topic-length", "64", "--max-topic-levels", "8",
        "--queue-qos0-messages", "--max-queued", "50",
    ))
    assert config == Config(store="memory", **FROM_TOML)
    assert broker_command.build_config(parse("--memory")) == Config(store="memory")


def test_command_line_options_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_text(TOML)
    config = broker_command.build_config(parse(
        "--memory", "-c", str(path), "--max-qos", "0", "--no-queue-qos0-messages",
        "--allow-zero-length-clientid", "--refuse-filter-characters", "",
    ))
    assert (config.max_qos, config.queue_qos0_messages) == (0, False)
    assert (config.allow_zero_length_clientid, config.refuse_filter_characters) == (True, "")
    assert config.max_topic_length == 64  # from the file


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--max-qos", "3"], "mqttref broker: error: max_qos: must be 0, 1 or 2, got 3"),
        (["--max-qos", "two"], "mqttref broker: error: max_qos: expected an integer, got 'two'"),
        (["--max-topic-length", "0"],
         "mqttref broker: error: max_topic_length: must be between 1 and 65535, got 0"),
        (["--max-topic-levels", "x"],
         "mqttref broker: error: max_topic_levels: expected an integer, got 'x'"),
    ],
)
def test_a_bad_option_value_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    args = parse("--memory", *argv)
    assert broker_command.run(args) == broker_command.EXIT_BAD_CONFIG
    assert capsys.readouterr().err.splitlines() == [line]


# the pure decisions -------------------------------------------------------------------


def test_granted_qos_is_the_lower_of_requested_and_max_qos() -> None:
    for max_qos in (0, 1, 2):
        config = Config(max_qos=max_qos)
        assert [granted_qos(q, config) for q in (Q0, Q1, Q2)] == [
            min(q, max_qos) for q in (0, 1, 2)]
        assert all(isinstance(granted_qos(q, config), QoS) for q in (Q0, Q1, Q2))


def test_filter_problem_names_each_reason() -> None:
    assert filter_problem("a/+", Config()) is None
    assert "wildcard" in (filter_problem("a/#", Config(refuse_wildcard_subscriptions=True))
                          or "")
    assert "' '" in (filter_problem("a b", Config(refuse_filter_characters=" ")) or "")
    assert "bytes" in (filter_problem("é" * 3, Config(max_topic_length=5)) or "")
    assert "levels" in (filter_problem("a/b/c", Config(max_topic_levels=2)) or "")
    assert filter_problem("a/b", Config(max_topic_levels=2, max_topic_length=3)) is None


def test_discouraged_code_points_are_the_ones_of_1_5_3() -> None:
    for bad in DISCOURAGED:
        assert discouraged_code_point(f"ok{bad}") == f"U+{ord(bad):04X}"
    for fine in ["plain", "tab-free é ü 日本", "\u00a0", "\ufdcf", "\ufdf0", "\ufffd",
                 "\U0001fffd", "\ufeff"]:
        assert discouraged_code_point(fine) is None, repr(fine)


def test_topic_problem_checks_non_characters_only_when_asked() -> None:
    assert topic_problem("a\uffff", Config()) is None
    assert topic_problem("a\uffff", Config(reject_control_characters=True)) is not None
    assert topic_problem("a\x07", Config()) is not None


def test_admission_rejects_an_empty_client_id_when_not_allowed() -> None:
    """[MQTT-3.1.3-6, MQTT-3.1.3-9]"""
    strict = Config(allow_zero_length_clientid=False)
    empty = Connect(V311, "", clean_session=True)
    assert connect_return_code(empty, strict, open_connections=1) is (
        ConnectReturnCode.IDENTIFIER_REJECTED)
    assert connect_return_code(empty, Config(), open_connections=1) is ConnectReturnCode.ACCEPTED
    assert connect_return_code(Connect(V311, "c"), strict, open_connections=1) is (
        ConnectReturnCode.ACCEPTED)
