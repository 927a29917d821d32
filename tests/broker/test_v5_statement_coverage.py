"""Issue 15's bar: every server-side MQTT 5.0 statement is shown by a test of the broker,
or left out with a reason, and docs/spec/broker-5.0.md says which."""

from __future__ import annotations

from tests.broker.v5_coverage import ROOT, citing_tests, left_out, observable, table


def test_every_server_side_statement_is_shown_by_a_test_or_left_out_with_a_reason() -> None:
    cited, reasons = citing_tests(), left_out()
    assert [s.id for s in observable() if s.id not in cited and not reasons.get(s.id)] == []


def test_a_statement_left_out_is_not_also_claimed_shown() -> None:
    cited = citing_tests()
    assert [ref for ref in left_out() if ref in cited] == []


def test_tests_cite_only_statements_of_mqtt_5() -> None:
    from mqttref.oracle.statements import statements

    known = statements("5.0")
    assert {ref: tests for ref, tests in citing_tests().items() if ref not in known} == {}


def test_the_table_in_docs_is_current() -> None:
    assert (ROOT / "docs/spec/broker-5.0.md").read_text("utf-8") == table()
