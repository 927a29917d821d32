"""Level-5 message stories: the retained messages a SUBSCRIBE brings, and with what.

At 5.0 a SUBSCRIBE says, per subscription, whether it wants the retained messages
its filter matches (Retain Handling 0: always; 1: only if the subscription is new
[MQTT-3.3.1-10]; 2: never [MQTT-3.3.1-11]), and the copies it gets carry the
SUBSCRIBE's Subscription Identifier like any other [MQTT-3.3.4-3]. The single
rules of ``BrokerMachine5`` reach this only by chance: a retained message must be
stored on a topic first, a level-5 client must then subscribe to a filter over it
with the right options, and Retain Handling 1 tells anything only when the same
filter is subscribed again. Two stories line the three up (``RetainedPlan``), for
a level-5 client already connected and for one that comes for them: Hypothesis
enables each rule in some examples only (swarm testing), and one such story came
up in none of a seed's twelve examples. Each is a client's ordinary use of
retained messages and Retain Handling, its options drawn at random; nothing here
knows a fault.

What the stories use of the machine is ``StoryMachine5``, as in ``stories5``.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from mqttref.impl.codec.packets import QoS
from mqttref.oracle.stateful.stories import CLIENT_IDS, OVERLAPPING, TOPICS, qos_levels
from mqttref.oracle.stateful.stories5 import Options5, StoryMachine5, publish_any_level

RETAINED_IDENTIFIERS = (4, 5)
"""Subscription Identifiers of these stories' own (the single rules send 1 and 2), so
that a transcript tells their SUBSCRIBEs' copies from those of earlier ones."""


@attrs.frozen
class Resubscription:
    """What the client asks of its two SUBSCRIBEs to one filter: each with its Retain
    Handling, Retain As Published and Subscription Identifier (the second perhaps
    none, replacing the first's [MQTT-3.8.4-3]), at its maximum QoS."""

    topic_filter: str
    no_local: bool
    granted: tuple[QoS, QoS]
    as_published: tuple[bool, bool]
    handling: tuple[int, int]
    identifiers: tuple[int, int | None]

    def request(self, n: int) -> list[tuple[str, QoS, Options5]]:
        """The ``n``-th SUBSCRIBE's one request (0: the first, 1: the second)."""
        options = (self.no_local, self.as_published[n], self.handling[n])
        return [(self.topic_filter, self.granted[n], options)]


@attrs.frozen
class RetainedPlan:
    """The retained messages (topic, QoS) published first, then the two SUBSCRIBEs."""

    retained: tuple[tuple[str, QoS], ...]
    subscription: Resubscription


def _plan(
    pair: tuple[str, str], wildcard: bool, also: str | None, qos: tuple[QoS, QoS],
    subscription: tuple[bool, tuple[QoS, QoS], tuple[bool, bool], tuple[int, int],
                        tuple[int, int | None]],
) -> RetainedPlan:
    """A retained message on a topic (and perhaps one on another), then SUBSCRIBEs to
    that topic or to a wildcard over it."""
    topic, over = pair
    retained = ((topic, qos[0]),) + (((also, qos[1]),) if also and also != topic else ())
    return RetainedPlan(retained, Resubscription(over if wildcard else topic, *subscription))


retain_handlings = st.sampled_from([0, 1, 2])
plans = st.builds(
    _plan,
    pair=st.sampled_from(OVERLAPPING),
    wildcard=st.booleans(),
    also=st.none() | st.sampled_from(TOPICS),
    qos=st.tuples(qos_levels, qos_levels),
    subscription=st.tuples(
        st.booleans(),
        st.tuples(qos_levels, qos_levels),
        st.tuples(st.booleans(), st.booleans()),
        st.tuples(retain_handlings, retain_handlings),
        st.tuples(
            st.sampled_from(RETAINED_IDENTIFIERS),
            st.sampled_from((None, *RETAINED_IDENTIFIERS)),
        ),
    ),
)
"""The stories' drawn choices: topics, QoS, No Local, and per SUBSCRIBE the maximum
QoS, Retain As Published, Retain Handling and identifier."""


def retained_then_subscribed_twice(
    machine: StoryMachine5, publisher: str, subscriber: str, plan: RetainedPlan
) -> None:
    """``publisher`` publishes each of ``plan``'s retained messages with RETAIN 1;
    ``subscriber`` (level 5) subscribes to its filter, and then again to the same
    filter. Each SUBSCRIBE owes the matching retained messages as its Retain Handling
    says [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11], each copy carrying that
    SUBSCRIBE's identifier [MQTT-3.3.4-3] and RETAIN 1 (3.3.1.3)."""
    for topic, qos in plan.retained:
        publish_any_level(machine, publisher, topic, qos, retain=True, expiry=None)
    machine.driver.settle()
    for n, identifier in enumerate(plan.subscription.identifiers):
        request = plan.subscription.request(n)
        machine.send_subscribe5(subscriber, request, identifier=identifier)
        machine.driver.settle()


class MessageStories5:
    """The level-5 message stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.level5_slots())
    @rule(data=st.data(), plan=plans)
    def a_retained_message_meets_a_subscriber(
        self: StoryMachine5, data: st.DataObject, plan: RetainedPlan
    ) -> Any:
        """A client (3.1.1 or 5.0) publishes a retained message on a topic, and
        perhaps one on another topic; a level-5 client subscribes to the topic, or a
        wildcard over it, with a Subscription Identifier, a Retain Handling and Retain
        As Published drawn, and then subscribes to the same filter again, with a Retain
        Handling drawn again and the same identifier, another or none. Retain Handling
        0 sends the matching retained messages at every SUBSCRIBE [MQTT-3.3.1-9], 1
        only when the subscription did not exist [MQTT-3.3.1-10], 2 never
        [MQTT-3.3.1-11]; each copy sent carries that SUBSCRIBE's identifier
        [MQTT-3.3.4-3]. The publisher is another client where there is one: a retained
        copy of the subscriber's own message under No Local and Retain Handling 2 is
        judged by the model as its own message forwarded [MQTT-3.8.3-3], a reading
        it tries before Retain Handling's."""
        subscriber = self.choose(data, self.level5_slots(), "subscriber")
        others = [s for s in self.connected_slots() if s != subscriber]
        publisher = self.choose(data, others or [subscriber], "publisher")
        self.prepare()
        retained_then_subscribed_twice(self, publisher, subscriber, plan)
        return self.step_done()

    @precondition(lambda self: self.free_slots() and self.connected_slots())
    @rule(data=st.data(), plan=plans)
    def a_newcomer_subscribes_to_retained_messages(
        self: StoryMachine5, data: st.DataObject, plan: RetainedPlan
    ) -> Any:
        """``a_retained_message_meets_a_subscriber`` with a subscriber that has just
        come: a connected client publishes the retained messages, and a level-5 client
        connects with Clean Start 1 (under a client id no connected client uses, where
        one is left) and subscribes twice. Its session is new, so its first
        subscription is too: Retain Handling 0 and 1 both owe the retained messages
        there [MQTT-3.3.1-9] [MQTT-3.3.1-10], with the identifier [MQTT-3.3.4-3]."""
        slot = self.choose(data, self.free_slots(), "slot")
        publisher = self.choose(data, self.connected_slots(), "publisher")
        unused = [
            c for c in CLIENT_IDS if self.driver.slot_of(self.full_client_id(c)) is None
        ]
        client_id = self.choose(data, unused or CLIENT_IDS, "client id")
        self.prepare()
        self.send_connect5(
            slot, client_id, clean_start=True, expiry=None, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        self.driver.settle()
        retained_then_subscribed_twice(self, publisher, slot, plan)
        return self.step_done()


__all__ = ["MessageStories5", "Resubscription", "RetainedPlan", "retained_then_subscribed_twice"]
