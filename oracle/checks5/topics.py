"""MQTT 5.0 topic matching taken literally: an UNSUBSCRIBE removes only the filter it
names character for character (3.10.4), and matching never normalises a Unicode string
(4.7.3).

An absence is judged up to a marker the subscriber is owed, published after it on a
topic it subscribes to.
"""

from __future__ import annotations

import unicodedata

from mqttref.impl.codec.packets import Publish, QoS, Subscription, UnsubAck, Unsubscribe
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Received
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


@check5("MQTT-3.10.4-1",
        summary="an UNSUBSCRIBE of a filter that only matches or resembles a subscription"
        " (a wildcard over it, another letter case) leaves that subscription in place")
async def unsubscribe_exact_filter_v5(ctx: Context) -> None:
    topic = ctx.topic("unsub", "Kept")
    sub, _ = await connect5(ctx, "sub")
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    near = [ctx.topic("unsub", "kept")]
    if ctx.profile5.wildcard_available:
        near += [ctx.topic("unsub", "+"), ctx.topic("unsub", "#")]
    packet_id = sub.new_packet_id()
    await sub.send(Unsubscribe(packet_id, tuple(near)), note="filters close to, not equal to,"
                   " the subscription's")
    await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, topic, b"still", Q1)
    await collect_until(sub, b"still", f"(the subscription {topic!r} is not among the"
                        f" filters {near} unsubscribed: compared character by character)"
                        " [MQTT-3.10.4-1]")


@check5("MQTT-4.7.3-4",
        summary="a filter and a topic name equal only after Unicode normalisation, or only"
        " when letter case is ignored, do not match")
async def no_normalisation_v5(ctx: Context) -> None:
    composed = ctx.topic("norm", unicodedata.normalize("NFC", "caf\u00e9"))
    decomposed = ctx.topic("norm", unicodedata.normalize("NFD", "caf\u00e9"))
    # Topic Names and Topic Filters are case sensitive (4.7.3): folding case is a
    # normalisation too.
    upper = ctx.topic("norm", "CAF\u00c9")
    if composed == decomposed:  # never: the NFD form of U+00E9 is two code points
        raise NotApplicable("no distinct normal forms to compare")
    sub, _ = await connect5(ctx, "sub")
    await subscribe5(sub, Subscription(composed, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, decomposed, b"decomposed", Q1)
    await publish5(pub, upper, b"upper", Q1)
    await publish5(pub, composed, b"composed", Q1)
    before = await collect_until(sub, b"composed", "(a message on the subscribed topic,"
                                 " byte for byte) [MQTT-4.7.3-4]")
    require(all(m.payload != b"decomposed" for m in before), "sub: a message whose topic equals"
            " the filter only after Unicode normalisation (NFD against NFC) must not match it"
            " [MQTT-4.7.3-4]")
    require(all(m.payload != b"upper" for m in before), f"sub: a message on {upper!r}, equal"
            f" to the filter {composed!r} only when letter case is ignored, must not match it"
            " [MQTT-4.7.3-4]")


@check5("MQTT-4.7.2-1",
        summary="a filter starting with '+' does not match a topic name starting with '$'")
async def dollar_topics_v5(ctx: Context) -> None:
    if not ctx.profile5.wildcard_available:
        raise NotApplicable("declares Wildcard Subscription Available 0 in CONNACK"
                            " (3.2.2.3.11)")
    tail = f"dollar{ctx.token}"
    dollar, plain = f"$mqttref{ctx.token}/{tail}", f"mqttref{ctx.token}/{tail}"
    exact, _ = await connect5(ctx, "exact")
    await subscribe5(exact, Subscription(dollar, Q1), exact=False)
    wild, _ = await connect5(ctx, "wild")
    await subscribe5(wild, Subscription(f"+/{tail}", Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, dollar, b"dollar", Q1)
    # The server's own $ topics need not take a client's message; only if the exact
    # subscriber gets it is there a message for the wildcard to (not) match.
    event_bound = exact.timing.obligation_bound
    got = await exact.next_event(event_bound)
    if got is None or not isinstance(got, Received) or not isinstance(got.packet, Publish):
        raise NotApplicable(f"does not route a client's message on {dollar!r} to its exact"
                            " subscriber (topics starting with $ are the server's, 4.7.2)")
    await publish5(pub, plain, b"plain", Q1)
    before = await collect_until(wild, b"plain", f"(a message on {plain!r}, which '+/{tail}'"
                                 " matches) [MQTT-3.3.4-1]")
    require(all(m.payload != b"dollar" for m in before), f"wild: the filter '+/{tail}' must not"
            f" match the topic {dollar!r}, which starts with '$' [MQTT-4.7.2-1]")
