"""Statecharts as data: states, events and transitions as plain records.

Theory of operation (after h11's ``_state.py``): a chart is a table of
``Transition(source, event, target, guard, action, refs)`` records. The model
does not encode behaviour in scattered ``if`` statements; it asks the chart
which transition a ``(state, event)`` pair takes (``Chart.fire``), then
performs the transition's action by name. A pair with no entry is a protocol
error (``NoTransition``). The drawings in ``docs/spec/`` are generated from the
same records (``mqttref.statecharts``), so a drawing cannot drift from what the
model does.

Guards and actions are *names* of pure functions that the executing module
supplies; names label the edges of the drawings. A chart checks itself when it
is built: an unknown state, event, guard or action fails at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

import attrs

from mqttref.model.errors import ChartError, NoTransition


@attrs.frozen
class State:
    """A state of a chart; ``final`` states need no exit."""

    name: str
    description: str
    final: bool = False


@attrs.frozen
class Event:
    """Something that happens to the chart: a packet, a timer, a close."""

    name: str
    description: str


@attrs.frozen
class Transition:
    """One row of a chart's table.

    ``guard`` names a predicate that must hold for this row to apply; rows for
    the same ``(source, event)`` pair must have distinct guards, so at most one
    applies. ``action`` names what the model does when the row fires. ``refs``
    are the normative statements ([MQTT-x.y.z-n]) the row stands for.
    """

    source: str
    event: str
    target: str
    refs: tuple[str, ...]
    guard: str | None = None
    action: str | None = None

    @property
    def label(self) -> str:
        """The edge label of the drawings: ``event [guard] / action``."""
        text = self.event
        if self.guard:
            text += f" [{self.guard}]"
        if self.action:
            text += f" / {self.action}"
        return text


@attrs.frozen
class Chart:
    """A statechart: its states, events, guards, actions and transition table."""

    name: str
    title: str
    description: str
    states: tuple[State, ...]
    events: tuple[Event, ...]
    initial: str
    transitions: tuple[Transition, ...]
    guards: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    protocol: str = "3.1.1"
    """The specification whose statement ids the rows cite: "3.1.1" or "5.0". The two
    number their statements independently ([MQTT-3.1.2-4] is a different sentence in
    each), so a row's refs mean nothing without it."""

    def __attrs_post_init__(self) -> None:
        self.validate()

    def __copy__(self) -> Chart:
        return self

    def __deepcopy__(self, memo: object) -> Chart:
        """A chart is an immutable declaration: copies of a model share it."""
        return self

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.events)

    @property
    def final_states(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states if s.final)

    def validate(self) -> None:
        """Refuse a table that names anything undeclared, or is ambiguous."""
        states, events = set(self.state_names), set(self.event_names)
        problems: list[str] = []
        if len(states) != len(self.states) or len(events) != len(self.events):
            problems.append("duplicate state or event names")
        if self.initial not in states:
            problems.append(f"initial state {self.initial!r} is not a state")
        seen: set[tuple[str, str, str | None]] = set()
        for t in self.transitions:
            if t.source not in states:
                problems.append(f"{t.label}: unknown source state {t.source!r}")
            if t.target not in states:
                problems.append(f"{t.label}: unknown target state {t.target!r}")
            if t.event not in events:
                problems.append(f"unknown event {t.event!r}")
            if t.guard is not None and t.guard not in self.guards:
                problems.append(f"{t.label}: undeclared guard {t.guard!r}")
            if t.action is not None and t.action not in self.actions:
                problems.append(f"{t.label}: undeclared action {t.action!r}")
            if not t.refs or not all(r.startswith("MQTT-") for r in t.refs):
                problems.append(f"{t.source} --{t.label}-->: names no [MQTT-x.y.z-n] statement")
            key = (t.source, t.event, t.guard)
            if key in seen:
                problems.append(f"duplicate row for {key}")
            seen.add(key)
        for t in self.transitions:
            rows = [u for u in self.transitions if (u.source, u.event) == (t.source, t.event)]
            if len(rows) > 1 and any(u.guard is None for u in rows):
                problems.append(f"({t.source}, {t.event}): an unguarded row beside guarded rows")
        if self.protocol not in ("3.1.1", "5.0"):
            problems.append(f"unknown protocol {self.protocol!r}")
        if problems:
            raise ChartError(f"chart {self.name!r} is invalid: " + "; ".join(sorted(set(problems))))

    def rows(self, state: str, event: str) -> tuple[Transition, ...]:
        """The table rows for a ``(state, event)`` pair (empty: a protocol error)."""
        if state not in self.state_names:
            raise ChartError(f"chart {self.name!r} has no state {state!r}")
        if event not in self.event_names:
            raise ChartError(f"chart {self.name!r} has no event {event!r}")
        return tuple(t for t in self.transitions if t.source == state and t.event == event)

    def fire(
        self, state: str, event: str, holds: Callable[[str], bool] | None = None
    ) -> Transition:
        """The transition that ``event`` takes from ``state``.

        ``holds(guard_name)`` evaluates guards. Raises ``NoTransition`` when the
        table has no row (or no row whose guard holds): the protocol forbids
        the event in this state.
        """
        for row in self.rows(state, event):
            if row.guard is None or (holds is not None and holds(row.guard)):
                return row
        raise NoTransition(self.name, state, event)

    def allows(self, state: str, event: str, holds: Callable[[str], bool] | None = None) -> bool:
        try:
            self.fire(state, event, holds)
        except NoTransition:
            return False
        return True

    @property
    def refs(self) -> tuple[str, ...]:
        """Every statement id the chart's rows name, sorted."""
        return tuple(sorted({r for t in self.transitions for r in t.refs}))


_E = TypeVar("_E", bound=StrEnum)


def states_of(
    enum: type[_E], descriptions: Mapping[_E, str], finals: Iterable[_E] = ()
) -> tuple[State, ...]:
    """Declare the states of an enum, each with its description."""
    final = set(finals)
    return tuple(State(str(m), descriptions[m], m in final) for m in enum)


def events_of(enum: type[_E], descriptions: Mapping[_E, str]) -> tuple[Event, ...]:
    """Declare the events of an enum, each with its description."""
    return tuple(Event(str(m), descriptions[m]) for m in enum)
