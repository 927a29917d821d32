"""Faults of the 5.0 power matrix whose statement a check used to leave PASSed or unjudged
because another statement's deviation came first or took the blame (issue 17).

A dropped Payload Format Indicator hid the dropped Correlation Data; a CONNACK's Reason
String hid its User Property; a BOM-keeping check blamed a dropped User Property on the
byte order mark; a SUBACK without its Property Length was read as one code short; an
unknown Authentication Method accepted was judged only by the CONNACK's missing method.
Only the check that judges the fault runs. (The faults made by rewriting frames in a
proxy, such as 'BOM stripped from PUBLISH topics', are measured by the power matrix.)
"""

from __future__ import annotations

import pytest

from mqttref.impl.broker.config import Config
from mqttref.oracle.probe import Timing
from tests.conformance.judged5 import assert_judged, judge5, report_text, verdicts5
from tests.stateful.oracle_faults5 import by_name5

CASES = (
    ("message properties dropped", "message_properties_forwarded_v5",
     ("MQTT-3.3.2-4", "MQTT-3.3.2-15", "MQTT-3.3.2-16", "MQTT-3.3.2-20"),
     ("MQTT-3.3.2-17",)),
    ("User Properties dropped", "byte_order_mark_kept_v5", ("MQTT-3.3.2-17",),
     ("MQTT-1.5.4-3",)),
    ("CONNACK with properties beyond the client's Maximum Packet Size",
     "connack_within_maximum_packet_size_v5", ("MQTT-3.2.2-19", "MQTT-3.2.2-20"), ()),
    ("SUBACK without its Property Length", "server_packet_encoding_v5", ("MQTT-2.2.2-1",), ()),
    ("unsupported Authentication Method accepted", "unsupported_authentication_method_v5",
     ("MQTT-4.12.0-1", "MQTT-4.12.0-5"), ()),
)
"""(fault, the check that must catch it, statements it must FAIL, statements it must PASS)."""


@pytest.mark.parametrize(("fault", "check", "failed", "passed"), CASES,
                         ids=[case[0] for case in CASES])
def test_the_fault_fails_each_statement_it_breaks_in_the_check_that_observes_it(
        monkeypatch: pytest.MonkeyPatch, fault: str, check: str, failed: tuple[str, ...],
        passed: tuple[str, ...]) -> None:
    inject = by_name5(fault).inject
    assert inject is not None
    inject(monkeypatch)
    report = judge5(Config(port=0), check, timing=Timing(obligation=1.0))
    # Blamed by the check, whether or not it lists the statement (the verdicts of a run of
    # one check hold only the statements it lists).
    blamed = {sid for result in report.results for sid in result.blamed}
    assert set(failed) <= blamed, report_text(report)
    verdicts = {v.statement.id: v.verdict for v in report.verdicts}
    assert_judged(verdicts, failed=[sid for sid in failed if sid in verdicts], passed=passed)


PASSED = {
    "message_properties_forwarded_v5": ("MQTT-3.3.2-4", "MQTT-3.3.2-15", "MQTT-3.3.2-16",
                                        "MQTT-3.3.2-17", "MQTT-3.3.2-20"),
    "byte_order_mark_kept_v5": ("MQTT-1.5.4-3",),
    "connack_within_maximum_packet_size_v5": ("MQTT-3.2.2-19", "MQTT-3.2.2-20"),
    "server_packet_encoding_v5": ("MQTT-2.2.2-1",),
    "unsupported_authentication_method_v5": ("MQTT-4.12.0-1",),
}
"""What each check PASSes against the mqttref broker itself."""


@pytest.mark.parametrize("check", sorted(PASSED))
def test_the_mqttref_broker_passes_them(check: str) -> None:
    verdicts = verdicts5(Config(port=0), check, timing=Timing(obligation=1.0))
    assert_judged(verdicts, failed=(), passed=PASSED[check])
