"""A chart as a networkx graph, and the graph checks every chart must pass.

The graph is a ``MultiDiGraph`` whose nodes are the chart's states and whose
edges are its transitions, keyed by event (with the guard when one event has
several rows from one state), carrying the row as the ``transition``
attribute. The checks are the ones a drawing would make a reader trust:
every state is reachable from the initial one, every non-final state has an
exit, a QoS flow can always reach ``completed``, and no row names an
undeclared state or event (the chart itself refuses those at import; the
check here guards against a chart built by other means).
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from mqttref.model.chart import Chart


def to_graph(chart: Chart) -> Any:
    """The chart as ``networkx.MultiDiGraph`` (edge key: event, or event[guard])."""
    graph = nx.MultiDiGraph(name=chart.name, initial=chart.initial)
    for state in chart.states:
        graph.add_node(state.name, description=state.description, final=state.final)
    for row in chart.transitions:
        key = row.event if row.guard is None else f"{row.event}[{row.guard}]"
        graph.add_edge(row.source, row.target, key=key, transition=row, label=row.label)
    return graph


def unreachable_states(chart: Chart) -> list[str]:
    graph = to_graph(chart)
    reached = nx.descendants(graph, chart.initial) | {chart.initial}
    return sorted(set(chart.state_names) - reached)


def states_without_exit(chart: Chart) -> list[str]:
    """Non-final states with no transition to another state."""
    graph = to_graph(chart)
    finals = set(chart.final_states)
    return sorted(
        s for s in chart.state_names if s not in finals and not set(graph.successors(s)) - {s}
    )


def states_that_cannot_complete(chart: Chart, completed: str = "completed") -> list[str]:
    """States from which no path leads to ``completed`` (for the QoS flows)."""
    graph = to_graph(chart)
    return sorted(
        s for s in chart.state_names if s != completed and not nx.has_path(graph, s, completed)
    )


def undefined_names(chart: Chart) -> list[str]:
    states, events = set(chart.state_names), set(chart.event_names)
    problems = []
    for row in chart.transitions:
        for name in (row.source, row.target):
            if name not in states:
                problems.append(f"state {name!r}")
        if row.event not in events:
            problems.append(f"event {row.event!r}")
    return sorted(set(problems))


def problems(chart: Chart) -> list[str]:
    """Every graph check's findings for ``chart`` (empty: the chart is sound)."""
    found = [f"unreachable: {s}" for s in unreachable_states(chart)]
    found += [f"no exit: {s}" for s in states_without_exit(chart)]
    found += [f"undefined: {n}" for n in undefined_names(chart)]
    if "completed" in chart.state_names:
        found += [f"cannot complete from: {s}" for s in states_that_cannot_complete(chart)]
    return found
