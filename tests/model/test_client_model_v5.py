"""``ClientModel`` on a level-5 connection: the server's CONNACK terms (``model.client5``)."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscribe,
    Subscription,
)
from mqttref.model import client as client_module
from mqttref.model import client5
from mqttref.model.client import ClientModel
from mqttref.model.errors import Violation
from mqttref.oracle.statements import statements

V5 = ProtocolLevel.MQTT_5


def connect(
    client: ClientModel | None = None,
    *,
    clean: bool = True,
    present: bool = False,
    client_props: Properties = NO_PROPERTIES,
    **server: int,
) -> ClientModel:
    """A level-5 client connected to a server whose CONNACK carries ``server``'s properties."""
    client = client or ClientModel()
    client.sent(Connect(V5, "c", clean_session=clean, properties=client_props))
    client.received(ConnAck(present, 0, Properties(**server)))  # type: ignore[arg-type]
    return client


def pub(
    qos: int,
    packet_id: int | None = None,
    *,
    topic: str = "t",
    alias: int | None = None,
    dup: bool = False,
    retain: bool = False,
) -> Publish:
    props = Properties(topic_alias=alias)
    return Publish(topic, b"m", QoS(qos), retain, dup, packet_id, props)


def refused(client: ClientModel, packet: Publish) -> tuple[str, ...]:
    with pytest.raises(Violation) as caught:
        client.sent(packet)
    return caught.value.refs


# -- flow control (4.9) --------------------------------------------------------------


def test_receive_maximum_bounds_unacknowledged_qos_1_and_2_publishes() -> None:
    """[MQTT-3.3.4-7] [MQTT-4.9.0-2] [MQTT-4.9.0-3]"""
    client = connect(receive_maximum=2)
    client.sent(pub(1, 1))
    client.sent(pub(2, 2))
    assert "MQTT-3.3.4-7" in refused(client, pub(1, 3))
    client.sent(pub(0))  # QoS 0 is not counted
    client.sent(Subscribe(4, (Subscription("s", QoS(1)),)))  # nor any other packet
    client.received(PubRec(2))  # below 0x80: the message is still unacknowledged
    client.sent(PubRel(2))
    assert "MQTT-4.9.0-2" in refused(client, pub(1, 3))
    client.received(PubAck(1))  # quota back
    client.sent(pub(1, 3))
    assert "MQTT-3.3.4-7" in refused(client, pub(2, 5))
    client.received(PubComp(2))
    client.sent(pub(2, 5))


def test_a_pubrec_of_0x80_or_more_gives_quota_back_and_ends_the_exchange() -> None:
    """[MQTT-3.3.4-7] [MQTT-4.4.0-2]: no PUBREL is owed, the id is free again."""
    client = connect(receive_maximum=1)
    client.sent(pub(2, 1))
    client.received(PubRec(1, 0x87))
    assert client.obligations() == []
    client.sent(pub(2, 1))  # a new message under the same id, within the quota again


def test_an_absent_receive_maximum_is_65535() -> None:
    client = connect()
    for packet_id in range(1, 101):
        client.sent(pub(1, packet_id))
    assert client.v5 is not None
    assert client.v5.quota is not None
    assert client.v5.quota.maximum == 65_535


def test_the_quota_starts_again_on_each_connection_and_re_sends_take_it() -> None:
    """4.9: re-sent PUBLISHes after resuming a session count on the new connection."""
    client = connect(clean=False, receive_maximum=2)
    client.sent(pub(1, 1))
    client.sent(pub(1, 2))
    client.connection_lost()
    connect(client, clean=False, present=True, receive_maximum=1)
    client.sent(pub(1, 1, dup=True))
    assert "MQTT-3.3.4-7" in refused(client, pub(1, 2, dup=True))


def test_session_present_0_discards_the_clients_session() -> None:
    """[MQTT-3.2.2-5]: nothing is owed to a server that kept no session."""
    client = connect(clean=False)
    client.sent(pub(1, 1))
    client.connection_lost()
    connect(client, clean=False, present=False)
    assert client.obligations() == []


def test_publishes_before_connack_are_judged_by_its_terms() -> None:
    client = ClientModel()
    client.sent(Connect(V5, "c"))
    client.sent(pub(1, 1))
    client.sent(pub(1, 2))
    with pytest.raises(Violation) as caught:
        client.received(ConnAck(False, 0, Properties(receive_maximum=1)))
    assert "MQTT-3.3.4-7" in caught.value.refs


# -- topic aliases (3.3.2.3.4) ---------------------------------------------------------


def test_no_alias_when_the_server_gave_no_topic_alias_maximum() -> None:
    """[MQTT-3.2.2-18]"""
    assert refused(connect(), pub(0, alias=1)) == ("MQTT-3.2.2-18",)


def test_alias_0_and_above_the_maximum_are_refused() -> None:
    """[MQTT-3.3.2-8] [MQTT-3.2.2-17] [MQTT-3.3.2-9]"""
    client = connect(topic_alias_maximum=2)
    assert refused(client, pub(0, alias=0)) == ("MQTT-3.3.2-8",)
    assert refused(client, pub(0, alias=3)) == ("MQTT-3.2.2-17", "MQTT-3.3.2-9")
    client.sent(pub(0, alias=2))


def test_an_alias_alone_must_be_mapped_on_this_connection() -> None:
    """3.3.4 (a Protocol Error) [MQTT-4.7.3-1]; mappings do not outlive the connection."""
    client = connect(clean=False, topic_alias_maximum=2)
    assert refused(client, pub(0, topic="", alias=1)) == ("MQTT-4.7.3-1",)
    client.sent(pub(1, 1, topic="a/b", alias=1))
    client.sent(pub(1, 2, topic="", alias=1))
    assert refused(client, pub(0, topic="")) == ("MQTT-4.7.3-1",)
    client.connection_lost()
    connect(client, clean=False, present=True, topic_alias_maximum=2)
    assert refused(client, pub(1, 1, topic="", alias=1, dup=True)) == ("MQTT-4.7.3-1",)
    client.sent(pub(1, 1, topic="a/b", alias=1, dup=True))


def test_the_servers_aliases_are_bounded_by_the_clients_connect() -> None:
    """[MQTT-3.1.2-26] [MQTT-3.1.2-27]: the server's fault, resolved for the other rules."""
    client = connect(client_props=Properties(topic_alias_maximum=1))
    client.received(pub(0, topic="x", alias=1))
    client.received(pub(0, topic="", alias=1))
    with pytest.raises(Violation) as caught:
        client.received(pub(0, topic="y", alias=2))
    assert caught.value.client == "server"
    assert caught.value.refs == ("MQTT-3.3.2-11", "MQTT-3.1.2-26")


def test_the_server_must_keep_within_the_clients_receive_maximum() -> None:
    """[MQTT-3.3.4-9]"""
    client = connect(client_props=Properties(receive_maximum=1))
    client.received(pub(1, 1))
    client.sent(PubAck(1))
    client.received(pub(1, 2))
    with pytest.raises(Violation) as caught:
        client.received(pub(1, 3))
    assert caught.value.client == "server"
    assert "MQTT-3.3.4-9" in caught.value.refs


# -- the server's other limits ---------------------------------------------------------


def test_maximum_qos_retain_available_and_no_subscription_identifier() -> None:
    """[MQTT-3.2.2-11] [MQTT-3.2.2-14] [MQTT-3.3.4-6]"""
    client = connect(maximum_qos=1, retain_available=0)
    assert refused(client, pub(2, 1)) == ("MQTT-3.2.2-11",)
    assert refused(client, pub(1, 1, retain=True)) == ("MQTT-3.2.2-14",)
    identified = Publish("t", b"m", QoS(0), properties=Properties(subscription_identifiers=(1,)))
    assert refused(client, identified) == ("MQTT-3.3.4-6",)
    client.sent(pub(1, 1))


def test_no_packet_above_the_servers_maximum_packet_size() -> None:
    """[MQTT-3.2.2-15], judged when the harness gives the encoded size."""
    client = connect(maximum_packet_size=100)
    client.sent(pub(0), size=100)
    client.sent(pub(0))  # no size known: not judged
    with pytest.raises(Violation) as caught:
        client.sent(pub(0), size=101)
    assert caught.value.refs == ("MQTT-3.2.2-15",)


# -- the rules both levels share, at 5.0 -----------------------------------------------


def test_shared_rules_cite_the_50_statements() -> None:
    """5.0 renumbered them: [MQTT-2.2.1-3] [MQTT-4.3.2-4] [MQTT-3.14.4-1]."""
    client = connect()
    client.sent(Subscribe(1, (Subscription("a", QoS(0)),)))
    with pytest.raises(Violation) as caught:
        client.sent(Subscribe(1, (Subscription("b", QoS(0)),)))
    assert caught.value.refs == ("MQTT-2.2.1-3",)
    client.received(pub(1, 7))
    assert [(o.what, o.refs) for o in client.obligations()] == [("PUBACK 7", ("MQTT-4.3.2-4",))]
    client.sent(PubAck(7))
    client.sent(Disconnect())
    assert refused(client, pub(0)) == ("MQTT-3.14.4-1",)


def test_a_pubrec_of_0x80_or_more_from_the_client_ends_the_exchange() -> None:
    """[MQTT-4.3.3-9]: no PUBREL is to come, the next PUBLISH under the id is new."""
    client = connect()
    client.received(pub(2, 3))
    client.sent(PubRec(3, 0x80))
    assert client.obligations() == []
    client.received(pub(2, 3))
    assert [o.what for o in client.obligations()] == ["PUBREC 3"]


def test_every_level_5_citation_is_a_50_statement() -> None:
    """5.0 numbers its statements apart from 3.1.1: each rule cites each level's own."""
    five, three = statements("5.0"), statements("3.1.1")
    assert set(re.findall(r"MQTT-[\d.]+-\d+", inspect.getsource(client5))) <= set(five)
    cited_5 = [
        *client_module._ACK_REFS_5,
        *(r for refs in client5.DUE_REFS_5.values() for r in refs),
    ]
    cited_3 = list(client_module._ACK_REFS)
    for call in ast.walk(ast.parse(inspect.getsource(client_module))):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "_cite":
            v311, v5 = call.args
            if isinstance(v311, ast.List) and isinstance(v5, ast.List):
                cited_3 += [ast.literal_eval(e) for e in v311.elts]
                cited_5 += [ast.literal_eval(e) for e in v5.elts]
    assert len(cited_5) > 10
    assert set(cited_5) <= set(five), set(cited_5) - set(five)
    assert set(cited_3) <= set(three), set(cited_3) - set(three)
