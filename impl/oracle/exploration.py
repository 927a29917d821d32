"""The hook for part 2 of ``mqttref check``: the model exploration of ``tests/stateful``.

The conformance suite plays fixed scenarios. The stateful tests (issue 5) drive
many clients through random rule sequences and judge every observation with the
executable model. ``mqttref check`` runs that exploration against the target in
the budget the suite leaves, *when it is available*: it imports
``EXPLORER_MODULE`` and calls its ``explore`` function, which must have the
signature of ``Explorer``:

    def explore(host: str, port: int, *, budget: float, seed: int) -> ExplorationOutcome

It drives the broker at ``host:port`` for at most ``budget`` seconds and returns
the statement ids the model transitions it exercised cite (``covered``) and, for
each disagreement between broker and model, an ``ExplorationFailure`` with the
ids of the violated statements, the readable minimal sequence of client actions
and packets, and the seed that replays it. Until that module exists, the
exploration is reported as not run and the verdicts come from the suite alone.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Protocol, cast

import attrs

EXPLORER_MODULE = os.environ.get("MQTTREF_EXPLORER", "tests.stateful.explore")
"""Where ``explore`` lives; ``MQTTREF_EXPLORER`` names another module (importable from
the working directory, e.g. the repository root for ``tests.stateful``)."""


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


class Explorer(Protocol):
    def __call__(self, host: str, port: int, *, budget: float, seed: int) -> ExplorationOutcome:
        ...


def load_explorer(module_name: str = EXPLORER_MODULE) -> Explorer | str:
    """The ``explore`` function of ``module_name``, or why it cannot be had.

    The module is looked up on ``sys.path`` and then from the working directory,
    so that ``mqttref check`` run from the repository root finds ``tests.stateful``
    (a console script does not put the working directory on ``sys.path``).
    """
    try:
        module = importlib.import_module(module_name)
    except ImportError as first:
        cwd = os.getcwd()
        if cwd in sys.path:
            return f"{module_name} is not importable ({first})"
        sys.path.append(cwd)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            sys.path.remove(cwd)
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
    return ExplorationOutcome(
        ran=False,
        note=f"model exploration not available: {why} (the stateful tests of issue 5"
        " provide it; run from the repository root)",
    )
