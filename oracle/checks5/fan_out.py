"""One message, every matching subscription (4.5): the server that took ownership of a
QoS 1 message (its PUBACK) adds it to the session state of every client with a matching
subscription [MQTT-4.5.0-1], not only of one of them (that is what a shared subscription
does, 4.8.2, and none is made here).

Three clients subscribe: two to the topic itself, the third to a filter with '+' over it
(or, where the server declares wildcards unavailable, to the topic too). One QoS 1
message is published; each of the three must get it within the obligation bound.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import QoS, Subscription
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


@check5("MQTT-4.5.0-1",
        summary="a QoS 1 message the server acknowledged reaches every client whose"
        " subscription matches it: two with the topic as filter, one with a '+' over it")
async def every_matching_subscriber_v5(ctx: Context) -> None:
    if ctx.profile5.maximum_qos < 1:
        raise NotApplicable(f"declares Maximum QoS {ctx.profile5.maximum_qos}: a client may"
                            " send no QoS 1 PUBLISH [MQTT-3.2.2-11]")
    topic = ctx.topic("fanout", "t")
    wildcard = ctx.topic("fanout", "+") if ctx.profile5.wildcard_available else topic
    subscribers = []
    for name, topic_filter in (("one", topic), ("two", topic), ("wild", wildcard)):
        probe, _ = await connect5(ctx, name)
        # A QoS 0 delivery may be lost (4.3.1): only QoS 1 grants judge the statement.
        await subscribe5(probe, Subscription(topic_filter, Q1))
        subscribers.append((probe, topic_filter))
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, topic, b"to every subscriber", Q1)
    for probe, topic_filter in subscribers:
        async with ctx.scenario(f"delivered to {probe.name}"):  # each on its own
            await collect_until(probe, b"to every subscriber", f"(the server acknowledged"
                                f" the message, and {probe.name}'s subscription"
                                f" {topic_filter!r} matches it: it belongs to its session"
                                " state) [MQTT-4.5.0-1]")
