"""At 5.0 a packet from the server carrying a reason code outside its packet's table is the
server's FAIL of that table's statement, not a malformed packet no statement is blamed for.

Each test is a real TCP peer sending the bytes a broken server sends; the oracle's
``Probe`` reads them with its strict codec, which refuses them as malformed. What the
check then raises must cite the sender rule of the table ([MQTT-3.9.3-2] for a SUBACK,
...): before this was settled, a broker sending SUBACK 0x03 got only errors and FAILs
of whatever the check was waiting for (found by the 5.0 fault matrix,
docs/spec/oracle-power.md).
"""

from __future__ import annotations

import asyncio

import pytest

from mqttref.impl.codec.packets import ProtocolLevel, PubAck
from mqttref.oracle.probe import Deviation, Garbled, Inconclusive, Probe, Timing, Trace
from mqttref.oracle.statements import cited

FRAMES = {
    "CONNACK": (bytes((0x20, 3, 0, 0x03, 0)), "MQTT-3.2.2-8"),
    "PUBACK": (bytes((0x40, 3, 0, 1, 0x01)), "MQTT-3.4.2-1"),
    "PUBREC": (bytes((0x50, 3, 0, 1, 0x01)), "MQTT-3.5.2-1"),
    "PUBREL": (bytes((0x62, 3, 0, 1, 0x10)), "MQTT-3.6.2-1"),
    "PUBCOMP": (bytes((0x70, 3, 0, 1, 0x10)), "MQTT-3.7.2-1"),
    "SUBACK": (bytes((0x90, 4, 0, 1, 0, 0x03)), "MQTT-3.9.3-2"),
    "UNSUBACK": (bytes((0xB0, 4, 0, 1, 0, 0x03)), "MQTT-3.11.3-2"),
    "DISCONNECT": (bytes((0xE0, 2, 0x03, 0)), "MQTT-3.14.2-1"),
    "AUTH": (bytes((0xF0, 2, 0x03, 0)), "MQTT-3.15.2-1"),
}
"""A frame per packet type with a reason code of no table of that packet, and the 5.0
statement that obliges the sender to use one of the table."""


async def _what_the_probe_reads(frame: bytes) -> Garbled:
    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame)
        await writer.drain()
        await asyncio.sleep(1.0)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        probe = await Probe.open("p", "127.0.0.1", port, Trace(), Timing(),
                                 level=ProtocolLevel.MQTT_5)
        event = await probe.next_event(5.0)
        await probe.close()
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(event, Garbled), event
    return event


@pytest.mark.parametrize("kind", sorted(FRAMES))
def test_a_reason_code_outside_the_packets_table_is_blamed_on_that_tables_statement(
        kind: str) -> None:
    frame, statement = FRAMES[kind]
    garbled = asyncio.run(_what_the_probe_reads(frame))
    assert statement in cited(garbled.error), garbled.error


def test_at_3_1_1_a_refused_return_code_keeps_the_codecs_own_citation() -> None:
    from mqttref.oracle.sender_rules import as_sent_by_server

    error = "reason code 0x03 is not valid on SUBACK [§2.4]"
    assert as_sent_by_server(error) == error
    assert cited(as_sent_by_server(error, ProtocolLevel.MQTT_5)) == ("MQTT-3.9.3-2",)


async def _wait_after_malformed_bytes() -> Exception:
    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(FRAMES["SUBACK"][0])
        await writer.drain()
        await asyncio.sleep(2.0)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        probe = await Probe.open("p", "127.0.0.1", port, Trace(), Timing(reply=0.3),
                                 level=ProtocolLevel.MQTT_5)
        assert isinstance(await probe.next_event(5.0), Garbled)
        try:
            await probe.expect(PubAck, "PUBACK for a QoS 1 PUBLISH [MQTT-3.3.4-1]")
        except (Deviation, Inconclusive) as exc:
            return exc
        finally:
            await probe.close()
    finally:
        server.close()
        await server.wait_closed()
    raise AssertionError("a PUBACK arrived on a connection the oracle dropped")


def test_a_wait_on_a_connection_dropped_after_malformed_bytes_blames_no_statement() -> None:
    """The malformed bytes are the FAIL (above); what the oracle awaited afterwards on the
    connection it dropped cannot come, and is no observation against [MQTT-3.3.4-1]."""
    outcome = asyncio.run(_wait_after_malformed_bytes())
    assert isinstance(outcome, Inconclusive), outcome


def test_at_5_0_dup_on_a_qos_0_publish_breaks_both_statements_that_forbid_it() -> None:
    from mqttref.oracle.sender_rules import as_sent_by_server

    error = as_sent_by_server("DUP set at QoS 0 [§3.3.1.1]", ProtocolLevel.MQTT_5)
    assert set(cited(error)) == {"MQTT-3.3.1-2", "MQTT-4.3.1-1"}


async def _frames_read(*frames: bytes) -> list[object]:
    """What the probe reads when a peer sends ``frames`` one after another."""
    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for frame in frames:
            writer.write(frame)
            await writer.drain()
        await asyncio.sleep(1.0)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    events: list[object] = []
    try:
        probe = await Probe.open("p", "127.0.0.1", port, Trace(), Timing(),
                                 level=ProtocolLevel.MQTT_5)
        for _frame in frames:  # one event a frame, up to the garbled one
            events.append(await probe.next_event(5.0))
            if isinstance(events[-1], Garbled) or events[-1] is None:
                break
        await probe.close()
    finally:
        server.close()
        await server.wait_closed()
    return events


def test_a_disconnect_the_codec_refuses_before_any_accepting_connack_breaks_3_14_0_1_too(
        ) -> None:
    """A refusal sent as a DISCONNECT with the CONNACK's code (0x8C, no DISCONNECT code):
    its fixed header shows a DISCONNECT before any CONNACK below 0x80, whatever the
    codec refuses after it (found by the 5.0 fault matrix: 'refusal sent as DISCONNECT')."""
    (garbled,) = asyncio.run(_frames_read(bytes((0xE0, 2, 0x8C, 0))))
    assert isinstance(garbled, Garbled)
    assert set(cited(garbled.error)) == {"MQTT-3.14.2-1", "MQTT-3.14.0-1"}, garbled.error


def test_after_an_accepting_connack_a_refused_disconnect_breaks_its_table_only() -> None:
    *_, garbled = asyncio.run(_frames_read(bytes((0x20, 3, 0, 0, 0)),
                                           bytes((0xE0, 2, 0x8C, 0))))
    assert isinstance(garbled, Garbled)
    assert cited(garbled.error) == ("MQTT-3.14.2-1",), garbled.error


def test_at_5_0_a_wildcard_in_a_topic_name_breaks_both_statements_that_forbid_it() -> None:
    from mqttref.oracle.sender_rules import as_sent_by_server

    error = as_sent_by_server("topic name 'a/+' contains a wildcard [MQTT-3.3.2-2]",
                               ProtocolLevel.MQTT_5)
    assert set(cited(error)) == {"MQTT-3.3.2-2", "MQTT-4.7.0-1"}
    response = as_sent_by_server("the response topic contains a wildcard [MQTT-3.3.2-14]",
                                  ProtocolLevel.MQTT_5)
    assert cited(response) == ("MQTT-3.3.2-14",)
