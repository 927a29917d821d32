"""The hook for part 2 of ``mqttref check``: the model exploration.

The conformance suite plays fixed scenarios. The exploration
(``mqttref.oracle.stateful``, the same state machine that ``tests/stateful``
runs against the mqttref broker) drives many clients through random rule
sequences and judges every observation with the executable model. It needs
Hypothesis, an optional dependency (``pip install 'mqttref[check]'``): without
it ``mqttref check`` reports the exploration as not run, with that reason, and
the verdicts come from the suite alone.

An explorer has the signature of ``Explorer``:

    def explore(host: str, port: int, *, budget: float, seed: int,
                partial: Callable[[ExplorationOutcome], None] | None = None,
                ) -> ExplorationOutcome

It drives the broker at ``host:port`` for at most ``budget`` seconds and returns
the statement ids the model transitions it exercised cite (``covered``) and, for
each disagreement between broker and model, an ``ExplorationFailure`` with the
ids of the violated statements, the readable minimal sequence of client actions
and packets, and the seed that replays it. It hands ``partial`` the outcome so far
whenever it has one (after each round), so that a caller that has to stop it at
the budget keeps what it found.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Protocol, cast

import attrs

EXPLORER_MODULE = os.environ.get("MQTTREF_EXPLORER", "mqttref.oracle.stateful.explore")
"""Where ``explore`` lives; ``MQTTREF_EXPLORER`` names another importable module."""

EXPLORER5_MODULE = os.environ.get("MQTTREF_EXPLORER5", "mqttref.oracle.stateful.explore5")
"""Where the level-5 ``explore`` lives (``MQTTREF_EXPLORER5`` names another): it also
takes ``profile``, the ``BrokerProfile5`` the broker's CONNACK declared, and keeps to it."""

EXPLORERS = {"3.1.1": EXPLORER_MODULE, "5.0": EXPLORER5_MODULE}
"""The explorer module for each protocol ``mqttref check`` judges."""


@attrs.frozen
class ExplorationFailure:
    ids: tuple[str, ...]
    message: str
    trace: tuple[str, ...]
    seed: int


@attrs.frozen
class ExplorationOutcome:
    ran: bool
    note: str
    covered: tuple[str, ...] = ()
    failures: tuple[ExplorationFailure, ...] = ()
    seconds: float = 0.0
    inconclusive: tuple[ExplorationFailure, ...] = ()
    """Disagreements observed once that did not replay: no verdict (the note says so in
    a line), kept whole, transcript and all, for whoever looks into the broker's timing."""


class Explorer(Protocol):
    def __call__(
        self,
        host: str,
        port: int,
        *,
        budget: float,
        seed: int,
        partial: Callable[[ExplorationOutcome], None] | None = None,
    ) -> ExplorationOutcome: ...


def load_explorer(module_name: str = EXPLORER_MODULE) -> Explorer | str:
    """The ``explore`` function of ``module_name``, or why it cannot be had."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name == "hypothesis":
            return "it needs Hypothesis: pip install 'mqttref[check]'"
        return f"{module_name} is not importable ({exc})"
    explore = getattr(module, "explore", None)
    if not callable(explore):
        return f"{module_name} has no explore() function"
    return cast(Explorer, explore)


def find_explorer(module_name: str = EXPLORER_MODULE) -> Explorer | None:
    """The ``explore`` function of ``module_name``, or None when it is not importable."""
    found = load_explorer(module_name)
    return None if isinstance(found, str) else found


def not_available(module_name: str = EXPLORER_MODULE, reason: str = "") -> ExplorationOutcome:
    why = reason or f"{module_name}.explore is not importable"
    return ExplorationOutcome(ran=False, note=f"model exploration not run: {why}")
