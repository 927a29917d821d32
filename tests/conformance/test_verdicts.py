"""How check results become per-statement verdicts (no network: results are built here)."""

from __future__ import annotations

import pytest

from mqttref.impl.oracle.runner import CheckResult, Outcome, Verdict, judge
from mqttref.impl.oracle.scenario import REGISTRY

CHECK = REGISTRY["unsupported_protocol_level"]  # cites 3.1.2-2, 3.2.2-4, 3.2.2-5


def _verdicts(*results: CheckResult) -> dict[str, Verdict]:
    return {v.statement.id: v.verdict for v in judge(results, only=[CHECK.name])}


def test_a_passing_check_passes_every_statement_it_cites() -> None:
    verdicts = _verdicts(CheckResult(CHECK, Outcome.PASS))
    assert verdicts == dict.fromkeys(CHECK.ids, Verdict.PASS)


def test_a_failure_citing_no_statement_fails_every_statement_of_the_check() -> None:
    verdicts = _verdicts(CheckResult(CHECK, Outcome.FAIL, "no CONNACK within 5.0s"))
    assert verdicts == dict.fromkeys(CHECK.ids, Verdict.FAIL)


def test_a_failure_citing_a_statement_fails_that_one_and_leaves_the_rest_unjudged() -> None:
    result = CheckResult(CHECK, Outcome.FAIL, "still open after a refusing CONNACK [MQTT-3.2.2-5]")
    verdicts = _verdicts(result)
    assert verdicts["MQTT-3.2.2-5"] is Verdict.FAIL
    assert verdicts["MQTT-3.1.2-2"] is Verdict.NOT_RUN
    assert verdicts["MQTT-3.2.2-4"] is Verdict.NOT_RUN


def test_requirements_that_held_before_a_failure_still_count_as_passed() -> None:
    result = CheckResult(CHECK, Outcome.FAIL, "still open [MQTT-3.2.2-5]",
                         verified=frozenset({"MQTT-3.1.2-2", "MQTT-3.2.2-4"}))
    verdicts = _verdicts(result)
    assert verdicts == {"MQTT-3.1.2-2": Verdict.PASS, "MQTT-3.2.2-4": Verdict.PASS,
                        "MQTT-3.2.2-5": Verdict.FAIL}


def test_an_oracle_error_counts_as_a_failure() -> None:
    verdicts = _verdicts(CheckResult(CHECK, Outcome.ERROR, "oracle error: KeyError()"))
    assert set(verdicts.values()) == {Verdict.FAIL}


def test_a_check_that_did_not_run_leaves_its_statements_not_run_with_the_reason() -> None:
    verdicts = judge([CheckResult(CHECK, Outcome.NOT_RUN, "budget exhausted")], only=[CHECK.name])
    assert {v.verdict for v in verdicts} == {Verdict.NOT_RUN}
    assert all(v.reason == "budget exhausted" for v in verdicts)


def test_statements_nobody_can_observe_are_not_testable_with_their_reason() -> None:
    verdicts = {v.statement.id: v for v in judge([])}
    assert verdicts["MQTT-6.0.0-1"].verdict is Verdict.NOT_TESTABLE
    assert "WebSocket" in verdicts["MQTT-6.0.0-1"].reason
    assert verdicts["MQTT-3.1.0-2"].verdict is Verdict.NOT_RUN


def test_model_exploration_verdicts_join_the_suite_verdicts() -> None:
    from mqttref.impl.oracle.exploration import ExplorationFailure, ExplorationOutcome

    exploration = ExplorationOutcome(
        ran=True, note="explored", covered=("MQTT-3.1.0-2", "MQTT-4.6.0-6"),
        failures=(ExplorationFailure(("MQTT-4.6.0-6",), "reordered", ("c1 -> PUBLISH",), 7),),
    )
    verdicts = {v.statement.id: v for v in judge([], exploration)}
    assert verdicts["MQTT-3.1.0-2"].verdict is Verdict.PASS
    assert verdicts["MQTT-4.6.0-6"].verdict is Verdict.FAIL
    assert verdicts["MQTT-4.6.0-6"].reason == "model exploration found a deviation"


def test_without_a_stateful_explorer_the_exploration_is_reported_not_run() -> None:
    from mqttref.impl.oracle.exploration import find_explorer, not_available

    assert find_explorer("tests.conformance.no_such_module") is None
    assert "not run" in not_available("tests.conformance.no_such_module").note


def test_the_explorer_ships_in_the_package_and_is_found_by_default() -> None:
    from mqttref.impl.oracle.exploration import EXPLORER_MODULE, find_explorer

    assert EXPLORER_MODULE.startswith("mqttref.")
    assert find_explorer() is not None


def test_without_hypothesis_the_exploration_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins
    import sys

    from mqttref.impl.oracle import exploration

    real_import = builtins.__import__

    def no_hypothesis(name: str, *args: object, **kwargs: object) -> object:
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name="hypothesis")
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m.startswith("mqttref.impl.oracle.stateful")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_hypothesis)
    found = exploration.load_explorer("mqttref.impl.oracle.stateful.explore")
    assert found == "it needs Hypothesis: pip install 'mqttref[check]'"


def test_exploration_coverage_of_a_client_side_statement_is_no_verdict_on_the_server() -> None:
    from mqttref.impl.oracle.exploration import ExplorationOutcome

    exploration = ExplorationOutcome(ran=True, note="explored", covered=("MQTT-2.3.1-2",))
    verdicts = {v.statement.id: v for v in judge([], exploration)}
    assert verdicts["MQTT-2.3.1-2"].verdict is Verdict.NOT_TESTABLE


def test_an_exploration_stopped_at_the_budget_keeps_what_its_finished_rounds_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time
    from collections.abc import Callable

    from mqttref.impl.oracle import target
    from mqttref.impl.oracle.exploration import ExplorationFailure, ExplorationOutcome

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
