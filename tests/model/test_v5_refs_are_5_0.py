"""What the broker model cites for a level-5 connection is 5.0's (issue 16).

5.0 numbers its statements independently of 3.1.1: a 3.1.1 id on a level-5
connection names another sentence or none (3.1.1's [MQTT-4.8.0-1] is none of 5.0's,
its [MQTT-3.1.2-24] is 5.0's Maximum Packet Size). The connection chart's rows are
read in 5.0's numbers there (``v5.numbering``); explicit examples below, and a
short run of the mixed-levels machine whose every obligation and rejection on a
level-5 connection must cite ids of 5.0's list.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
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
)
from mqttref.model import BrokerModel, Send, SendMalformed, TimePasses
from mqttref.model.connection import CONNECTION
from mqttref.model.errors import Violation
from mqttref.model.events import Observation
from mqttref.model.qos import QOS1_RECEIVER, QOS1_SENDER, QOS2_RECEIVER, QOS2_SENDER
from mqttref.model.v5.numbering import FLOW_ROW_REFS_5, ROW_REFS_5
from mqttref.oracle.statements import statements
from tests.model.helpers import connect
from tests.model.test_levels_mix import connect5, connected5, refs_of
from tests.model.test_v5_broker_machine import AnyPacketMachine

FIVE = statements("5.0")


def owed_refs(model: BrokerModel, client: str) -> list[tuple[str, ...]]:
    return [o.refs for o in model.obligations(client)]


def test_every_connection_row_has_a_5_0_reading_of_5_0_ids() -> None:
    rows = {(row.source, row.event, row.guard) for row in CONNECTION.transitions}
    assert set(ROW_REFS_5) == rows
    assert all(ref in FIVE for refs in ROW_REFS_5.values() for ref in refs)


def test_a_level_5_protocol_error_owes_the_close_of_4_13_1_1() -> None:
    """A Malformed Packet or Protocol Error: the Server MUST close [MQTT-4.13.1-1]
    (3.1.1's [MQTT-4.8.0-1] is no 5.0 statement). A 3.1.1 client keeps 4.8.0-1."""
    model = BrokerModel()
    connected5(model, "a")
    model.apply(SendMalformed("a"))
    assert owed_refs(model, "a") == [("MQTT-4.13.1-1",)]
    connect(model, "b")
    model.apply(SendMalformed("b"))
    assert owed_refs(model, "b") == [("MQTT-4.8.0-1",)]


def test_a_level_5_second_connect_owes_the_close_of_3_1_0_2() -> None:
    """"The Server MUST process a second CONNECT packet ... as a Protocol Error and
    close the Network Connection" [MQTT-3.1.0-2]: the same sentence at both levels."""
    model = BrokerModel()
    connected5(model, "a")
    model.apply(connect5("a"))
    assert owed_refs(model, "a") == [("MQTT-3.1.0-2",)]


def test_a_level_5_takeover_owes_the_close_of_3_1_4_3() -> None:
    """A second connection for the ClientID: the Server MUST close the existing one
    [MQTT-3.1.4-3] (3.1.1's [MQTT-3.1.4-2]; 5.0's 3.1.4-2 is the further checks)."""
    model = BrokerModel()
    connected5(model, "a", client_id="x")
    model.apply(connect5("b", client_id="x"))
    model.observe("b", ConnAck(False, 0x00))
    assert ("MQTT-3.1.4-3",) in owed_refs(model, "a")
    assert all(ref in FIVE for refs in owed_refs(model, "a") for ref in refs)


def test_a_level_5_keep_alive_expiry_owes_the_close_of_3_1_2_22() -> None:
    """1.5 times the Keep Alive without a packet: the Server MUST close
    [MQTT-3.1.2-22] (3.1.1's [MQTT-3.1.2-24], 5.0's Maximum Packet Size)."""
    model = BrokerModel()
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_5, "a", True, 2)))
    model.observe("a", ConnAck(False, 0x00))
    model.apply(TimePasses(4.0))
    assert owed_refs(model, "a") == [("MQTT-3.1.2-22",)]


def test_a_level_5_connack_owed_cites_3_1_4_5() -> None:
    """A CONNECT is acknowledged by CONNACK 0x00 [MQTT-3.1.4-5], the Server's first
    packet [MQTT-3.2.0-1] (3.1.1's 3.1.4-4 is 5.0's Clean Start processing)."""
    model = BrokerModel()
    model.apply(connect5("a"))
    assert owed_refs(model, "a") == [("MQTT-3.1.4-5", "MQTT-3.2.0-1")]


def test_a_refused_level_5_connect_owes_the_close_of_3_2_2_7() -> None:
    """A CONNACK with a Reason Code of 0x80 or above is followed by the close
    [MQTT-3.2.2-7] [MQTT-4.13.2-1]."""
    model = BrokerModel()
    model.apply(connect5("a"))
    model.observe("a", ConnAck(False, 0x80))
    refs = {ref for refs in owed_refs(model, "a") for ref in refs}
    assert {"MQTT-3.2.2-7", "MQTT-4.13.2-1"} <= refs <= set(FIVE)


def test_a_level_5_connection_covers_5_0_ids_of_the_chart() -> None:
    """The coverage a level-5 connection's rows add is in 5.0's numbers: a PUBACK's
    packet restarts the Keep Alive [MQTT-3.1.2-22], not 3.1.1's 3.1.2-24."""
    model = BrokerModel()
    connected5(model, "a")
    model.refs_hit.clear()
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    model.observe("a", SubAck(1, (0x00,)))
    assert "MQTT-3.1.2-22" in model.refs_hit
    assert "MQTT-3.1.2-24" not in model.refs_hit
    assert "MQTT-4.8.0-1" not in model.refs_hit


class LevelFiveCitations(AnyPacketMachine):
    """The mixed-levels machine, recording what is cited on level-5 connections."""

    cited: dict[str, str] = {}

    def record(self, slot: str, refs: tuple[str, ...], what: str) -> None:
        conn = self.model.connections.get(slot)
        if conn is not None and conn.level == 5:
            for ref in refs:
                self.cited.setdefault(ref, what)

    def settle(self) -> None:
        for obligation in self.model.obligations():
            self.record(obligation.client, obligation.refs, f"owes {obligation.what}")
        super().settle()

    def judge(self, slot: str, observation: Observation) -> None:
        try:
            self.model.observe(slot, observation)
        except Violation as error:
            self.record(slot, error.refs, error.detail)
        self.settle()


def test_every_id_cited_on_a_level_5_connection_is_5_0s() -> None:
    """A short derandomised run of the mixed-levels machine (any packet from the
    server, malformed and early packets, takeovers, keep alive): each obligation and
    rejection on a level-5 connection cites 5.0 ids only."""
    LevelFiveCitations.cited = {}
    run_state_machine_as_test(
        LevelFiveCitations,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    foreign = {ref: why for ref, why in LevelFiveCitations.cited.items() if ref not in FIVE}
    assert LevelFiveCitations.cited
    assert foreign == {}


def test_a_level_5_ack_with_no_flow_names_2_2_1_5() -> None:
    """A PUBACK for no PUBLISH: it must carry the identifier of the PUBLISH it answers
    [MQTT-2.2.1-5], sent by the QoS 1 receiver [MQTT-4.3.2-4] (3.1.1's 2.3.1-6 and
    4.3.2-2; 5.0's 4.3.2-2 is the sender's DUP 0)."""
    model = BrokerModel()
    connected5(model, "a")
    assert refs_of(model, "a", PubAck(7)) == ("MQTT-2.2.1-5", "MQTT-4.3.2-4")
    connect(model, "b")
    assert refs_of(model, "b", PubAck(7)) == ("MQTT-2.3.1-6", "MQTT-4.3.2-2")


def test_a_level_5_message_not_due_names_5_0_delivery_rules() -> None:
    """A PUBLISH to a matching subscription that nothing due explains: not owed
    [MQTT-4.5.0-1], or at another QoS [MQTT-3.3.4-2] [MQTT-3.8.4-8], or another RETAIN
    [MQTT-3.3.1-12] (3.1.1's 3.3.1-9 is 5.0's Retain Handling 0)."""
    model = BrokerModel()
    connected5(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    model.observe("a", SubAck(1, (0x00,)))
    assert refs_of(model, "a", Publish("t", b"never published")) == (
        "MQTT-4.5.0-1", "MQTT-3.3.4-2", "MQTT-3.8.4-8", "MQTT-3.3.1-12")


def test_a_level_5_retained_message_owed_names_retain_handling() -> None:
    """A retained message owed to a new subscription: Retain Handling 0 or 1
    [MQTT-3.3.1-9] [MQTT-3.3.1-10] (3.1.1's 3.3.1-6 is 5.0's zero-byte removal)."""
    model = BrokerModel()
    connected5(model, "p")
    model.apply(Send("p", Publish("t", b"kept", QoS.AT_LEAST_ONCE, retain=True, packet_id=1)))
    model.observe("p", PubAck(1))
    connected5(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_LEAST_ONCE),))))
    model.observe("a", SubAck(1, (0x01,)))
    assert ("MQTT-3.3.1-9", "MQTT-3.3.1-10") in owed_refs(model, "a")


def test_level_5_flow_packets_and_subacks_owed_name_5_0_duties() -> None:
    """A PUBACK owed for a client's QoS 1 PUBLISH: the receiver's [MQTT-4.3.2-4]
    (3.1.1's 4.3.2-2 is 5.0's sender's DUP 0); a PUBREC for QoS 2 [MQTT-4.3.3-8]; a
    SUBACK with a Reason Code per filter [MQTT-3.8.4-6] (3.1.1's 3.8.4-5)."""
    model = BrokerModel()
    connected5(model, "a")
    model.apply(Send("a", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    assert owed_refs(model, "a") == [("MQTT-4.3.2-4",)]
    model.observe("a", PubAck(1))
    model.apply(Send("a", Publish("t", b"n", QoS.EXACTLY_ONCE, packet_id=2)))
    assert owed_refs(model, "a") == [("MQTT-4.3.3-8",)]
    model.observe("a", PubRec(2))
    model.apply(Send("a", Subscribe(3, (Subscription("t", QoS.AT_MOST_ONCE),))))
    assert owed_refs(model, "a") == [("MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-6")]
    connect(model, "b")
    model.apply(Send("b", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    assert owed_refs(model, "b") == [("MQTT-4.3.2-2",)]


def test_a_level_5_session_covers_no_3_1_1_clean_session_ids() -> None:
    """The session chart's rows on a level-5 session: a message for overlapping
    subscriptions covers [MQTT-3.3.4-2] (3.1.1's 3.3.5-1), and the Clean Session rows
    claim none of 5.0's 3.2.2-1 (CONNACK's reserved bits) or 3.1.2-6, which 3.1.1's
    numbers would (5.0's Clean Start is ``v5.session``'s)."""
    model = BrokerModel()
    model.apply(connect5("a"))
    model.observe("a", ConnAck(False, 0x00))
    assert not {"MQTT-3.2.2-1", "MQTT-3.1.2-6"} & model.refs_hit
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    model.observe("a", SubAck(1, (0x00,)))
    model.apply(Send("a", Publish("t", b"m")))
    assert "MQTT-3.3.4-2" in model.refs_hit
    assert "MQTT-3.3.5-1" not in model.refs_hit
    model.apply(Send("b", Connect(ProtocolLevel.MQTT_3_1_1, "b", True, 0)))
    model.observe("b", ConnAck(False, 0x00))
    assert "MQTT-3.2.2-1" in model.refs_hit  # 3.1.1: Session Present 0 for CleanSession 1


def test_a_level_5_forwarded_message_covers_5_0_retain_statements() -> None:
    """A level-5 PUBLISH with RETAIN 0, forwarded: the topic chart covers 5.0's "not
    stored" [MQTT-3.3.1-8] (3.1.1's 3.3.1-12), and neither 5.0's 3.3.1-9 (Retain
    Handling 0) nor 3.3.1-12 (Retain As Published 0), which 3.1.1's numbers would
    claim; the first send covers [MQTT-4.5.0-1]."""
    model = BrokerModel()
    connected5(model, "a")
    model.apply(Send("a", Subscribe(1, (Subscription("t", QoS.AT_MOST_ONCE),))))
    model.observe("a", SubAck(1, (0x00,)))
    model.refs_hit.clear()
    model.apply(Send("a", Publish("t", b"m")))
    model.observe("a", Publish("t", b"m"))
    assert {"MQTT-3.3.1-8", "MQTT-4.5.0-1"} <= model.refs_hit
    assert not {"MQTT-3.3.1-9", "MQTT-3.3.1-12"} & model.refs_hit


def test_every_qos_flow_row_has_a_5_0_reading_of_5_0_ids() -> None:
    charts = (QOS1_SENDER, QOS2_SENDER, QOS1_RECEIVER, QOS2_RECEIVER)
    rows = {(c.name, r.source, r.event, r.guard) for c in charts for r in c.transitions}
    assert set(FLOW_ROW_REFS_5) == rows
    assert all(ref in FIVE for refs in FLOW_ROW_REFS_5.values() for ref in refs)


def test_a_level_5_qos_2_exchange_covers_the_5_0_receiver_duties() -> None:
    """A client's QoS 2 PUBLISH, PUBREC, PUBREL, PUBCOMP: the server as receiver covers
    [MQTT-4.3.3-8] and [MQTT-4.3.3-11], not 3.1.1's 4.3.3-2 (5.0's sender's DUP 0)."""
    model = BrokerModel()
    connected5(model, "a")
    model.refs_hit.clear()
    model.apply(Send("a", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1)))
    model.observe("a", PubRec(1))
    model.apply(Send("a", PubRel(1)))
    model.observe("a", PubComp(1))
    assert {"MQTT-4.3.3-8", "MQTT-4.3.3-11"} <= model.refs_hit
    assert "MQTT-4.3.3-2" not in model.refs_hit


@pytest.mark.parametrize(("level", "refs"), [(5, ("MQTT-4.3.3-6",)), (4, ("MQTT-4.3.3-1",))])
def test_a_publish_re_sent_after_its_pubrel_names_the_level_s_statement(
    level: int, refs: tuple[str, ...]
) -> None:
    """A QoS 2 PUBLISH re-sent after the server's PUBREL: "the sender MUST NOT re-send
    the PUBLISH once it has sent the corresponding PUBREL" is 5.0's [MQTT-4.3.3-6]
    (3.1.1 says it within its 4.3.3-1; 5.0's 4.3.3-1 is an unused identifier)."""
    model = BrokerModel()
    if level == 5:
        connected5(model, "s")
    else:
        connect(model, "s")
    connected5(model, "p")
    model.apply(Send("s", Subscribe(1, (Subscription("t", QoS.EXACTLY_ONCE),))))
    model.observe("s", SubAck(1, (0x02,)))
    model.apply(Send("p", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1)))
    model.observe("p", PubRec(1))
    model.apply(Send("p", PubRel(1)))
    model.observe("p", PubComp(1))
    model.observe("s", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1))
    model.apply(Send("s", PubRec(1)))
    model.observe("s", PubRel(1))
    again = Publish("t", b"m", QoS.EXACTLY_ONCE, dup=True, packet_id=1)
    assert refs_of(model, "s", again) == refs
