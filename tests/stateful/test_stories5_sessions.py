"""The session story (``stories5_sessions``) with its choices made by hand.

c2 (level 5) is connected on s1 to publish; c0 (a session that never expires) and
c1 (one of 1 s) connect in turn on s0, subscribe to ``~/a`` at QoS 1, perhaps restart
(a new connection on s2 takes the session over), go away; two QoS 1 messages are
published to them (one with a Message Expiry Interval of 1 s, one without), time
passes and both return with Clean Start 0. The unbroken broker passes each
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
from tests.stateful.faults5 import FAULTS5
from tests.stateful.inprocess import InProcessTarget

NEVER = 0xFFFFFFFF
MESSAGES = ((QoS.AT_LEAST_ONCE, 1), (QoS.AT_LEAST_ONCE, None))


def run_story(ending: str, *, restarts: bool = False, second: str = "s2") -> None:
    """The story on s0 (restarts on ``second``) with c2 on s1 publishing."""
    machine = machine5_for(InProcessTarget(timing=Timing(patience=1.0)))()
    try:
        machine.send_connect5(
            "s1", "c2", clean_start=True, expiry=None, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        machine.step_done()
        absence = Absence("~/a", QoS.AT_LEAST_ONCE, restarts, ending, MESSAGES)
        clients = (("c0", NEVER), ("c1", 1))
        away_and_back(machine, ("s0", second), clients, absence, publisher="s1")
        machine.step_done()
    finally:
        machine.teardown()


def refs_found_under(fault_name: str, monkeypatch: pytest.MonkeyPatch, ending: str, *,
                     restarts: bool = False) -> set[str]:
    """The statements the machine names when the story meets the broken broker."""
    fault = next(f for f in FAULTS5 if f.name == fault_name)
    fault.inject(monkeypatch)
    with pytest.raises(Disagreement) as caught:
        run_story(ending, restarts=restarts)
    return set(caught.value.refs)


@pytest.mark.parametrize(
    ("ending", "restarts", "second"),
    [("dropped", False, "s2"), ("DISCONNECT", True, "s2"), ("DISCONNECT", False, "")],
)
def test_the_unbroken_broker_passes(ending: str, restarts: bool, second: str) -> None:
    """``second`` "": one slot only, so the first client back goes again before the
    second returns."""
    run_story(ending, restarts=restarts, second=second)


def test_an_expired_message_forwarded_on_return_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "MQTT-3.3.2-5" in refs_found_under(
        "expired_message_forwarded", monkeypatch, "dropped"
    )


def test_a_session_kept_past_its_expiry_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    refs = refs_found_under("session_kept_past_expiry", monkeypatch, "DISCONNECT")
    assert {"MQTT-3.2.2-3", "MQTT-4.1.0-2"} & refs


def test_a_takeover_disconnect_with_a_session_expiry_interval_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs = refs_found_under(
        "expiry_in_server_disconnect", monkeypatch, "dropped", restarts=True
    )
    assert "MQTT-3.14.2-2" in refs
