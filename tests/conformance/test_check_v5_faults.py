"""The 5.0 checks of packet encoding, ClientIDs, identifiers and the send quota can FAIL.

Each test breaks one statement in an mqttref broker (a fault put in with monkeypatch) and
requires the check that cites it to FAIL it, blamed on that statement; where the check
judges more, the statements the fault leaves alone still PASS.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from mqttref.impl.broker import registry, session
from mqttref.impl.broker.closing import Closing
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.connection_base import ConnectionBase
from mqttref.impl.broker.handshake import Handshake
from mqttref.impl.broker.inbound_publish import InboundPublish
from mqttref.impl.codec import frames
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Connect,
    Disconnect,
    Properties,
    Publish,
    SubAck,
)
from mqttref.oracle.probe import Timing
from mqttref.oracle.runner import Verdict
from mqttref.oracle.target import evaluate
from tests.helpers.broker_thread import BrokerThread


def _verdicts(*names: str, config: Config | None = None) -> dict[str, Verdict]:
    """The verdicts of the checks ``names`` alone against an mqttref broker."""
    with BrokerThread(config or Config(port=0)) as running:
        report = evaluate(running.host, running.port, protocol="5", only=names, seed=5,
                          budget=30.0, explore=False, timing=Timing(reply=1.0))
    assert not report.oracle_errors
    return {v.statement.id: v.verdict for v in report.verdicts}


def test_the_mqttref_broker_passes_the_new_5_0_checks() -> None:
    verdicts = _verdicts("server_packet_encoding_v5", "acknowledgement_identifiers_v5",
                         "client_identifier_names_the_session_v5", "initial_send_quota_v5",
                         "connack_refusals_v5", "utf8_strings_v5", "topic_name_rules_v5")
    assert Verdict.FAIL not in verdicts.values()
    for sid in ("MQTT-1.5.5-1", "MQTT-2.1.3-1", "MQTT-2.2.2-1", "MQTT-3.3.1-2", "MQTT-2.2.1-6",
                "MQTT-3.1.3-5", "MQTT-4.9.0-1", "MQTT-3.2.2-6", "MQTT-3.3.2-14"):
        assert verdicts[sid] is Verdict.PASS, sid


def test_a_broker_writing_pubrel_with_reserved_flags_0000_fails_2_1_3_1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "PUBREL", 0x60)
    verdicts = _verdicts("server_packet_encoding_v5")
    assert verdicts["MQTT-2.1.3-1"] is Verdict.FAIL


def test_a_broker_copying_dup_onto_a_qos_0_delivery_fails_3_3_1_2(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = frames.publish_frame

    def dup_kept(topic: str, payload: bytes, qos: int, retain: bool, **options: Any) -> bytes:
        if qos == 0:
            options["dup"] = True
        return original(topic, payload, qos, retain, **options)

    monkeypatch.setattr(session, "publish_frame", dup_kept)
    verdicts = _verdicts("server_packet_encoding_v5")
    assert verdicts["MQTT-3.3.1-2"] is Verdict.FAIL


def test_a_broker_refusing_a_clientid_of_23_allowed_characters_fails_3_1_3_5(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = Handshake._accept_v5

    def refuse_long(self: Handshake, packet: Connect, now: float, *,
                    auth: Properties | None = None) -> None:
        if len(packet.client_id) == 23:
            self._refuse_v5(packet, 0x85)
            return
        original(self, packet, now, auth=auth)

    monkeypatch.setattr(Handshake, "_accept_v5", refuse_long)
    verdicts = _verdicts("client_identifier_names_the_session_v5")
    assert verdicts["MQTT-3.1.3-5"] is Verdict.FAIL


def test_a_broker_answering_subscribe_with_another_packet_identifier_fails_2_2_1_6(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def off_by_one(packet_id: int, codes: tuple[int, ...] = (),
                   properties: Properties = NO_PROPERTIES) -> SubAck:
        return SubAck(packet_id % 65535 + 1, codes, properties)

    monkeypatch.setattr(registry, "SubAck", off_by_one)
    verdicts = _verdicts("acknowledgement_identifiers_v5")
    assert verdicts["MQTT-2.2.1-6"] is Verdict.FAIL


def test_a_broker_ignoring_the_clients_receive_maximum_fails_4_9_0_1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConnectionBase, "receive_maximum", property(lambda _self: 65_535))
    verdicts = _verdicts("initial_send_quota_v5")
    assert verdicts["MQTT-4.9.0-1"] is Verdict.FAIL


def test_a_broker_keeping_topic_aliases_across_connections_fails_3_3_2_7(
        monkeypatch: pytest.MonkeyPatch) -> None:
    carried: dict[tuple[str, int], str] = {}
    original = InboundPublish._resolve_alias

    def carrying(self: InboundPublish, packet: Publish, alias: int) -> Publish:
        key = (self.client_id or "", alias)
        if packet.topic:
            carried[key] = packet.topic
        elif key in carried:  # the fault: a mapping of an earlier connection still holds
            return attrs.evolve(packet, topic=carried[key])
        return original(self, packet, alias)

    monkeypatch.setattr(InboundPublish, "_resolve_alias", carrying)
    verdicts = _verdicts("topic_alias_per_connection_v5")
    assert verdicts["MQTT-3.3.2-7"] is Verdict.FAIL


def test_a_broker_publishing_the_will_after_disconnect_0x00_fails_3_1_2_10(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def will_kept(self: Closing, packet: Disconnect, now: float) -> None:
        del packet
        self.close("the client disconnected", publish_will=True, now=now, by_client=True)

    monkeypatch.setattr(Closing, "on_disconnect", will_kept)
    verdicts = _verdicts("will_in_session_state_v5")
    assert verdicts["MQTT-3.1.2-10"] is Verdict.FAIL
    assert verdicts["MQTT-3.1.2-7"] is Verdict.PASS


def test_a_broker_refusing_with_session_present_1_fails_3_2_2_6(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def present_anyway(self: Handshake, packet: Connect, code: int,
                       properties: Properties = NO_PROPERTIES) -> None:
        del packet, properties
        self.send_frame(bytes((0x20, 0x03, 0x01, code, 0x00)))  # Session Present 1
        self.close(f"CONNECT refused with 0x{code:02X}", publish_will=False)

    monkeypatch.setattr(Handshake, "_refuse_v5", present_anyway)
    verdicts = _verdicts("connack_refusals_v5")
    assert verdicts["MQTT-3.2.2-6"] is Verdict.FAIL
