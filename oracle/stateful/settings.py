"""How long a hunt runs: Hypothesis settings, budgets and the shrink limit for the machine.

One place for what the tests (``MQTTREF_PROFILE``, ``MQTTREF_STATEFUL_EXAMPLES``),
the fault hunts and ``mqttref check`` tune when they run the broker machine; the
machine itself knows nothing of how long it is run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture import engine

BUDGETS: dict[str, tuple[int, int]] = {
    "dev": (10, 25),
    "ci": (40, 30),
    "thorough": (400, 60),
}
"""Profile -> (max_examples, stateful_step_count) for the exploration test;
``MQTTREF_STATEFUL_EXAMPLES`` overrides the number of examples."""


def profile_name() -> str:
    return os.environ.get("MQTTREF_PROFILE", "dev")


def machine_settings(profile: str | None = None, **overrides: Any) -> settings:
    """Settings for the broker machine under a Hypothesis profile (see conftest)."""
    name = profile or profile_name()
    max_examples, steps = BUDGETS.get(name, BUDGETS["dev"])
    max_examples = int(os.environ.get("MQTTREF_STATEFUL_EXAMPLES", max_examples))
    values: dict[str, Any] = {
        "max_examples": max_examples,
        "stateful_step_count": steps,
        "deadline": None,
        "suppress_health_check": list(HealthCheck),
        "print_blob": True,
        "derandomize": name == "ci",
    }
    values.update(overrides)
    return settings(**values)


@contextlib.contextmanager
def shrinking_limited_to(seconds: float) -> Iterator[None]:
    """Bound Hypothesis's shrink phase (normally up to 5 minutes) for one search:
    every shrink step here replays real network traffic."""
    saved = engine.MAX_SHRINKING_SECONDS
    engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


__all__ = ["BUDGETS", "machine_settings", "profile_name", "shrinking_limited_to"]
