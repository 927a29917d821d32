"""The statement list is complete, well-formed, and every testable server statement is checked."""

from __future__ import annotations

import pytest

from mqttref.oracle.docgen import checks_by_statement, coverage
from mqttref.oracle.scenario import REGISTRY
from mqttref.oracle.statements import lookup, normalise_id, statements


def test_appendix_b_has_141_statements_with_unique_normalised_ids() -> None:
    table = statements()
    assert len(table) == 141
    assert all(normalise_id(sid) == sid for sid in table)


@pytest.mark.parametrize(
    ("printed", "normalised"),
    [("MQTT-3.1.2.7", "MQTT-3.1.2-7"), ("MQTT-3-8.3-4", "MQTT-3.8.3-4"),
     ("[MQTT-4.7.1-2]", "MQTT-4.7.1-2"), ("mqtt-3.1.2-24", "MQTT-3.1.2-24")],
)
def test_typo_ids_of_appendix_b_are_normalised_and_found(printed: str, normalised: str) -> None:
    assert normalise_id(printed) == normalised
    assert lookup(printed).id == normalised


def test_the_two_typo_ids_keep_their_printed_spelling() -> None:
    printed = {s.appendix_id for s in statements().values() if s.appendix_id}
    assert printed == {"MQTT-3.1.2.7", "MQTT-3-8.3-4"}


def test_text_that_is_not_a_statement_id_is_refused() -> None:
    with pytest.raises(ValueError, match="not a normative statement id"):
        normalise_id("MQTT-3.1")


def test_every_untestable_statement_says_why() -> None:
    assert all(s.note for s in statements().values() if not s.testable)


def test_statements_are_mandatory_rules_except_the_one_that_refers_to_another() -> None:
    """Appendix B words every statement with MUST, but 2.3.1-4 points at 2.3.1-3's MUSTs."""
    without_must = [s.id for s in statements().values() if "MUST" not in s.text]
    assert without_must == ["MQTT-2.3.1-4"]


def test_every_testable_server_side_statement_has_a_check() -> None:
    covered, testable, uncovered = coverage()
    assert uncovered == []
    assert covered == testable == 97


def test_checks_never_cite_a_statement_that_binds_nobody_observable() -> None:
    """A check citing an untestable statement would claim a verdict nobody can observe."""
    table = statements()
    for sid, checks in checks_by_statement().items():
        statement = table[sid]
        assert statement.testable or statement.binds == "client", (sid, [c.name for c in checks])


def test_check_names_are_unique_and_each_has_a_summary() -> None:
    assert all(check.summary for check in REGISTRY.values())
    assert len({c.name for c in REGISTRY.values()}) == len(REGISTRY)
