"""Level-5 property stories: what a server forwards of a PUBLISH's properties, and when.

A level-5 publisher's User Properties travel to every level-5 subscriber unaltered
and in their order [MQTT-3.3.2-17] [MQTT-3.3.2-18], and a copy that would exceed
a subscriber's Maximum Packet Size is not sent at all [MQTT-3.1.2-24] (discarded as
if delivered [MQTT-3.1.2-25]). The machine's single rules reach either only by
chance: ``publish5`` draws one short pair of User Properties or none, so no copy of
it exceeds the 60 bytes ``connect5`` may declare, and its subscribers are whoever
happens to be connected. ``a_size_limited_subscriber_takes_user_properties`` lines
them up: a subscriber that declares a small Maximum Packet Size (or none), and a
few messages to it whose User Properties are short, ordered, repeated or long.

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

messages = st.lists(
    st.tuples(qos_levels, st.sampled_from(USER_PROPERTY_SETS)), min_size=2, max_size=3
)
"""Two or three messages, each at a QoS and with a set of User Properties."""


class PropertyStories5:
    """The level-5 property stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.free_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        limit=st.sampled_from(SIZE_LIMITS),
        pair=st.sampled_from(OVERLAPPING),
        wildcard=st.booleans(),
        granted=qos_levels,
        identifier=st.sampled_from([None, 3]),
        sent=messages,
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
        sent: list[tuple[QoS, UserProperties]],
    ) -> Any:
        """A level-5 client connects with a small Maximum Packet Size (or none) and
        subscribes to a topic (or a wildcard over it), perhaps with an identifier; a
        level-5 client (another, or itself when no other is connected) publishes two
        or three messages on the topic, with User Properties drawn for each: none, a
        key repeated with two values, an ordered trace, or a long note. The server
        forwards each message's User Properties unaltered [MQTT-3.3.2-17] and in
        their order [MQTT-3.3.2-18], and sends no copy larger than the subscriber's
        Maximum Packet Size [MQTT-3.1.2-24]: it discards such a copy as if it had
        completed sending it [MQTT-3.1.2-25]."""
        slot = self.choose(data, self.free_slots(), "slot")
        others = [s for s in self.level5_slots() if s != slot]
        publisher = self.choose(data, others or [slot], "publisher")
        self.prepare()
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
        for qos, user in sent:
            self.send_publish5(
                publisher, topic, qos=qos, retain=False, expiry=None, user=user, alias=True
            )
        return self.step_done()


__all__ = ["SIZE_LIMITS", "USER_PROPERTY_SETS", "PropertyStories5"]
