"""The broker with level-5 clients beside 3.1.1 ones, explored by ``BrokerMachine5``
and judged by the model: every packet and close the model allows, nothing owed
missing. A bounded number of examples and steps (CI time); ``MQTTREF_STATEFUL_EXAMPLES``
runs it longer.

The machine's verdicts can fail: a broker patched to ignore No Local is caught by
the same driver and model, naming [MQTT-3.8.3-3], and the unpatched broker passes
the same client actions.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import pytest
from hypothesis.stateful import run_state_machine_as_test

from mqttref.impl.broker.connection_base import ConnectionBase
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.packets import Connect, Disconnect, Properties, ProtocolLevel, QoS
from mqttref.oracle.stateful.driver import Disagreement
from mqttref.oracle.stateful.machine5 import BrokerMachine5, machine5_for
from mqttref.oracle.stateful.settings import machine_settings, shrinking_limited_to
from mqttref.oracle.stateful.target import Timing
from tests.stateful.inprocess import InProcessTarget

EXAMPLES = 6
STEPS = 15


def test_level_5_and_3_1_1_clients_get_only_what_the_model_allows_and_all_it_owes() -> None:
    examples = int(os.environ.get("MQTTREF_STATEFUL_EXAMPLES", EXAMPLES))
    with shrinking_limited_to(float(os.environ.get("MQTTREF_SHRINK_SECONDS", "60"))):
        machine = machine5_for(InProcessTarget())
        how = machine_settings("ci", max_examples=examples, stateful_step_count=STEPS)
        run_state_machine_as_test(machine, settings=how)


def own_message_under_no_local(machine: BrokerMachine5) -> None:
    """c0 (level 5) subscribes to ~/a with No Local and publishes to ~/a at QoS 1."""
    machine.send_connect5(
        "s0", "c0", clean_start=True, expiry=None, receive_maximum=None,
        alias_maximum=None, packet_size=None, will=None,
    )
    machine.step_done()
    machine.send_subscribe5("s0", [("~/a", QoS.AT_LEAST_ONCE, (True, False, 0))], identifier=None)
    machine.step_done()
    machine.send_publish5(
        "s0", "~/a", qos=QoS.AT_LEAST_ONCE, retain=False, expiry=None, user=(), alias=False
    )
    machine.step_done()


def run_directly(story: Any) -> None:
    """One machine, its rules' helpers called in order (no Hypothesis), torn down;
    a held observation is judged after one second, not three."""
    machine = machine5_for(InProcessTarget(timing=Timing(patience=1.0)))()
    try:
        story(machine)
    finally:
        machine.teardown()


def test_a_broker_honouring_no_local_passes_the_own_message_story() -> None:
    run_directly(own_message_under_no_local)


def test_a_broker_ignoring_no_local_is_caught_naming_mqtt_3_8_3_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault: the session forwards the client's own messages whatever No Local says."""
    original = Session._by_options

    def ignoring_no_local(
        self: Session, message: Any, qos: QoS, identifiers: tuple[int, ...],
        options: dict[str, Any],
    ) -> Any:
        stripped = {f: attrs.evolve(o, no_local=False) for f, o in options.items()}
        return original(self, message, qos, identifiers, stripped)

    monkeypatch.setattr(Session, "_by_options", ignoring_no_local)
    with pytest.raises(Disagreement) as caught:
        run_directly(own_message_under_no_local)
    assert "MQTT-3.8.3-3" in caught.value.refs


def subscribed_at_level_5(machine: BrokerMachine5) -> None:
    """c0 connects at level 5 and subscribes to ~/a."""
    machine.send_connect5(
        "s0", "c0", clean_start=True, expiry=None, receive_maximum=None,
        alias_maximum=None, packet_size=None, will=None,
    )
    machine.step_done()
    machine.send_subscribe5("s0", [("~/a", QoS.AT_LEAST_ONCE, (False, False, 0))], identifier=1)
    machine.step_done()


def test_a_broker_writing_a_longer_remaining_length_than_needed_is_caught_naming_1_5_5_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault: a level-5 SUBACK's Remaining Length written in two bytes where one
    does [MQTT-1.5.5-1]. The model judges each level-5 frame's bytes (``frames``)
    before the driver decodes it, so the verdict is the model's and names the
    statement (the decoder, the implementation's own, refused it unattributed)."""
    original = ConnectionBase.send_frame

    def padded(self: ConnectionBase, frame: bytes) -> None:
        if self.terms is not None and frame[0] == 0x90 and frame[1] < 0x80:
            frame = bytes((frame[0], frame[1] | 0x80, 0x00)) + frame[2:]
        original(self, frame)

    monkeypatch.setattr(ConnectionBase, "send_frame", padded)
    with pytest.raises(Disagreement) as caught:
        run_directly(subscribed_at_level_5)
    assert caught.value.refs == ("MQTT-1.5.5-1",)


def test_the_unbroken_broker_passes_the_subscription_story() -> None:
    run_directly(subscribed_at_level_5)


def no_local_after_a_3_1_1_resumption(machine: BrokerMachine5) -> None:
    """c2 subscribes to ~/+ with No Local at level 5 (session never expires), leaves
    with DISCONNECT, resumes the session at 3.1.1 and publishes to ~/b at QoS 0."""
    machine.send_connect5(
        "s0", "c2", clean_start=False, expiry=0xFFFFFFFF, receive_maximum=None,
        alias_maximum=None, packet_size=None, will=None,
    )
    machine.step_done()
    machine.send_subscribe5("s0", [("~/+", QoS.AT_MOST_ONCE, (True, False, 0))], identifier=None)
    machine.step_done()
    machine.driver.send("s0", Disconnect())
    machine.driver.drop("s0")
    machine.step_done()
    machine.driver.send(
        "s1", Connect(ProtocolLevel.MQTT_3_1_1, machine.full_client_id("c2"), False, 0)
    )
    machine.step_done()
    machine.send_publish("s1", "~/b", QoS.AT_MOST_ONCE)
    machine.step_done()


def test_no_local_holds_after_a_3_1_1_connection_resumes_the_level_5_session() -> None:
    run_directly(no_local_after_a_3_1_1_resumption)


def handed_over_at_the_next_members_qos(machine: BrokerMachine5) -> None:
    """c3 (granted QoS 1) and c2 (granted QoS 2) share a group; c2 publishes a QoS 2
    message twice, c3 gets one at QoS 1 and ends its session without a PUBACK."""
    for slot, client_id in (("s3", "c3"), ("s4", "c2")):
        machine.send_connect5(
            slot, client_id, clean_start=True, expiry=0xFFFFFFFF, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        machine.step_done()
    machine.send_subscribe5("s3", [("$share/g/~/a", QoS.AT_LEAST_ONCE, (False, False, 0))],
                            identifier=None)
    machine.send_subscribe5("s4", [("$share/g/~/a", QoS.EXACTLY_ONCE, (False, False, 0))],
                            identifier=None)
    machine.step_done()
    for _ in range(2):
        machine.send_publish5(
            "s4", "~/a", qos=QoS.EXACTLY_ONCE, retain=False, expiry=None, user=(), alias=False
        )
    machine.step_done()
    machine.driver.send("s3", Disconnect(0x00, Properties(session_expiry_interval=0)))
    machine.driver.drop("s3")
    machine.step_done()


def test_a_shared_message_handed_over_goes_at_the_next_members_own_qos() -> None:
    """[MQTT-4.8.2-3]: the member that gets the message when another's session ended
    gets it at its own granted QoS (2), not at the QoS (1) the first member was sent
    (the broker handed over the first member's downgraded copy; found by the level-5
    group story)."""
    run_directly(handed_over_at_the_next_members_qos)
