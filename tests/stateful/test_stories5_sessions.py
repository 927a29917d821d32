"""The session story (``stories5_sessions``) with its choices made by hand.

c1 (level 5) is connected on s1 to publish; c0 (level 5) connects on s0 with a
Session Expiry Interval, subscribes to ``~/a`` at QoS 1, perhaps restarts (a new
connection on s2 takes its session over), goes away, two QoS 1 messages are
published to it (one with a Message Expiry Interval of 1 s, one without), time
passes and c0 returns with Clean Start 0. The unbroken broker passes each
variant; a broker that forwards the expired message is caught naming
[MQTT-3.3.2-5], one that keeps the session past its interval [MQTT-3.2.2-3] or
[MQTT-4.1.0-2], one whose takeover DISCONNECT carries a Session Expiry Interval
[MQTT-3.14.2-2]. Each run waits ``AWAY_WAIT`` (2.3 s).
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import QoS
from mqttref.oracle.stateful.driver import Disagreement
from mqttref.oracle.stateful.machine5 import machine5_for
from mqttref.oracle.stateful.stories5_sessions import Absence, away_and_back
from mqttref.oracle.stateful.target import Timing
from tests.stateful.faults5 import BEYOND_CI5, FAULTS5
from tests.stateful.inprocess import InProcessTarget

NEVER = 0xFFFFFFFF
MESSAGES = ((QoS.AT_LEAST_ONCE, 1), (QoS.AT_LEAST_ONCE, None))


def run_story(expiry: int, ending: str, *, restarts: bool = False) -> None:
    """The story on s0 (second connection s2) with c1 on s1 publishing."""
    machine = machine5_for(InProcessTarget(timing=Timing(patience=1.0)))()
    try:
        machine.send_connect5(
            "s1", "c1", clean_start=True, expiry=None, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        machine.step_done()
        absence = Absence(expiry, "~/a", QoS.AT_LEAST_ONCE, restarts, ending, MESSAGES)
        away_and_back(machine, "s0", "c0", absence, second="s2", publisher="s1")
        machine.step_done()
    finally:
        machine.teardown()


def refs_found_under(fault_name: str, monkeypatch: pytest.MonkeyPatch, expiry: int,
                     ending: str, *, restarts: bool = False) -> set[str]:
    """The statements the machine names when the story meets the broken broker."""
    fault = next(f for f in (*FAULTS5, *BEYOND_CI5) if f.name == fault_name)
    fault.inject(monkeypatch)
    with pytest.raises(Disagreement) as caught:
        run_story(expiry, ending, restarts=restarts)
    return set(caught.value.refs)


@pytest.mark.parametrize(
    ("expiry", "ending", "restarts"),
    [(NEVER, "dropped", False), (NEVER, "DISCONNECT", True), (1, "DISCONNECT", False),
     (1, "dropped", True)],
)
def test_the_unbroken_broker_passes(expiry: int, ending: str, restarts: bool) -> None:
    run_story(expiry, ending, restarts=restarts)


def test_an_expired_message_forwarded_on_return_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "MQTT-3.3.2-5" in refs_found_under(
        "expired_message_forwarded", monkeypatch, NEVER, "dropped"
    )


def test_a_session_kept_past_its_expiry_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    refs = refs_found_under("session_kept_past_expiry", monkeypatch, 1, "DISCONNECT")
    assert {"MQTT-3.2.2-3", "MQTT-4.1.0-2"} & refs


def test_a_takeover_disconnect_with_a_session_expiry_interval_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs = refs_found_under(
        "expiry_in_server_disconnect", monkeypatch, NEVER, "dropped", restarts=True
    )
    assert "MQTT-3.14.2-2" in refs
