"""At 5.0, bytes from the server that the probe's strict codec refuses are blamed on the
rule the server broke as their sender, the rule of the field itself included: a PUBLISH
whose Response Topic holds U+0000 breaks [MQTT-3.3.2-13] besides [MQTT-1.5.4-2], a
QoS 1 PUBLISH with Packet Identifier 0 breaks [MQTT-2.2.1-4], a SUBACK without its
Property Length breaks [MQTT-2.2.2-1]. Before, the first two were blamed on the generic
UTF-8 statement alone and the others on no statement, or on whatever the check was
waiting for (found by the 5.0 fault matrix, docs/spec/oracle-power.md).
"""

from __future__ import annotations

import asyncio

import pytest

from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.errors import MQTTError, ProtocolError
from mqttref.impl.codec.packets import ProtocolLevel
from mqttref.oracle import raw
from mqttref.oracle.probe import Garbled, Probe, Timing, Trace
from mqttref.oracle.sender_rules import as_sent_by_server, without_property_length
from mqttref.oracle.statements import cited

V5 = ProtocolLevel.MQTT_5


def _publish(props: bytes, *, qos: int = 0, packet_id: int | None = None) -> bytes:
    return raw.publish5("t", b"x", qos=qos, packet_id=packet_id, props=raw.properties(props))


def _refusal(frame: bytes) -> ProtocolError:
    try:
        Decoder(role=Role.CLIENT, protocol_level=V5).feed(frame)
    except ProtocolError as exc:
        return exc
    raise AssertionError("the codec read the frame")


def _blamed(frame: bytes) -> set[str]:
    """What the probe cites for ``frame`` (as its reader does, without a network)."""
    exc = _refusal(frame)
    error = as_sent_by_server(f"{exc} [{exc.ref}]", V5, exc.field)
    return set(cited(without_property_length(frame) or error))


STRINGS = {
    "Response Topic holding U+0000": (b"\x08" + raw.string(b"r\x00"),
                                      {"MQTT-1.5.4-2", "MQTT-3.3.2-13"}),
    "Response Topic ill-formed": (b"\x08" + raw.string(b"r\xed\xa0\x80"),
                                  {"MQTT-1.5.4-1", "MQTT-3.3.2-13"}),
    "Content Type ill-formed": (b"\x03" + raw.string(b"text\xff"),
                                {"MQTT-1.5.4-1", "MQTT-3.3.2-19"}),
    "User Property value holding U+0000": (
        b"\x26" + raw.string(b"k") + raw.string(b"v\x00"), {"MQTT-1.5.4-2", "MQTT-1.5.7-1"}),
}


@pytest.mark.parametrize("label", sorted(STRINGS))
def test_a_string_property_the_codec_refuses_is_blamed_on_its_own_rule_too(label: str) -> None:
    block, statements = STRINGS[label]
    assert _blamed(_publish(block)) == statements


def test_a_string_property_without_a_rule_of_its_own_is_blamed_on_1_5_4_alone() -> None:
    """A Reason String holding U+0000: no statement says more of it than 1.5.4 does."""
    props = raw.properties(b"\x1f" + raw.string(b"why\x00"))
    assert _blamed(raw.frame(0x40, b"\x00\x01\x00" + props)) == {"MQTT-1.5.4-2"}


def test_the_codecs_refusal_names_the_property() -> None:
    exc = _refusal(_publish(b"\x03" + raw.string(b"text\xff")))
    assert exc.field == "content_type"
    assert "content_type" in str(exc)
    assert exc.ref == "MQTT-1.5.3-1"
    assert isinstance(exc, MQTTError)


def test_a_qos_1_publish_with_packet_identifier_0_breaks_2_2_1_4() -> None:
    assert _blamed(_publish(b"", qos=1, packet_id=0)) == {"MQTT-2.2.1-4"}


@pytest.mark.parametrize("frame", [
    bytes((0x90, 3, 0, 1, 0x01)),        # SUBACK granting QoS 1, no Property Length
    bytes((0x90, 4, 0, 1, 0x02, 0x00)),  # two codes, the first read as a length of 2
    bytes((0xB0, 3, 0, 1, 0x11)),        # UNSUBACK
], ids=["SUBACK", "SUBACK of two", "UNSUBACK"])
def test_an_acknowledgement_without_its_property_length_breaks_2_2_2_1(frame: bytes) -> None:
    assert _blamed(frame) == {"MQTT-2.2.2-1"}


def test_a_zero_where_the_property_length_goes_is_not_taken_for_a_missing_one() -> None:
    """SUBACK 00 01 00: a Property Length of 0 and no Reason Code, or a code 0x00 and no
    Property Length; the bytes cannot tell, so [MQTT-2.2.2-1] is not blamed."""
    assert without_property_length(bytes((0x90, 3, 0, 1, 0x00))) is None


async def _what_the_probe_reads(frame: bytes) -> Garbled:
    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        probe = await Probe.open("p", "127.0.0.1", port, Trace(), Timing(), level=V5)
        event = await probe.next_event(5.0)
        await probe.close()
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(event, Garbled), event
    return event


def test_the_probe_blames_a_response_topic_holding_u0000_on_3_3_2_13() -> None:
    garbled = asyncio.run(_what_the_probe_reads(_publish(b"\x08" + raw.string(b"r\x00"))))
    assert set(cited(garbled.error)) == {"MQTT-1.5.4-2", "MQTT-3.3.2-13"}, garbled.error


def test_the_probe_blames_a_suback_without_its_property_length_on_2_2_2_1() -> None:
    garbled = asyncio.run(_what_the_probe_reads(bytes((0x90, 3, 0, 1, 0x01))))
    assert set(cited(garbled.error)) == {"MQTT-2.2.2-1"}, garbled.error
