"""The 5.0 checks of acknowledgements, the server's DISCONNECT, reserved bits, the QoS
protocols' unacknowledged states, enhanced authentication and access control: each passes
against the mqttref broker where its feature is on, and fails on the broker with the one
fault that breaks its statement injected, blamed on that statement only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from mqttref.impl.broker import closing, connection_base, protocol, registry
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.handshake import Handshake
from mqttref.impl.broker.session import Inflight, Session
from mqttref.impl.codec import codec
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Disconnect,
    Packet,
    PacketType,
    Properties,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    UnsubAck,
    Unsubscribe,
)
from mqttref.impl.flow import ConnectionState, OutboundState
from mqttref.oracle.connection import Connection, Credentials
from mqttref.oracle.probe import Timing
from mqttref.oracle.runner import Outcome, Verdict
from tests.conformance.judged5 import assert_judged, judge5, verdicts5

V5 = ProtocolLevel.MQTT_5
SCRAM = Config(port=0, users={"alice": "pencil"})
ALICE = Connection(users=(Credentials("alice", b"pencil"),))


def _unsized(packet: Packet, _limit: int | None) -> bytes:
    """The broker's encoding of a packet, whatever the client's Maximum Packet Size."""
    return encode(packet, V5)


def test_a_broker_explaining_an_unsuback_beyond_the_clients_limit_fails_3_11_2_1_and_2(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def explained(packet: Packet, limit: int | None) -> bytes:
        if isinstance(packet, UnsubAck):
            packet = attrs.evolve(packet, properties=Properties(reason_string="n" * 64))
        return _unsized(packet, limit)

    monkeypatch.setattr(connection_base, "fit", explained)
    verdicts = verdicts5(Config(port=0), "acknowledgements_within_maximum_packet_size_v5")
    assert_judged(verdicts, failed=("MQTT-3.11.2-1", "MQTT-3.11.2-2"),
                  passed=("MQTT-3.9.2-1", "MQTT-3.7.2-2"))


def test_a_broker_whose_disconnect_keeps_its_reason_string_beyond_the_limit_fails_3_14_2_3(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(closing, "fit", _unsized)
    verdicts = verdicts5(Config(port=0), "server_disconnect_v5")
    assert_judged(verdicts, failed=("MQTT-3.14.2-3", "MQTT-3.14.2-4"),
                  passed=("MQTT-3.14.2-1", "MQTT-3.14.4-2"))


def test_a_broker_taking_a_disconnect_with_reserved_flags_as_normal_fails_3_14_1_1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Flags 0010 read as the required ones: the malformed DISCONNECT passes as a normal one.
    monkeypatch.setitem(codec._REQUIRED_FLAGS, PacketType.DISCONNECT, (0x02, "MQTT-3.14.1-1"))
    verdicts = verdicts5(Config(port=0), "disconnect_reserved_bits_v5",
                         timing=Timing(obligation=0.5))
    assert_judged(verdicts, failed=("MQTT-3.14.1-1",))


def test_a_broker_processing_only_the_first_filter_of_an_unsubscribe_fails_3_10_4_6(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def first_only(self: registry.Registry, session: Session, packet: Unsubscribe,
                   now: float) -> None:
        self.unsubscribe(session, packet.topic_filters[0])  # the rest are skipped
        session.send(UnsubAck(packet.packet_id, (0,) * len(packet.topic_filters)))

    monkeypatch.setattr(registry.Registry, "on_unsubscribe", first_only)
    verdicts = verdicts5(Config(port=0), "unsubscribe_many_filters_v5")
    assert_judged(verdicts, failed=("MQTT-3.10.4-6",))


def test_a_broker_resending_the_publish_instead_of_its_pubrel_fails_4_3_3_5_and_4_3_3_6(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = Session.resend

    def publish_again(self: Session, entry: Inflight, now: float) -> None:
        if entry.state is OutboundState.AWAITING_PUBCOMP:
            entry = attrs.evolve(entry, state=OutboundState.AWAITING_PUBREC)
        original(self, entry, now)

    monkeypatch.setattr(Session, "resend", publish_again)
    verdicts = verdicts5(Config(port=0), "unacknowledged_until_acknowledged_v5")
    assert_judged(verdicts, failed=("MQTT-4.3.3-5", "MQTT-4.3.3-6"),
                  passed=("MQTT-4.3.3-3", "MQTT-4.3.2-3", "MQTT-4.5.0-1"))


def test_the_identifier_after_a_refused_pubrec_passes_where_the_broker_checks_payloads(
) -> None:
    verdicts = verdicts5(Config(port=0, validate_payload_format=True),
                         "identifier_after_refused_pubrec_v5")
    assert verdicts["MQTT-4.3.3-9"] is Verdict.PASS
    unchecked = verdicts5(Config(port=0), "identifier_after_refused_pubrec_v5")
    assert unchecked["MQTT-4.3.3-9"] is Verdict.NOT_APPLICABLE


ENHANCED = ("MQTT-3.15.2-1", "MQTT-3.15.2-2", "MQTT-3.15.2-3", "MQTT-4.12.0-2", "MQTT-4.12.0-4",
            "MQTT-4.12.0-5", "MQTT-4.12.1-2", "MQTT-3.15.1-1")


def test_scram_sha_256_with_the_runs_user_passes_every_enhanced_authentication_statement(
) -> None:
    verdicts = verdicts5(SCRAM, "enhanced_authentication_v5", connection=ALICE)
    assert {sid: verdicts[sid] for sid in ENHANCED} == dict.fromkeys(ENHANCED, Verdict.PASS)
    offered_not = verdicts5(Config(port=0), "enhanced_authentication_v5")
    assert {offered_not[sid] for sid in ENHANCED} == {Verdict.NOT_APPLICABLE}


def test_a_broker_staying_open_after_a_failed_re_authentication_fails_4_12_1_2(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def keeps_going(self: Handshake, reason: str, **options: Any) -> None:
        if not reason.startswith("re-authentication failed"):
            original(self, reason, **options)

    original = Handshake.close
    monkeypatch.setattr(Handshake, "close", keeps_going)
    verdicts = verdicts5(SCRAM, "enhanced_authentication_v5", connection=ALICE,
                         timing=Timing(reply=1.0))
    assert_judged(verdicts, failed=("MQTT-4.12.1-2",), passed=("MQTT-4.12.0-4",))


ACL = """\
user alice
topic readwrite mqttref-check/#

user bob
topic readwrite mqttref-check/#
topic readwrite secret/#
"""


def _acl_broker(tmp_path: Path, acl: str) -> Config:
    (tmp_path / "acl").write_text(acl)
    return Config(port=0, allow_anonymous=False, users={"alice": "a-pw", "bob": "b-pw"},
                  acl_file=str(tmp_path / "acl"))


TWO_USERS = Connection(users=(Credentials("alice", b"a-pw"), Credentials("bob", b"b-pw")))


def test_at_5_0_a_denied_filter_and_a_publish_there_are_refused_with_0x87(
        tmp_path: Path) -> None:
    report = judge5(_acl_broker(tmp_path, ACL), "denied_filter_refused_v5",
                    connection=TWO_USERS, denied_filters=("secret/#",))
    (result,) = report.results
    assert result.outcome is Outcome.PASS, result.trace
    trace = "\n".join(result.trace)
    assert "SUBACK packet_id=1 return_codes=(1, 135)" in trace
    assert "PUBACK packet_id=1 reason_code=135" in trace
    assert "PUBREC packet_id=1 reason_code=135" in trace


def test_at_5_0_a_denied_filter_the_acl_grants_is_an_acl_finding(tmp_path: Path) -> None:
    report = judge5(_acl_broker(tmp_path, ACL.replace("user bob", "topic read secret/#\n\n"
                                                                  "user bob")),
                    "denied_filter_refused_v5", connection=TWO_USERS,
                    denied_filters=("secret/#",))
    (result,) = report.results
    assert result.outcome is Outcome.FAIL
    assert "ACL finding" in result.message
    assert report.count(Verdict.FAIL) == 0  # no statement is blamed for an ACL choice


def test_a_broker_giving_every_publish_in_flight_packet_id_1_fails_4_3_2_1_and_4_3_3_1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Session, "_allocate_packet_id", lambda self: 1)
    verdicts = verdicts5(Config(port=0), "packet_identifiers_in_flight_v5")
    assert_judged(verdicts, failed=("MQTT-4.3.2-1", "MQTT-4.3.3-1"), passed=("MQTT-4.3.1-1",))


def test_a_broker_dropping_qos_2_flows_a_second_into_the_connection_fails_4_3_3_7_and_13(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What expiry of the message would do to its flow: after a second the PUBREL of the
    client and the PUBREC of the client find no flow (0x92)."""
    on_ack, on_pubrel = Session.on_ack, Session.on_pubrel

    def late(self: Session, now: float) -> bool:
        accepted: float = cast(Any, self.connection).accepted_at  # the broker's connection
        return now - accepted > 1.0

    def forgetting_ack(self: Session, kind: PacketType, packet_id: int, now: float,
                       reason_code: int = 0) -> None:
        if kind is PacketType.PUBREC and late(self, now):
            self.inflight.pop(packet_id, None)
        on_ack(self, kind, packet_id, now, reason_code)

    def forgetting_pubrel(self: Session, packet_id: int, now: float) -> None:
        if late(self, now):
            self.awaiting_rel.discard(packet_id)
        on_pubrel(self, packet_id, now)

    monkeypatch.setattr(Session, "on_ack", forgetting_ack)
    monkeypatch.setattr(Session, "on_pubrel", forgetting_pubrel)
    verdicts = verdicts5(Config(port=0), "flows_outlive_expiry_v5")
    assert_judged(verdicts, failed=("MQTT-4.3.3-7", "MQTT-4.3.3-13"), passed=("MQTT-4.1.0-1",))


def test_a_broker_ignoring_the_flags_of_pubrel_and_subscribe_fails_3_6_1_1_and_3_8_1_1_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without their entries the flags 0000 are the required ones: the packets are answered.
    monkeypatch.delitem(codec._REQUIRED_FLAGS, PacketType.PUBREL)
    monkeypatch.delitem(codec._REQUIRED_FLAGS, PacketType.SUBSCRIBE)
    verdicts = verdicts5(Config(port=0), "reserved_bits_v5", timing=Timing(reply=1.0))
    assert_judged(verdicts, failed=("MQTT-3.6.1-1", "MQTT-3.8.1-1"),
                  passed=("MQTT-3.10.1-1", "MQTT-3.8.3-5"))


def test_a_broker_sending_disconnect_before_any_connack_fails_3_14_0_1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = closing.Closing.close

    def disconnect_first(self: closing.Closing, reason: str, **options: Any) -> None:
        if self.state not in (ConnectionState.CONNECTED, ConnectionState.CLOSED):
            self.send_frame(encode(Disconnect(0x82), V5))
        original(self, reason, **options)

    monkeypatch.setattr(closing.Closing, "close", disconnect_first)
    verdicts = verdicts5(Config(port=0), "no_disconnect_before_connack_v5")
    assert_judged(verdicts, failed=("MQTT-3.14.0-1",))


def test_a_broker_taking_a_qos_1_publish_with_dup_1_for_a_copy_fails_4_3_2_5_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = protocol.Connection.on_publish

    def deduplicating(self: protocol.Connection, packet: Publish, now: float) -> None:
        if packet.qos == QoS.AT_LEAST_ONCE and packet.dup and packet.packet_id is not None:
            self.send(PubAck(packet.packet_id))  # acknowledged, never routed
            return
        original(self, packet, now)

    monkeypatch.setattr(protocol.Connection, "on_publish", deduplicating)
    verdicts = verdicts5(Config(port=0), "qos1_receiver_v5", timing=Timing(obligation=0.5))
    assert_judged(verdicts, failed=("MQTT-4.3.2-5",), passed=("MQTT-4.3.2-4",))
