"""Issue 16's bar, held: every server-side observable 5.0 statement is cited by a 5.0
chart row or model rule (``statecharts/coverage.py`` says what counts as one)."""

from __future__ import annotations

from mqttref.statecharts.coverage import chart_citations, observable, rule_citations, uncited


def test_every_server_side_observable_5_0_statement_is_cited() -> None:
    assert uncited() == []


def test_the_5_0_model_cites_most_of_them_itself() -> None:
    own = (chart_citations() | rule_citations()) & set(observable())
    assert len(own) >= 0.9 * len(observable())
