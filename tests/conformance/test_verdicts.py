"""How check results become per-statement verdicts (no network: results are built here)."""

from __future__ import annotations

import pytest

from mqttref.oracle.evidence import Choice, Finding, Observation
from mqttref.oracle.runner import CheckResult, Outcome, StatementVerdict, Verdict, judge
from mqttref.oracle.scenario import REGISTRY
from mqttref.oracle.statements import cited, judgeable

CHECK = REGISTRY["unsupported_protocol_level"]  # lists 3.1.2-2, 3.2.2-4, 3.2.2-5


def _seen(*ids: str) -> tuple[Observation, ...]:
    return tuple(Observation((sid,), f"held [{sid}]") for sid in ids)


def _found(message: str, scenario: str = "") -> Finding:
    return Finding(cited(message), message, scenario)


def _verdicts(*results: CheckResult, only: str = CHECK.name) -> dict[str, Verdict]:
    return {v.statement.id: v.verdict for v in judge(results, only=[only])}


def _by_id(*results: CheckResult) -> dict[str, StatementVerdict]:
    return {v.statement.id: v for v in judge(results)}


def test_a_check_that_observed_each_statement_passes_each_with_its_evidence() -> None:
    result = CheckResult(CHECK, Outcome.PASS, observations=_seen(*CHECK.ids))
    verdicts = _by_id(result)
    for sid in CHECK.ids:
        assert verdicts[sid].verdict is Verdict.PASS
        assert [e.check for e in verdicts[sid].evidence] == [CHECK.name]
        assert sid in verdicts[sid].evidence[0].observation.text


def test_a_check_that_ran_to_the_end_without_observing_a_statement_does_not_pass_it() -> None:
    result = CheckResult(CHECK, Outcome.PASS, observations=_seen("MQTT-3.1.2-2"))
    verdicts = _by_id(result)
    assert verdicts["MQTT-3.1.2-2"].verdict is Verdict.PASS
    assert verdicts["MQTT-3.2.2-4"].verdict is Verdict.NOT_RUN
    assert "without observing it" in verdicts["MQTT-3.2.2-4"].reason


def test_a_failure_citing_no_statement_blames_none_and_is_an_oracle_gap() -> None:
    result = CheckResult(CHECK, Outcome.ERROR, "a deviation that cites no statement",
                         findings=(_found("no CONNACK within 5.0s"),))
    verdicts = _by_id(result)
    assert {verdicts[sid].verdict for sid in CHECK.ids} == {Verdict.NOT_RUN}


def test_a_failure_blames_exactly_the_statements_it_cites_even_outside_the_checks_list() -> None:
    finding = _found("PUBREC for a QoS 2 PUBLISH [MQTT-3.3.4-1]: nothing arrived")
    result = CheckResult(CHECK, Outcome.FAIL, finding.message, findings=(finding,))
    verdicts = _by_id(result)
    assert verdicts["MQTT-3.3.4-1"].verdict is Verdict.FAIL
    for sid in CHECK.ids:
        assert verdicts[sid].verdict is Verdict.NOT_RUN
        assert "blocked by MQTT-3.3.4-1" in verdicts[sid].reason


def test_statements_cut_off_by_a_failure_are_not_run_after_it_and_earlier_ones_keep_credit(
) -> None:
    finding = _found("still open after a refusing CONNACK [MQTT-3.2.2-5]")
    result = CheckResult(CHECK, Outcome.FAIL, finding.message,
                         observations=_seen("MQTT-3.1.2-2"), findings=(finding,))
    verdicts = _by_id(result)
    assert verdicts["MQTT-3.2.2-5"].verdict is Verdict.FAIL
    assert verdicts["MQTT-3.1.2-2"].verdict is Verdict.PASS
    assert verdicts["MQTT-3.2.2-4"].verdict is Verdict.NOT_RUN
    assert "after the failure of MQTT-3.2.2-5" in verdicts["MQTT-3.2.2-4"].reason


def test_a_failure_wins_over_evidence_from_another_check() -> None:
    other = REGISTRY["connack_accepts_valid_connect"]
    good = CheckResult(other, Outcome.PASS, observations=_seen("MQTT-3.2.0-1"))
    finding = _found("the first packet from the server must be CONNACK [MQTT-3.2.0-1]")
    bad = CheckResult(CHECK, Outcome.FAIL, finding.message, findings=(finding,))
    assert _by_id(good, bad)["MQTT-3.2.0-1"].verdict is Verdict.FAIL


def test_a_legal_choice_makes_a_statement_not_applicable_naming_the_choice() -> None:
    choice = Choice("grants QoS 1 for a QoS 2 request (allowed [MQTT-3.8.4-6])")
    result = CheckResult(CHECK, Outcome.NOT_APPLICABLE, choice.choice, choices=(choice,))
    verdicts = _by_id(result)
    for sid in CHECK.ids:
        assert verdicts[sid].verdict is Verdict.NOT_APPLICABLE
        assert "grants QoS 1" in verdicts[sid].reason


def test_a_choice_naming_statements_leaves_the_others_of_the_check_alone() -> None:
    choice = Choice("refuses empty client ids", ("MQTT-3.2.2-4",))
    result = CheckResult(CHECK, Outcome.NOT_APPLICABLE, choice.choice,
                         observations=_seen("MQTT-3.1.2-2"), choices=(choice,))
    verdicts = _by_id(result)
    assert verdicts["MQTT-3.1.2-2"].verdict is Verdict.PASS
    assert verdicts["MQTT-3.2.2-4"].verdict is Verdict.NOT_APPLICABLE
    assert verdicts["MQTT-3.2.2-5"].verdict is Verdict.NOT_RUN


def test_an_oracle_error_blames_no_statement() -> None:
    verdicts = _verdicts(CheckResult(CHECK, Outcome.ERROR, "oracle error: KeyError()"))
    assert set(verdicts.values()) == {Verdict.NOT_RUN}


def test_a_check_that_did_not_run_leaves_its_statements_not_run_with_the_reason() -> None:
    verdicts = judge([CheckResult(CHECK, Outcome.NOT_RUN, "budget exhausted")], only=[CHECK.name])
    assert {v.verdict for v in verdicts} == {Verdict.NOT_RUN}
    assert all("budget exhausted" in v.reason for v in verdicts)


def test_statements_nobody_can_observe_are_not_testable_with_their_reason() -> None:
    verdicts = {v.statement.id: v for v in judge([])}
    assert verdicts["MQTT-6.0.0-1"].verdict is Verdict.NOT_TESTABLE
    assert "WebSocket" in verdicts["MQTT-6.0.0-1"].reason
    assert verdicts["MQTT-3.1.0-2"].verdict is Verdict.NOT_RUN


def test_a_client_only_statement_is_never_fail_whatever_a_message_cites() -> None:
    finding = _found("the first packet must be CONNECT [MQTT-3.1.0-1]")
    assert judgeable(finding.ids) == ()  # so a Ledger records it citing nothing
    result = CheckResult(CHECK, Outcome.FAIL, finding.message,
                         findings=(Finding(("MQTT-3.1.0-1",), finding.message),))
    assert _by_id(result)["MQTT-3.1.0-1"].verdict is Verdict.NOT_TESTABLE


def test_no_check_may_list_a_statement_a_client_cannot_judge_a_server_on() -> None:
    from mqttref.oracle.scenario import check

    with pytest.raises(ValueError, match="no client can judge"):
        check("MQTT-3.1.0-1", summary="binds the client")(_a_check)


async def _a_check(ctx: object) -> None:
    """A check body for registration tests."""


def test_model_exploration_findings_fail_their_statements_and_coverage_is_no_evidence() -> None:
    from mqttref.oracle.exploration import ExplorationFailure, ExplorationOutcome

    exploration = ExplorationOutcome(
        ran=True, note="explored", covered=("MQTT-3.1.0-2", "MQTT-4.6.0-6"),
        failures=(ExplorationFailure(("MQTT-4.6.0-6",), "reordered", ("c1 -> PUBLISH",), 7),),
    )
    verdicts = {v.statement.id: v for v in judge([], exploration)}
    assert verdicts["MQTT-3.1.0-2"].verdict is Verdict.NOT_RUN
    assert verdicts["MQTT-4.6.0-6"].verdict is Verdict.FAIL
    assert verdicts["MQTT-4.6.0-6"].reason == "model exploration found a deviation"


def test_without_a_stateful_explorer_the_exploration_is_reported_not_run() -> None:
    from mqttref.oracle.exploration import find_explorer, not_available

    assert find_explorer("tests.conformance.no_such_module") is None
    assert "not run" in not_available("tests.conformance.no_such_module").note


def test_the_explorer_ships_in_the_package_and_is_found_by_default() -> None:
    from mqttref.oracle.exploration import EXPLORER_MODULE, find_explorer

    assert EXPLORER_MODULE.startswith("mqttref.")
    assert find_explorer() is not None


def test_without_hypothesis_the_exploration_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins
    import sys
    from collections.abc import Mapping, Sequence
    from types import ModuleType

    from mqttref.oracle import exploration

    real_import = builtins.__import__

    def no_hypothesis(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name="hypothesis")
        return real_import(name, globals, locals, fromlist, level)

    for name in [m for m in sys.modules if m.startswith("mqttref.oracle.stateful")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_hypothesis)
    found = exploration.load_explorer("mqttref.oracle.stateful.explore")
    assert found == "it needs Hypothesis: pip install 'mqttref[check]'"


def test_exploration_coverage_of_a_client_side_statement_is_no_verdict_on_the_server() -> None:
    from mqttref.oracle.exploration import ExplorationOutcome

    exploration = ExplorationOutcome(ran=True, note="explored", covered=("MQTT-2.3.1-2",))
    verdicts = {v.statement.id: v for v in judge([], exploration)}
    assert verdicts["MQTT-2.3.1-2"].verdict is Verdict.NOT_TESTABLE


def test_an_exploration_stopped_at_the_budget_keeps_what_its_finished_rounds_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time
    from collections.abc import Callable

    from mqttref.oracle import target
    from mqttref.oracle.exploration import ExplorationFailure, ExplorationOutcome

    found = ExplorationOutcome(
        ran=True, note="1 rounds", covered=("MQTT-3.1.0-2",),
        failures=(ExplorationFailure(("MQTT-3.1.2-8",), "no will", ("s1 -> CONNECT",), 6),),
    )

    def overrunning(host: str, port: int, *, budget: float, seed: int,
                    partial: Callable[[ExplorationOutcome], None] | None = None,
                    ) -> ExplorationOutcome:
        assert partial is not None
        partial(found)
        time.sleep(60)  # a round that never ends
        return found

    monkeypatch.setattr(target, "EXPLORATION_GRACE", 0.5)
    started = time.monotonic()
    outcome = target._within_budget(overrunning, "127.0.0.1", 1, 0.5, 0)
    assert time.monotonic() - started < 10
    assert outcome.ran
    assert outcome.failures == found.failures
    assert outcome.covered == found.covered
    assert "the round in progress is lost" in outcome.note


def test_a_robustness_check_that_ends_inconclusive_is_not_a_pass() -> None:
    from mqttref.oracle.evidence import Ledger
    from mqttref.oracle.runner import _result

    robust = next(c for c in REGISTRY.values() if not c.ids)
    ledger = Ledger(observations=[Observation(("MQTT-3.12.4-1",), "PINGRESP [MQTT-3.12.4-1]")],
                    inconclusive=["the scenario did not finish within 30s"])
    assert _result(robust, ledger, "", (), 1.0).outcome is Outcome.NOT_RUN


def test_a_broker_that_never_answers_connect_fails_3_1_4_4_and_blocks_the_rest() -> None:
    import socket

    from mqttref.oracle.probe import Timing
    from mqttref.oracle.target import evaluate

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # takes connections, never reads or answers
        port = silent.getsockname()[1]
        report = evaluate("127.0.0.1", port, timing=Timing(reply=0.5), explore=False)
    verdicts = {v.statement.id: v for v in report.verdicts}
    assert verdicts["MQTT-3.1.4-4"].verdict is Verdict.FAIL
    assert report.count(Verdict.FAIL) == 1
    assert report.count(Verdict.PASS) == 0
    assert "blocked by MQTT-3.1.4-4" in verdicts["MQTT-3.8.4-1"].reason
