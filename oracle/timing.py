"""How long the oracle waits for the broker under test.

A probe never sleeps blindly: it waits for an event with a generous bound, or for
*quiescence* (nothing arrives for a window). Every figure here is scaled by
``Timing.multiplier`` so a loaded machine can be given more room, and a deadline the
specification itself states gets one measurement margin on top.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Timing:
    """How long the oracle waits; every figure is multiplied by ``multiplier``."""

    quiet: float = 0.3
    """Quiescence window: this long without an arrival means nothing more is coming."""
    reply: float = 5.0
    """Upper bound for a reply the specification requires (CONNACK, SUBACK, a close)."""
    multiplier: float = 1.0
    margin: float = 0.5
    """The one measurement margin added to a deadline the specification itself
    states (one and a half times the keep alive [MQTT-3.1.2-24]): network and
    scheduling delay between the broker's act and our observation of it."""
    obligation: float = 3.0
    """How long the oracle waits for something owed with no deadline in the spec
    (a re-send on reconnect, a queued message): absence is reported as "not
    within N s", never judged after a bare quiescence window."""

    close_lag: float = 1.0
    """How long the close may lag behind the server's own DISCONNECT. Sending it, the
    server has read, decided and acted (a code of 0x80 or above announces the close
    [MQTT-4.13.2-1]); the close is the rest of that act, so only network and scheduling
    delay remain, twice the margin. The reply bound is for a server still to decide."""

    @property
    def close_lag_bound(self) -> float:
        return self.close_lag * self.multiplier

    def spec_deadline(self, seconds: float) -> float:
        """A deadline the specification states, plus the measurement margin."""
        return seconds + self.margin * self.multiplier

    @property
    def obligation_bound(self) -> float:
        return self.obligation * self.multiplier

    @property
    def window(self) -> float:
        return self.quiet * self.multiplier

    @property
    def reply_bound(self) -> float:
        return self.reply * self.multiplier

    def bound(self, seconds: float) -> float:
        return seconds * self.multiplier

