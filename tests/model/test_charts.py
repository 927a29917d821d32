"""Every (state, event) pair of every chart, h2-style: a pair with rows fires one
of them, a pair without rows is a protocol error (``NoTransition``)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.model.chart import Chart, Event, State, Transition
from mqttref.model.charts import ALL_CHARTS as CHARTS
from mqttref.model.errors import ChartError, NoTransition
from mqttref.model.v5.session import EXCLUSIVE_GUARDS
from mqttref.oracle.statements import statements

PAIRS = [
    (chart, state, event)
    for chart in CHARTS
    for state, event in itertools.product(chart.state_names, chart.event_names)
]


@pytest.mark.parametrize(
    ("chart", "state", "event"), PAIRS, ids=[f"{c.name}:{s}:{e}" for c, s, e in PAIRS]
)
def test_every_state_event_pair_fires_a_row_or_is_a_protocol_error(
    chart: Chart, state: str, event: str
) -> None:
    rows = chart.rows(state, event)
    if not rows:
        with pytest.raises(NoTransition):
            chart.fire(state, event, lambda guard: True)
        return
    for row in rows:

        def holds(guard: str, row: Transition = row) -> bool:
            return guard == row.guard

        chosen = chart.fire(state, event, holds)
        assert chosen is row
        assert chosen.target in chart.state_names


@given(st.data())
def test_any_pair_with_any_guard_values_has_at_most_one_answer(data: st.DataObject) -> None:
    chart = data.draw(st.sampled_from(CHARTS))
    state = data.draw(st.sampled_from(chart.state_names))
    event = data.draw(st.sampled_from(chart.event_names))
    truth = data.draw(st.fixed_dictionaries({g: st.booleans() for g in chart.guards}))
    applicable = [
        r for r in chart.rows(state, event) if r.guard is None or truth.get(r.guard, False)
    ]
    try:
        row = chart.fire(state, event, lambda guard: truth[guard])
    except NoTransition:
        assert applicable == []
    else:
        assert row is applicable[0]


def test_every_row_names_normative_statements_of_its_charts_specification() -> None:
    """A row's ids are looked up in the list of the specification the chart follows:
    3.1.1 and 5.0 number their statements independently."""
    for chart in CHARTS:
        known = statements(chart.protocol)
        for row in chart.transitions:
            assert row.refs, row
            assert [ref for ref in row.refs if ref not in known] == [], (chart.name, row)


def test_a_chart_of_an_unknown_specification_fails_when_built() -> None:
    with pytest.raises(ChartError, match="unknown protocol"):
        Chart("c", "C", "", (State("a", ""),), (Event("e", ""),), "a",
              (Transition("a", "e", "a", ("MQTT-1.5.3-1",)),), protocol="4.0")


def test_guards_of_one_pair_are_exclusive_in_the_model_charts() -> None:
    """Rows sharing (state, event) are told apart by complementary guards."""
    exclusive = {
        frozenset({"first_send", "dup"}),
        frozenset({"was_accepted", "never_accepted"}),
        frozenset({"clean", "persistent"}),
        frozenset({"payload", "empty_payload"}),
        *EXCLUSIVE_GUARDS,  # session_5
        frozenset({"no_local", "local"}),  # subscription_5
        frozenset({"qos0", "qos1_or_2"}),  # shared_5
        frozenset({"qos1", "qos2"}),
        frozenset({"room_left", "last_slot"}),  # flow_control_5
        frozenset({"still_over", "back_to_limit"}),
        frozenset({"mapped", "unmapped"}),  # topic_alias_5
        frozenset({"within_maximum", "above_maximum"}),
    }
    for chart in CHARTS:
        for (state, event), rows in itertools.groupby(
            sorted(chart.transitions, key=lambda t: (t.source, t.event)),
            key=lambda t: (t.source, t.event),
        ):
            guards = frozenset(r.guard for r in rows if r.guard)
            if len(guards) > 1:
                assert guards in exclusive, (chart.name, state, event, guards)


def _chart(**changes: object) -> Chart:
    fields: dict[str, object] = {
        "name": "tiny",
        "title": "Tiny",
        "description": "a test chart",
        "states": (State("a", "A"), State("b", "B", final=True)),
        "events": (Event("go", "go"),),
        "initial": "a",
        "transitions": (Transition("a", "go", "b", ("MQTT-1.0.0-1",)),),
    }
    fields.update(changes)
    return Chart(**fields)  # type: ignore[arg-type]


def test_a_valid_chart_builds() -> None:
    assert _chart().fire("a", "go").target == "b"


@pytest.mark.parametrize(
    "changes",
    [
        {"transitions": (Transition("a", "go", "nowhere", ("MQTT-1.0.0-1",)),)},
        {"transitions": (Transition("a", "jump", "b", ("MQTT-1.0.0-1",)),)},
        {"transitions": (Transition("a", "go", "b", ("MQTT-1.0.0-1",), guard="undeclared"),)},
        {"transitions": (Transition("a", "go", "b", ("MQTT-1.0.0-1",), action="undeclared"),)},
        {"transitions": (Transition("a", "go", "b", ()),)},
        {"initial": "c"},
        {
            "guards": ("g",),
            "transitions": (
                Transition("a", "go", "b", ("MQTT-1.0.0-1",)),
                Transition("a", "go", "a", ("MQTT-1.0.0-1",), guard="g"),
            ),
        },
    ],
    ids=["unknown-target", "unknown-event", "guard", "action", "no-refs", "initial", "ambiguous"],
)
def test_a_chart_naming_anything_undeclared_fails_when_built(changes: dict[str, object]) -> None:
    with pytest.raises(ChartError):
        _chart(**changes)


def test_asking_a_chart_about_an_unknown_state_or_event_fails() -> None:
    with pytest.raises(ChartError):
        _chart().fire("zzz", "go")
    with pytest.raises(ChartError):
        _chart().fire("a", "zzz")
