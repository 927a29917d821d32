"""How a check's steps write its ledger: observations, findings, choices (no network)."""

from __future__ import annotations

import asyncio
import random

import pytest

from mqttref.oracle.evidence import LEDGER, Deviation, Ledger, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Timing
from mqttref.oracle.scenario import Context


def _context() -> Context:
    ledger = Ledger()
    LEDGER.set(ledger)
    return Context("127.0.0.1", 1, Timing(), "tok", random.Random(0), ledger=ledger)


def test_a_requirement_that_holds_is_an_observation_of_the_statements_it_cites() -> None:
    ctx = _context()
    require(True, "SUBACK id 7 equals SUBSCRIBE id 7 [MQTT-3.8.4-2]")
    assert [o.ids for o in ctx.ledger.observations] == [("MQTT-3.8.4-2",)]


def test_a_requirement_citing_nothing_is_no_evidence() -> None:
    ctx = _context()
    require(True, "the broker answered")
    assert ctx.ledger.observations == []


def test_a_requirement_citing_a_client_only_statement_is_no_evidence_about_the_server() -> None:
    ctx = _context()
    require(True, "we sent CONNECT first [MQTT-3.1.0-1]")
    assert ctx.ledger.observations == []


def test_a_requirement_that_fails_raises_a_deviation_carrying_its_citations() -> None:
    _context()
    with pytest.raises(Deviation) as raised:
        require(False, "PUBACK id 3 != PUBLISH id 4 [MQTT-2.3.1-6] [mqtt-4.3.2-2]")
    assert raised.value.ids == ("MQTT-2.3.1-6", "MQTT-4.3.2-2")


def test_a_deviation_ends_its_scenario_only_and_the_next_scenario_is_judged() -> None:
    ctx = _context()

    async def run() -> None:
        async with ctx.scenario("first"):
            require(False, "closed [MQTT-4.8.0-1]")
        async with ctx.scenario("second"):
            require(True, "closed [MQTT-2.2.2-2]")
        async with ctx.scenario("third"):
            raise NotApplicable("refuses the filter with 0x80", "MQTT-3.8.4-4")

    asyncio.run(run())
    assert [(f.scenario, f.ids) for f in ctx.ledger.findings] == [("first", ("MQTT-4.8.0-1",))]
    assert [(o.scenario, o.ids) for o in ctx.ledger.observations] == [
        ("second", ("MQTT-2.2.2-2",))]
    assert [(c.scenario, c.ids) for c in ctx.ledger.choices] == [("third", ("MQTT-3.8.4-4",))]


def test_the_spec_deadline_adds_one_stated_margin_scaled_for_slow_machines() -> None:
    assert Timing().spec_deadline(1.5) == pytest.approx(2.0)
    assert Timing(multiplier=2).spec_deadline(1.5) == pytest.approx(2.5)
    assert Timing(multiplier=2).obligation_bound == pytest.approx(6.0)


def test_the_probe_frames_the_servers_bytes_whatever_the_chunking() -> None:
    from mqttref.oracle.framing import Framer

    stream = bytes((0x90, 3, 0, 9, 1, 0xD0, 0)) + bytes((0x30, 0x80, 0x01)) + b"\x00\x01t" + \
        b"p" * 125
    for cut in range(len(stream)):
        framer = Framer()
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [stream[:5], stream[5:7], stream[7:]]


def test_an_acknowledgement_echoing_packet_id_0_is_decoded_not_refused() -> None:
    from mqttref.impl.codec.packets import PubAck, SubAck
    from mqttref.oracle.framing import echoed_zero_id

    assert echoed_zero_id(bytes((0x90, 3, 0, 0, 0x80))) == SubAck(0, (0x80,))
    assert echoed_zero_id(bytes((0x40, 2, 0, 0))) == PubAck(0)
    assert echoed_zero_id(bytes((0x40, 2, 0, 5))) is None


def test_bytes_the_codec_refuses_are_blamed_on_the_rule_the_server_broke_as_sender() -> None:
    from mqttref.oracle.sender_rules import as_sent_by_server
    from mqttref.oracle.statements import cited

    assert cited(as_sent_by_server("reserved flags 0x1 on PINGRESP [MQTT-2.2.2-2]")) == (
        "MQTT-2.2.2-1",)
    assert "MQTT-3.3.2-1" in cited(as_sent_by_server(
        "topic name is not well-formed UTF-8 [MQTT-1.5.3-1]"))
