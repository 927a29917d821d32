"""The benchmark's clients speak MQTT 5.0 byte for byte as the codec does, and issue 15's target.

The generator never encodes in its hot loops, so its 5.0 frames are patched templates and its
reads skip property blocks by hand: each is checked against ``encode``/``Decoder`` here. The level
verdicts are built from hand-made outcomes, at and around the 15% threshold.
"""

from __future__ import annotations

import frames
import pytest
from report import level_verdicts, markdown, verdict_table
from scenarios import Outcome

from mqttref.impl.codec.codec import Decoder, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
)

V5 = ProtocolLevel.MQTT_5


@pytest.mark.parametrize("qos", [1, 2])
def test_level_5_publish_table_matches_the_codec_with_an_empty_property_block(qos: int) -> None:
    table = frames.publish_table("bench/q", b"x" * 64, qos, level=5)
    for pid in (1, 0x0102, 0x1234, frames.MAX_PACKET_ID):
        assert table[pid] == encode(Publish("bench/q", b"x" * 64, qos=QoS(qos), packet_id=pid), V5)


@pytest.mark.parametrize("kind", [PubAck, PubRec, PubRel, PubComp])
def test_level_5_ack_tables_match_the_codec(kind: type[PubAck | PubRec | PubRel | PubComp]) -> None:
    assert frames.ack_table(kind, level=5)[513] == encode(kind(513), V5)


def test_level_5_connect_is_read_back_at_level_5_and_persistent_sessions_never_expire() -> None:
    decoder = Decoder()
    [clean] = decoder.feed(frames.connect_frame("c", level=5))
    assert isinstance(clean, Connect)
    assert clean.protocol_level == V5
    assert clean.clean_session
    assert clean.properties == Properties()
    [kept] = Decoder().feed(frames.connect_frame("p", clean_session=False, level=5))
    assert isinstance(kept, Connect)
    assert kept.properties.session_expiry_interval == frames.NEVER_EXPIRES


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_payload_offset_skips_the_property_block_at_level_5(qos: int) -> None:
    props = Properties(content_type="text/plain", user_properties=(("k", "v" * 200),))
    packet = Publish(
        "bench/q", b"stamp123tail", qos=QoS(qos), packet_id=9 if qos else None, properties=props
    )
    data = encode(packet, V5)
    [(first, body, end)] = frames.split(data, 0)[0]
    assert data[frames.publish_payload_offset(data, first, body, level=5) : end] == b"stamp123tail"


@pytest.mark.parametrize(
    ("connack", "level", "accepted"),
    [
        (ConnAck(False, 0), ProtocolLevel.MQTT_3_1_1, True),
        (ConnAck(False, 5), ProtocolLevel.MQTT_3_1_1, False),
        (ConnAck(False, 0, Properties(receive_maximum=100, topic_alias_maximum=10)), V5, True),
        (ConnAck(False, 0x87), V5, False),
        (ConnAck(True, 0), V5, False),
    ],
)
def test_connack_accepts_only_a_fresh_session_with_code_zero(
    connack: ConnAck, level: ProtocolLevel, accepted: bool
) -> None:
    assert frames.connack_accepted(encode(connack, level)) is accepted


def _outcome(broker: str, level: int, cpu: float, delivered: int = 1000) -> Outcome:
    return Outcome("qos1", broker, delivered, 1000, 1.0, cpu, 0.1, "msg", {}, level)


@pytest.mark.parametrize(
    ("cpu_at_5", "delivered_at_5", "met"),
    [(1.0 / 0.85, 1000, True), (1.0 / 0.84, 1000, False), (1.0, 999, False)],
)
def test_qos1_at_level_5_must_keep_85_percent_of_level_4_per_cpu_second_without_loss(
    cpu_at_5: float, delivered_at_5: int, met: bool
) -> None:
    [verdict] = level_verdicts(
        [_outcome("mqttref", 4, 1.0), _outcome("mqttref", 5, cpu_at_5, delivered_at_5)]
    )
    assert verdict.met is met
    assert "mqttref" in verdict.figure


def test_level_table_has_one_row_per_broker_and_shows_a_miss() -> None:
    found = level_verdicts(
        [
            _outcome("mosquitto", 4, 1.0),
            _outcome("mosquitto", 5, 1.0),
            _outcome("mqttref", 4, 1.0),
            _outcome("mqttref", 5, 2.0),
        ]
    )
    assert [v.met for v in found] == [True, False]
    text = verdict_table(found, ("MQTT 3.1.1", "MQTT 5.0", "5.0/3.1.1"))
    assert "0.50" in text
    assert "NO" in text
    assert "**no**" in markdown([], [], [], found)


def test_a_scenario_run_at_one_level_only_has_no_level_verdict() -> None:
    assert level_verdicts([_outcome("mqttref", 5, 1.0)]) == []
