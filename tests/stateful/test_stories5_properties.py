"""The property story's User Property sets sit far from its subscriber's size limit.

``a_size_limited_subscriber_takes_user_properties`` means each set of User
Properties to be either owed to a subscriber whose Maximum Packet Size is
``SMALL_PACKET_LIMIT`` or too large for it, whatever else the copy carries (the
example's prefix, the QoS, a Subscription Identifier, the payload's number). A set
within a few bytes of the limit would make the story test the byte count of the
broker and of the model instead of what it is about. Sizes are the model's
``publish_size``, written from the text of 3.3 [MQTT-3.1.2-24].
"""

from __future__ import annotations

import itertools

import pytest

from mqttref.impl.codec.packets import Properties, Publish, QoS
from mqttref.model.level5_publish import publish_size
from mqttref.oracle.stateful.stories import OVERLAPPING
from mqttref.oracle.stateful.stories5_properties import (
    LONG,
    ORDERED,
    REPEATED,
    SMALL_PACKET_LIMIT,
    USER_PROPERTY_SETS,
    UserProperties,
)

MARGIN = 5
"""Bytes every copy keeps from the limit, on one side or the other."""
PREFIXES = ("x0000" + "0", "xffff" + "99999")
"""The machine's example prefix (``x``, four hex digits, the example's number): its
shortest, and one of a process that has run 100 000 examples."""
PAYLOADS = (b"m1", b"m99999")


def copy_sizes(user: UserProperties) -> list[int]:
    """The size of every PUBLISH the story's subscriber may be sent with ``user``: on
    each topic it publishes on, at each QoS, with or without its identifier."""
    topics = {topic for topic, _ in OVERLAPPING}
    return [
        publish_size(Publish(
            topic.replace("~", prefix), payload, qos, packet_id=1 if qos else None,
            properties=Properties(user_properties=user, subscription_identifiers=ids),
        ))
        for topic, prefix, payload, qos, ids in itertools.product(
            topics, PREFIXES, PAYLOADS, QoS, ((), (3,))
        )
    ]


@pytest.mark.parametrize("user", [(), REPEATED, ORDERED], ids=["none", "repeated", "ordered"])
def test_a_short_set_of_user_properties_fits_the_small_limit_with_room_to_spare(
    user: UserProperties,
) -> None:
    assert max(copy_sizes(user)) <= SMALL_PACKET_LIMIT - MARGIN


def test_the_long_set_of_user_properties_exceeds_the_small_limit_in_every_copy() -> None:
    assert min(copy_sizes(LONG)) >= SMALL_PACKET_LIMIT + MARGIN


def test_the_sets_repeat_a_key_whose_values_only_their_order_tells_apart() -> None:
    """A reordering of User Properties shows only where a set has two or more, and a
    repeated key is where order carries meaning (3.3.2.3.7) [MQTT-3.3.2-18]."""
    repeated = [
        user for user in USER_PROPERTY_SETS
        if len({key for key, _ in user}) < len(user) and tuple(reversed(user)) != user
    ]
    assert REPEATED in repeated
    assert LONG in repeated
