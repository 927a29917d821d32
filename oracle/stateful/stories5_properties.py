"""Level-5 property stories: what a server forwards of a PUBLISH's properties, and when.

A level-5 publisher's User Properties travel to every level-5 subscriber unaltered
and in their order [MQTT-3.3.2-17] [MQTT-3.3.2-18], and a copy that would exceed
a subscriber's Maximum Packet Size is not sent at all [MQTT-3.1.2-24] (discarded as
if delivered [MQTT-3.1.2-25]). The machine's single rules reach either only by
chance: ``publish5`` draws one short pair of User Properties or none, so no copy of
it exceeds the 60 bytes ``connect5`` may declare, and its subscribers are whoever
happens to be connected. ``a_size_limited_subscriber_takes_user_properties`` lines
them up: a subscriber that declares a small Maximum Packet Size (or none), and
messages to it whose User Properties are none, repeated, ordered or long, in a
drawn order. Hypothesis draws one rule among some twenty (and leaves some out of
an example altogether), so the story runs only a few times in a bounded hunt:
each run publishes every kind of message once, so that each run meets both sides
of the limit.

Nothing here knows a fault: the story is a client's ordinary use of User
Properties and of a Maximum Packet Size, with its options drawn at random. It
knows the machine only as a ``StoryMachine5``, so this module does not import the
machine (which mixes ``PropertyStories5`` in).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from mqttref.impl.codec.packets import QoS
from mqttref.oracle.stateful.stories import OVERLAPPING, client_ids, qos_levels
from mqttref.oracle.stateful.stories5 import StoryMachine5

UserProperties = tuple[tuple[str, str], ...]

SMALL_PACKET_LIMIT = 60
"""Bytes: the small Maximum Packet Size ``connect5`` also declares (``PACKET_SIZES``).
A copy here is 15 to 29 bytes before its User Properties (fixed header, a topic of
the example's prefix, a packet id, a Subscription Identifier, the payload ``m<n>``,
up to the 100 000th example of a process), so the repeated and ordered sets below
fit with 10 bytes or more to spare and the long one exceeds it by 28 bytes or more
(``test_stories5_properties``), whatever the QoS or identifier: no copy is
near the limit, where a byte more or less would decide."""
SIZE_LIMITS = (SMALL_PACKET_LIMIT, SMALL_PACKET_LIMIT, None)
"""The subscriber's Maximum Packet Size: mostly the small one, or none (every copy
owed, long User Properties included)."""

REPEATED: UserProperties = (("k", "1"), ("k", "2"))
"""One key twice with different values: their order is the only thing telling them
apart (3.3.2.3.7), 14 bytes."""
ORDERED: UserProperties = (("h", "1"), ("h", "2"), ("h", "3"))
"""A trace of three hops under one key, in order (21 bytes): fits the small limit."""
LONG: UserProperties = (
    ("k", "2"),
    ("k", "1"),
    ("note", "a note long enough that no 60-byte packet holds it"),
)
"""A repeated key and a long note (73 bytes): no copy of it fits the small limit."""
USER_PROPERTY_SETS: tuple[UserProperties, ...] = ((), REPEATED, ORDERED, LONG)



class PropertyStories5:
    """The level-5 property stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.free_slots() or self.connected_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        limit=st.sampled_from(SIZE_LIMITS),
        pair=st.sampled_from(OVERLAPPING),
        wildcard=st.booleans(),
        granted=qos_levels,
        identifier=st.sampled_from([None, 3]),
        order=st.permutations(USER_PROPERTY_SETS),
        qos=st.lists(qos_levels, min_size=len(USER_PROPERTY_SETS),
                     max_size=len(USER_PROPERTY_SETS)),
    )
    def a_size_limited_subscriber_takes_user_properties(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        client_id: str,
        limit: int | None,
        pair: tuple[str, str],
        wildcard: bool,
        granted: QoS,
        identifier: int | None,
        order: list[UserProperties],
        qos: list[QoS],
    ) -> Any:
        """A level-5 client connects with a small Maximum Packet Size (or none) and
        subscribes to a topic (or a wildcard over it), perhaps with an identifier; a
        level-5 client (another, or itself when no other is connected) publishes four
        messages on the topic, each at a QoS drawn for it, in a drawn order: one with
        no User Properties, one with a key repeated with two values, one with an
        ordered trace, one with a long note (so that under the small limit some
        copies fit and one does not). The server forwards each message's User
        Properties unaltered [MQTT-3.3.2-17] and in their order [MQTT-3.3.2-18], and
        sends no copy larger than the subscriber's Maximum Packet Size
        [MQTT-3.1.2-24]: it discards such a copy as if it had completed sending it
        [MQTT-3.1.2-25]. With no slot free, another client's connection drops first
        and the subscriber takes its slot, as in the will stories."""
        slot = self.choose(data, self.free_slots() or self.connected_slots(), "slot")
        others = [s for s in self.level5_slots() if s != slot]
        publisher = self.choose(data, others or [slot], "publisher")
        self.prepare()
        if not self.driver.free(slot):  # every slot taken (the group stories fill them)
            self.driver.drop(slot)
            self.driver.settle()
        self.send_connect5(
            slot, client_id, clean_start=True, expiry=None, receive_maximum=None,
            alias_maximum=None, packet_size=limit, will=None,
        )
        self.driver.settle()
        topic, over = pair
        self.send_subscribe5(
            slot, [(over if wildcard else topic, granted, (False, False, 0))],
            identifier=identifier,
        )
        self.driver.settle()
        if not self.driver.connected(publisher):  # taken over by the subscriber's CONNECT
            publisher = slot
        for level, user in zip(qos, order, strict=True):
            self.send_publish5(
                publisher, topic, qos=level, retain=False, expiry=None, user=user, alias=True
            )
        return self.step_done()


__all__ = ["SIZE_LIMITS", "USER_PROPERTY_SETS", "PropertyStories5"]
