"""The model's own exception tree (it shares no logic with ``mqttref.impl``).

- ``ChartError``: a chart declaration is inconsistent (raised at import).
- ``NoTransition``: a ``(state, event)`` pair has no row in a chart's table,
  that is, the protocol forbids the event in that state.
- ``Violation``: an observation that the specification does not allow, or an
  obligation that was not met; it names the statements, what was allowed and
  what arrived, so that a failing test reads as a verdict.
- ``UsageError``: the harness drove the model in a way it cannot mean (acting
  on a client that has no connection, for example).
"""

from __future__ import annotations

from collections.abc import Sequence


class ModelError(Exception):
    """Root of every error the model raises."""


class ChartError(ModelError):
    """A chart names an undeclared state, event, guard or action."""


class UsageError(ModelError):
    """The model was driven with an event that cannot happen."""


class NoTransition(ModelError):
    """The chart has no row for this ``(state, event)`` pair: a protocol error."""

    def __init__(self, chart: str, state: str, event: str) -> None:
        self.chart = chart
        self.state = state
        self.event = event
        super().__init__(f"chart {chart!r}: no transition for event {event!r} in state {state!r}")


class Violation(ModelError):
    """The peer did something the specification does not allow, or failed to do
    something it requires.

    ``refs`` are the normative statement ids, ``allowed`` describes what the
    model would have accepted, ``arrived`` what was observed (``"nothing"`` for
    an unmet obligation).
    """

    def __init__(
        self,
        client: str,
        message: str,
        *,
        refs: Sequence[str],
        allowed: Sequence[str] = (),
        arrived: str = "nothing",
    ) -> None:
        self.client = client
        self.refs = tuple(refs)
        self.allowed = tuple(allowed)
        self.arrived = arrived
        self.detail = message
        ids = " ".join(f"[{r}]" for r in self.refs)
        allowed_text = "; ".join(self.allowed) if self.allowed else "nothing"
        super().__init__(
            f"client {client}: {message} {ids}\n  allowed: {allowed_text}\n  arrived: {arrived}"
        )
