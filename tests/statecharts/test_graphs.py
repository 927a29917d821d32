"""Graph checks over every chart (networkx), and proof that the checks can fail."""

from __future__ import annotations

import pytest

from mqttref.model.chart import Chart, Event, State, Transition
from mqttref.model.charts import ALL_CHARTS as CHARTS
from mqttref.model.qos import QOS_CHARTS
from mqttref.statecharts.build import (
    problems,
    states_that_cannot_complete,
    states_without_exit,
    to_graph,
    undefined_names,
    unreachable_states,
)

NAMES = [c.name for c in CHARTS]


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_every_state_is_reachable_from_the_initial_state(chart: Chart) -> None:
    assert unreachable_states(chart) == []


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_every_non_final_state_has_an_exit(chart: Chart) -> None:
    assert states_without_exit(chart) == []


@pytest.mark.parametrize("chart", QOS_CHARTS, ids=[c.name for c in QOS_CHARTS])
def test_every_qos_flow_can_reach_completed_from_every_state(chart: Chart) -> None:
    assert states_that_cannot_complete(chart) == []


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_no_transition_names_an_undefined_state_or_event(chart: Chart) -> None:
    assert undefined_names(chart) == []


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_the_graph_has_one_edge_per_transition_keyed_by_event(chart: Chart) -> None:
    graph = to_graph(chart)
    assert graph.number_of_nodes() == len(chart.states)
    assert graph.number_of_edges() == len(chart.transitions)
    for source, target, key, data in graph.edges(keys=True, data=True):
        row = data["transition"]
        assert (row.source, row.target) == (source, target)
        assert key.startswith(row.event)


def _broken() -> Chart:
    return Chart(
        name="broken",
        title="Broken",
        description="a chart with an island, a dead end and no way to completion",
        states=(
            State("idle", "start"),
            State("stuck", "no exit"),
            State("island", "unreachable"),
            State("completed", "done", final=True),
        ),
        events=(Event("go", "go"), Event("finish", "finish")),
        initial="idle",
        transitions=(
            Transition("idle", "go", "stuck", ("MQTT-1.0.0-1",)),
            Transition("island", "finish", "completed", ("MQTT-1.0.0-1",)),
        ),
    )


def test_the_checks_find_unreachable_dead_end_and_incomplete_states() -> None:
    chart = _broken()
    assert unreachable_states(chart) == ["completed", "island"]
    assert states_without_exit(chart) == ["stuck"]
    assert states_that_cannot_complete(chart) == ["idle", "stuck"]
    assert len(problems(chart)) == 5


def test_undefined_names_are_found_in_a_chart_that_bypassed_validation() -> None:
    chart = _broken()
    forged = Transition("idle", "fly", "nowhere", ("MQTT-1.0.0-1",))
    object.__setattr__(chart, "transitions", (*chart.transitions, forged))
    assert undefined_names(chart) == ["event 'fly'", "state 'nowhere'"]


def test_the_session_chart_is_the_seed_statechart() -> None:
    """The seed's server statechart, edge by edge."""
    graph = to_graph(next(c for c in CHARTS if c.name == "session"))
    edges = {(s, t, k.split("[")[0]) for s, t, k in graph.edges(keys=True)}
    seed = {
        ("start", "clean_session", "connect_clean"),
        ("start", "persistent_session", "connect_persistent"),
        ("clean_session", "clean_disconnected", "disconnect"),
        ("persistent_session", "persistent_disconnected", "disconnect"),
        ("clean_session", "last_will", "timeout"),
        ("persistent_session", "last_will", "timeout"),
        ("clean_session", "last_will", "network_loss"),
        ("persistent_session", "last_will", "network_loss"),
        ("last_will", "clean_disconnected", "will_published"),
        ("last_will", "persistent_disconnected", "will_published"),
        ("persistent_disconnected", "persistent_session", "connect_persistent"),
        ("persistent_disconnected", "clean_session", "connect_clean"),
        *(
            (state, state, event)
            for state in ("clean_session", "persistent_session")
            for event in ("ping", "publish", "subscribe", "unsubscribe")
        ),
    }
    assert seed <= edges
