"""The retained-message story (``stories5_messages``) with its choices made by hand.

A retained message on ``~/a``, then a level-5 client subscribing twice to ``~/+``:
the unbroken broker passes each Retain Handling; a broker that sends the retained
copy without the SUBSCRIBE's Subscription Identifier is caught naming
[MQTT-3.3.4-3] or [MQTT-3.3.4-5], one that ignores Retain Handling naming [MQTT-3.3.1-11] (2: none)
or [MQTT-3.3.1-10] (1: none for an existing subscription).
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.packets import QoS, Subscribe
from mqttref.oracle.stateful.driver import Disagreement
from mqttref.oracle.stateful.machine5 import machine5_for
from mqttref.oracle.stateful.stories5_messages import (
    Resubscription,
    RetainedPlan,
    retained_then_subscribed_twice,
)
from mqttref.oracle.stateful.target import Timing
from tests.stateful.inprocess import InProcessTarget


def run_story(handling: tuple[int, int], identifiers: tuple[int, int | None] = (4, 5)) -> None:
    """c0 (level 5) on s0 publishes ~/a retained at QoS 1 and subscribes to ~/+ twice
    at QoS 1, Retain As Published 1, with ``handling`` and ``identifiers``."""
    machine = machine5_for(InProcessTarget(timing=Timing(patience=1.0)))()
    try:
        machine.send_connect5(
            "s0", "c0", clean_start=True, expiry=None, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        machine.step_done()
        subscription = Resubscription(
            "~/+", False, (QoS.AT_LEAST_ONCE, QoS.AT_LEAST_ONCE), (True, True), handling,
            identifiers,
        )
        plan = RetainedPlan((("~/a", QoS.AT_LEAST_ONCE),), subscription)
        retained_then_subscribed_twice(machine, "s0", "s0", plan)
        machine.step_done()
    finally:
        machine.teardown()


@pytest.mark.parametrize("handling", [(0, 0), (1, 1), (2, 2), (0, 1), (1, 0), (2, 0)])
def test_the_unbroken_broker_passes_every_retain_handling(handling: tuple[int, int]) -> None:
    run_story(handling)


def test_a_retained_copy_without_the_identifier_is_caught_naming_3_3_4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fault: the retained messages a SUBSCRIBE brings go without its identifier.
    The model sees a retained copy as one of several the message makes (3.3.4-5),
    the copy published as the subscription's result (3.3.4-3): either names it."""
    original = Registry.send_retained

    def send_retained(self: Registry, *args: Any) -> None:
        session, topic_filter, granted, now = args[:4]  # the identifier (5th) left out
        original(self, session, topic_filter, granted, now, None)

    monkeypatch.setattr(Registry, "send_retained", send_retained)
    with pytest.raises(Disagreement) as caught:
        run_story((0, 0), (4, None))
    assert {"MQTT-3.3.4-3", "MQTT-3.3.4-5"} & set(caught.value.refs)


@pytest.mark.parametrize(
    ("handling", "ref"), [((2, 2), "MQTT-3.3.1-11"), ((0, 1), "MQTT-3.3.1-10")]
)
def test_a_broker_ignoring_retain_handling_is_caught(
    monkeypatch: pytest.MonkeyPatch, handling: tuple[int, int], ref: str,
) -> None:
    """The fault: every subscription is taken as Retain Handling 0 (send at every
    SUBSCRIBE): a retained copy under 2, or under 1 for a subscription that existed."""
    original = Registry.on_subscribe

    def on_subscribe(self: Registry, session: Session, packet: Subscribe, now: float) -> None:
        every = tuple(attrs.evolve(s, retain_handling=0) for s in packet.subscriptions)
        original(self, session, attrs.evolve(packet, subscriptions=every), now)

    monkeypatch.setattr(Registry, "on_subscribe", on_subscribe)
    with pytest.raises(Disagreement) as caught:
        run_story(handling)
    assert ref in caught.value.refs
