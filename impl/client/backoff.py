"""Reconnection delays: exponential back-off with jitter, as a pure function.

Many clients that lost one broker at the same moment must not all come back
at the same instant, so each delay is drawn at random below an exponentially
growing ceiling ("equal jitter": half fixed, half random when ``jitter`` is
0.5). The random source is passed in so tests can pin it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mqttref.impl.client.errors import InvalidArgument


@attrs.frozen
class Backoff:
    """How to reconnect: ``initial * factor**attempt`` seconds, capped, with jitter."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    """Fraction of each delay that is random: 0 is none, 1 is "full jitter"."""
    max_attempts: int | None = None
    """Give up after this many failed attempts in a row; ``None`` never gives up."""

    def __attrs_post_init__(self) -> None:
        if not (0 <= self.initial <= self.maximum and self.factor >= 1 and 0 <= self.jitter <= 1):
            raise InvalidArgument("Backoff needs 0 <= initial <= maximum, factor >= 1, jitter 0..1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InvalidArgument("Backoff max_attempts must be at least 1")

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait before reconnection attempt number ``attempt`` (0-based).

        ``random()`` returns a float in [0, 1), like ``random.random``.
        """
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return ceiling * (1 - self.jitter * random())
