"""``mqttref check --protocol 5``'s model exploration: ``BrokerMachine5`` against the broker.

The unbroken broker passing it, with every feature declared off (the machine keeps to
the CONNACK), is ``test_check_v5``'s features-off test: it pays for the suite anyway.
Here the exploration must be able to fail: a broker that grants a level-5 client a
higher QoS than it asked (``faults5.higher_qos_granted5``) is caught, the verdict
blames the 5.0 statement it breaks, and every report form carries the minimal
sequence, the seed that replays it, the statement's text and the protocol level.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import (
    Connect,
    Properties,
    ProtocolLevel,
    Publish,
    QoS,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.oracle.capabilities import BrokerProfile5
from mqttref.oracle.report import Report, to_json, write_junit, write_text
from mqttref.oracle.runner import Verdict, judge
from mqttref.oracle.stateful.explore5 import adapt, explore, in_5_0_numbering
from mqttref.oracle.statements import statements
from tests.helpers.broker_thread import BrokerThread
from tests.stateful.faults5 import FAULTS5

FAULT = next(f for f in FAULTS5 if f.name == "higher_qos_granted5")
SEED = 0
BUDGET = 30.0
EXAMPLES, STEPS = 1, 5
"""Smaller rounds than ``mqttref check``'s (2 x 15) for CI time: the fault shows on the
first level-5 SUBSCRIBE below QoS 2 (about 13 s; found with each of the seeds 0, 1, 2)."""


@pytest.mark.slow
def test_a_broker_granting_more_than_asked_fails_the_level_5_exploration_with_a_short_trace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    FAULT.inject(monkeypatch)
    with BrokerThread(Config(port=0)) as running:
        outcome = explore(running.host, running.port, budget=BUDGET, seed=SEED,
                          profile=BrokerProfile5(topic_alias_maximum=10, probed=True),
                          examples=EXAMPLES, steps=STEPS)
    assert outcome.ran, outcome.note
    assert outcome.note.startswith("level 5: ")
    assert outcome.failures, outcome.note
    failure = outcome.failures[0]
    assert set(failure.ids) & FAULT.declared, failure
    assert set(failure.ids) <= set(statements("5.0")), failure
    program = failure.trace[1:failure.trace.index("transcript:")]
    rules = [line for line in program if line.startswith("state.")
             and not line.startswith(("state.teardown", "state.model_invariants_hold"))]
    # Shrunk to the step that shows it: no rule beyond the initialisers.
    assert 1 <= len(rules) <= 4, "\n".join(program)
    assert "model cites" in failure.trace[0]

    report = Report("broken", "5.0", SEED, outcome.seconds,
                    tuple(judge([], outcome, protocol="5.0")), (), outcome)
    assert report.failed
    blamed = [v for v in report.verdicts if v.verdict is Verdict.FAIL]
    assert {v.statement.id for v in blamed} == {
        i for f in outcome.failures for i in f.ids}
    assert all(v.reason == "model exploration found a deviation" for v in blamed)

    text = io.StringIO()
    write_text(report, text)
    shown = text.getvalue()
    sid = failure.ids[0]
    assert f"deviation at MQTT 5.0 [{' '.join(failure.ids)}]" in shown
    assert statements("5.0")[sid].text in shown
    assert f"replay with --seed {failure.seed}" in shown
    assert "transcript:" in shown

    data = to_json(report)
    verdict = next(s for s in data["statements"] if s["id"] == sid)
    assert (verdict["protocol"], verdict["verdict"]) == ("5.0", "FAIL")
    assert list(verdict["explored"][0]["trace"]) == list(failure.trace)
    assert all(f["protocol"] == "5.0" for f in data["exploration"]["failures"])
    json.dumps(data)

    junit = tmp_path / "v.xml"
    write_junit(report, str(junit))
    case = next(c for c in ET.parse(junit).iter("testcase") if c.get("name") == sid)
    assert case.get("classname") == "MQTT 5.0 at broken"
    failed = case.find("failure")
    assert failed is not None
    assert failed.text is not None
    assert "model exploration: " in (failed.get("message") or "")
    assert "transcript:" in failed.text


def test_the_explorer_keeps_to_what_the_connack_declared() -> None:
    """Each feature declared off or limited changes the packet the machine sends into
    the nearest one the server accepts; with everything available nothing changes."""
    off = BrokerProfile5(maximum_qos=1, retain_available=False, wildcard_available=False,
                         subscription_identifiers_available=False, shared_available=False,
                         receive_maximum=2)
    publish = Publish("p/a", b"m", QoS.EXACTLY_ONCE, True, packet_id=7)
    assert adapt(publish, BrokerProfile5(), prefix="p", in_flight=5).changes == ()
    sent = adapt(publish, off, prefix="p", in_flight=0).packet
    assert sent == Publish("p/a", b"m", QoS.AT_LEAST_ONCE, False, packet_id=7)
    full = adapt(publish, off, prefix="p", in_flight=2)
    assert full.packet == Publish("p/a", b"m", QoS.AT_MOST_ONCE, False)
    assert any("Receive Maximum 2" in change for change in full.changes)
    subscribe = Subscribe(3, (Subscription("$share/g/p/+", QoS.EXACTLY_ONCE),
                              Subscription("$p/#", QoS.AT_MOST_ONCE)),
                          Properties(subscription_identifiers=(4,)))
    plain = adapt(subscribe, off, prefix="p", in_flight=0).packet
    assert isinstance(plain, Subscribe)
    assert [s.topic_filter for s in plain.subscriptions] == ["p/a", "$p/a"]
    assert plain.properties.subscription_identifiers == ()
    will = Will("p/a", b"w", QoS.EXACTLY_ONCE, True)
    connect = adapt(Connect(ProtocolLevel.MQTT_5, "p-c0", True, 60, will), off, prefix="p",
                    in_flight=0).packet
    assert isinstance(connect, Connect)
    assert connect.will == Will("p/a", b"w", QoS.AT_LEAST_ONCE, False)


def test_model_ids_are_put_in_5_0_numbering() -> None:
    """A 5.0-only id stays; an id of a 3.1.1 chart row becomes the 5.0 statements that
    require the same (3.1.1's packet identifier rule MQTT-2.3.1-5 is 5.0's
    MQTT-2.2.1-2); one 5.0 has no match for is kept apart, blaming no 5.0 statement
    (3.1.1's MQTT-3.1.2-12 is no 5.0 MQTT-3.1.2-12)."""
    assert in_5_0_numbering(["MQTT-3.3.2-18"]) == (("MQTT-3.3.2-18",), ())
    assert in_5_0_numbering(["MQTT-2.3.1-5"]) == (("MQTT-2.2.1-2",), ())
    assert in_5_0_numbering(["MQTT-3.1.2-12"]) == ((), ("MQTT-3.1.2-12",))
