"""Level-5 message stories: the retained messages a SUBSCRIBE brings, and with what.

At 5.0 a SUBSCRIBE says, per subscription, whether it wants the retained messages
its filter matches (Retain Handling 0: always; 1: only if the subscription is new
[MQTT-3.3.1-10]; 2: never [MQTT-3.3.1-11]), and the copies it gets carry the
SUBSCRIBE's Subscription Identifier like any other [MQTT-3.3.4-3]. The single
rules of ``BrokerMachine5`` reach this only by chance: a retained message must be
stored on a topic first, a level-5 client must then subscribe to a filter over it
with the right options, and Retain Handling 1 tells anything only when the same
filter is subscribed again. ``a_retained_message_meets_a_subscriber`` lines the
three up: a client's ordinary use of retained messages and Retain Handling, its
options drawn at random; nothing here knows a fault.

What the story uses of the machine is ``StoryMachine5``, as in ``stories5``.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from mqttref.impl.codec.packets import QoS
from mqttref.oracle.stateful.stories import OVERLAPPING, TOPICS, qos_levels
from mqttref.oracle.stateful.stories5 import Options5, StoryMachine5, publish_any_level

RETAINED_IDENTIFIERS = (4, 5)
"""Subscription Identifiers of this story's own (the single rules send 1 and 2), so
that a transcript tells its SUBSCRIBEs' copies from those of earlier ones."""

retain_handlings = st.sampled_from([0, 1, 2])


@attrs.frozen
class Resubscription:
    """What the story's client asks of its two SUBSCRIBEs to one filter: each with
    its Retain Handling, Retain As Published and Subscription Identifier (the second
    perhaps none, replacing the first's [MQTT-3.8.4-3]), at its maximum QoS."""

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


def retained_then_subscribed_twice(
    machine: StoryMachine5, publisher: str, subscriber: str, retained: list[tuple[str, QoS]],
    subscription: Resubscription,
) -> None:
    """``publisher`` publishes each of ``retained`` (topic, QoS) with RETAIN 1;
    ``subscriber`` (level 5) subscribes to ``subscription``'s filter, and then again to
    the same filter. Each SUBSCRIBE owes the matching retained messages as its Retain
    Handling says [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11], each copy carrying
    that SUBSCRIBE's identifier [MQTT-3.3.4-3] and RETAIN 1 (3.3.1.3)."""
    for topic, qos in retained:
        publish_any_level(machine, publisher, topic, qos, retain=True, expiry=None)
    machine.driver.settle()
    for n, identifier in enumerate(subscription.identifiers):
        machine.send_subscribe5(subscriber, subscription.request(n), identifier=identifier)
        machine.driver.settle()


class MessageStories5:
    """The level-5 message stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        pair=st.sampled_from(OVERLAPPING),
        wildcard=st.booleans(),
        also=st.none() | st.sampled_from(TOPICS),
        qos=st.lists(qos_levels, min_size=2, max_size=2),
        no_local=st.booleans(),
        granted=st.tuples(qos_levels, qos_levels),
        as_published=st.tuples(st.booleans(), st.booleans()),
        handling=st.tuples(retain_handlings, retain_handlings),
        identifiers=st.tuples(
            st.sampled_from(RETAINED_IDENTIFIERS),
            st.sampled_from((None, *RETAINED_IDENTIFIERS)),
        ),
    )
    def a_retained_message_meets_a_subscriber(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        pair: tuple[str, str],
        wildcard: bool,
        also: str | None,
        qos: list[QoS],
        no_local: bool,
        granted: tuple[QoS, QoS],
        as_published: tuple[bool, bool],
        handling: tuple[int, int],
        identifiers: tuple[int, int | None],
    ) -> Any:
        """A client (3.1.1 or 5.0, perhaps the subscriber itself) publishes a retained
        message on a topic, and perhaps one on another topic; a level-5 client
        subscribes to the topic, or a wildcard over it, with a Subscription Identifier,
        a Retain Handling and Retain As Published drawn, and then subscribes to the same
        filter again, with a Retain Handling drawn again and the same identifier,
        another or none. Retain Handling 0 sends the matching retained messages at
        every SUBSCRIBE [MQTT-3.3.1-9], 1 only when the subscription did not exist
        [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11]; each copy sent carries that
        SUBSCRIBE's identifier [MQTT-3.3.4-3]."""
        subscriber = self.choose(data, self.level5_slots(), "subscriber")
        publisher = self.choose(data, self.connected_slots(), "publisher")
        topic, over = pair
        retained = [(topic, qos[0])] + ([(also, qos[1])] if also and also != topic else [])
        subscription = Resubscription(
            over if wildcard else topic, no_local, granted, as_published, handling, identifiers
        )
        self.prepare()
        retained_then_subscribed_twice(self, publisher, subscriber, retained, subscription)
        return self.step_done()


__all__ = ["MessageStories5", "Resubscription", "retained_then_subscribed_twice"]
