"""MQTT 5.0 UTF-8 Encoded Strings (1.5.4, 1.5.7) in the strings a PUBLISH carries: its
Topic Name (3.3.2.1), User Properties, Response Topic and Content Type (3.3.2.3).

The string rules bind whoever writes the string [MQTT-1.5.4-1] [MQTT-1.5.4-2]
[MQTT-1.5.7-1] [MQTT-3.3.2-1] [MQTT-3.3.2-13] [MQTT-3.3.2-19] [MQTT-4.7.3-2]. A server
writes such strings when it forwards a message, so it is judged as their writer twice:
a message whose strings hold letters beyond ASCII reaches a subscriber with each string
well-formed and unchanged (the probe's strict decoder refuses any other), and a PUBLISH
whose string is ill-formed or holds U+0000 is never forwarded (judged up to a control
message published after it, which the subscriber is owed). Received from a client, such
a string makes a Malformed Packet (1.5.4), on which the server must close
[MQTT-4.13.1-1]: that close is judged too, and cited on that statement alone.

The byte order mark 0xEF 0xBB 0xBF is a character like any other: a receiver must not
strip it [MQTT-1.5.4-3], so a topic holding it is another topic than the one without it.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Properties, QoS, Subscription
from mqttref.oracle import raw
from mqttref.oracle.checks5._steps import closes_unanswered, watcher
from mqttref.oracle.checks5.common import (
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe, describe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE
SURROGATE = b"\xed\xa0\x80"
"""U+D800 encoded as if it were a character: ill-formed UTF-8 [MQTT-1.5.4-1]."""
WRITER_RULES = ("[MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.7-1] [MQTT-3.3.2-1] [MQTT-3.3.2-13]"
                " [MQTT-3.3.2-19] [MQTT-4.7.3-2]")


def _user_property(name: bytes, value: bytes) -> bytes:
    return b"\x26" + raw.string(name) + raw.string(value)


@check5("MQTT-1.5.4-1", "MQTT-1.5.4-2", "MQTT-1.5.7-1", "MQTT-3.3.2-1", "MQTT-3.3.2-13",
        "MQTT-3.3.2-19", "MQTT-4.7.3-2",
        summary="the server forwards strings beyond ASCII well-formed and unchanged (topic,"
        " User Property, Response Topic, Content Type) and never forwards an ill-formed one"
        " or one holding U+0000, on which it closes the sender's connection")
async def utf8_strings_v5(ctx: Context) -> None:
    base = ctx.topic("utf8")
    good_topic = ctx.topic("utf8", "caf\u00e9", "\u65e5\u672c")
    prop = ctx.topic("utf8", "prop")
    watchers: dict[str, Probe | None] = {"topic": None}
    if ctx.profile5.wildcard_available:
        watchers["topic"] = await watcher(ctx, "watch", f"{base}/t/#")
    watchers["prop"] = await watcher(ctx, "pwatch", prop)
    async with ctx.scenario("well-formed strings beyond ASCII"):
        sub, _ = await connect5(ctx, "sub")
        await subscribe5(sub, Subscription(good_topic, Q1), exact=False)
        props = Properties(user_properties=(("cl\u00e9", "\u5024\U0001f600"),),
                           response_topic=ctx.topic("utf8", "r\u00e9ponse"),
                           content_type="text/plain; charset=\u00fc")
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, good_topic, b"letters", Q1, props=props)
        await publish5(pub, good_topic, b"end", Q1)
        before = await collect_until(sub, b"end", "(a message on the subscribed topic)"
                                     " [MQTT-3.3.4-1]")
        got = [m for m in before if m.payload == b"letters"]
        require(bool(got), "sub: the message published before the marker on the same topic"
                " must arrive before it [MQTT-3.3.4-1]")
        message = got[0]
        # Altered but well-formed is another statement's deviation: the one that says the
        # server forwards that string unaltered, each judged on its own.
        altered = [f"the {what} must arrive as published, {published!r}, got {forwarded!r}"
                   f" {rule}" for what, published, forwarded, rule in (
                       ("Topic Name", good_topic, message.topic, "[MQTT-3.3.2-3]"),
                       ("User Property", props.user_properties,
                        message.properties.user_properties, "[MQTT-3.3.2-17]"),
                       ("Response Topic", props.response_topic,
                        message.properties.response_topic, "[MQTT-3.3.2-15]"),
                       ("Content Type", props.content_type, message.properties.content_type,
                        "[MQTT-3.3.2-20]"))
                   if forwarded != published]
        require(not altered, "sub: " + "; ".join(altered))
        require(True, "sub: the forwarded Topic Name, User Property, Response Topic and Content"
                f" Type beyond ASCII arrived well-formed and unchanged {WRITER_RULES}")
    cases: dict[str, tuple[bytes, bytes, str]] = {
        "ill-formed topic name": (
            base.encode() + b"/t/bad" + SURROGATE, b"\x00", "a Topic Name holding the encoding"
            " of U+D800"),
        "topic name with U+0000": (
            base.encode() + b"/t/nul\x00x", b"\x00", "a Topic Name holding U+0000"),
        "ill-formed User Property name": (
            prop.encode(), raw.properties(_user_property(b"k" + SURROGATE, b"v")),
            "a User Property whose name holds the encoding of U+D800"),
        "User Property value with U+0000": (
            prop.encode(), raw.properties(_user_property(b"k", b"v\x00")),
            "a User Property whose value holds U+0000"),
        "ill-formed Response Topic": (
            prop.encode(), raw.properties(b"\x08" + raw.string(b"r" + SURROGATE)),
            "a Response Topic holding the encoding of U+D800"),
        "ill-formed Content Type": (
            prop.encode(), raw.properties(b"\x03" + raw.string(b"text\xff")),
            "a Content Type holding the byte 0xFF"),
    }
    for label, (topic, props_block, what) in cases.items():
        async with ctx.scenario(label):
            bad, _ = await connect5(ctx, "bad")
            await bad.send(raw.publish5(topic, f"bad {label}".encode(), props=props_block),
                           note=f"QoS 0 PUBLISH with {what}")
            await closes_unanswered(bad, f"({what} makes a Malformed Packet, 1.5.4)"
                                    " [MQTT-4.13.1-1]")
    for group, control, what, rules in (
            ("topic", f"{base}/t/ok", "a Topic Name ill-formed or holding U+0000",
             "[MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-3.3.2-1] [MQTT-4.7.3-2]"),
            ("prop", prop, "a User Property, Response Topic or Content Type ill-formed or"
             " holding U+0000",
             "[MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.7-1] [MQTT-3.3.2-13] [MQTT-3.3.2-19]")):
        async with ctx.scenario(f"none forwarded ({group})"):
            watching = watchers[group]
            if watching is None:
                raise NotApplicable("declares Wildcard Subscription Available 0 in CONNACK"
                                    " (3.2.2.3.11): no subscription matches every bad topic"
                                    " name", "MQTT-3.3.2-1", "MQTT-4.7.3-2")
            pub, _ = await connect5(ctx, "ctl")
            await publish5(pub, control, b"control", Q1)
            before = await collect_until(watching, b"control", "(a message on a topic the"
                                         " watcher subscribes to) [MQTT-3.3.4-1]")
            forwarded = [describe(m) for m in before if m.payload.startswith(b"bad ")]
            if forwarded:  # its strings decoded, so repaired: the missed close is judged above
                ctx.trace.note(f"{watching.name}: forwarded with well-formed strings:"
                               f" {forwarded}")
            require(True, f"{watching.name}: no PUBLISH with {what} reached the subscriber"
                    f" before the control message published after them {rules}")


def _unmarked(text: str) -> str:
    return text.replace("\ufeff", "")


@check5("MQTT-1.5.4-3",
        summary="a byte order mark in a topic or a User Property is kept: the topic with it"
        " is another topic than the one without")
async def byte_order_mark_kept_v5(ctx: Context) -> None:
    marked, plain = ctx.topic("bom", "\ufeffx"), ctx.topic("bom", "x")
    with_mark, _ = await connect5(ctx, "marked")
    await subscribe5(with_mark, Subscription(marked, Q1), exact=False)
    without, _ = await connect5(ctx, "plain")
    await subscribe5(without, Subscription(plain, Q1), exact=False)
    pub, _ = await connect5(ctx, "pub")
    pair = ("\ufeffkey", "\ufeffvalue")
    await publish5(pub, marked, b"marked", Q1, props=Properties(user_properties=(pair,)))
    await publish5(pub, plain, b"plain", Q1)
    await publish5(pub, marked, b"end", Q1)
    # The subscriber without the mark first: the marked message reaching it is the stripping
    # seen, where the marked subscriber's wait for it would only see an absence.
    before = await collect_until(without, b"plain", "(a message on the subscribed topic)"
                                 " [MQTT-3.3.4-1]")
    require(all(m.payload != b"marked" for m in before), f"plain: the message published to"
            f" {marked!r} reached the subscriber of {plain!r}: the byte order mark was stripped"
            " [MQTT-1.5.4-3]")
    got = [m for m in await collect_until(with_mark, b"end", "(a message on the subscribed"
                                          " topic, byte order mark included) [MQTT-3.3.4-1]")
           if m.payload == b"marked"]
    require(bool(got), f"marked: the message published to {marked!r} must reach its"
            " subscriber: the byte order mark is part of the topic [MQTT-1.5.4-3]")
    message = got[0]
    # The mark stripped is 1.5.4-3's deviation; any other change is that of the statement
    # that says the string is forwarded unaltered (the filter is the exact marked topic).
    judged: tuple[tuple[str, object, object, object, str], ...] = (
        ("Topic Name", marked, message.topic, _unmarked(marked), "[MQTT-3.3.2-3]"),
        ("User Property", (pair,), message.properties.user_properties,
         ((_unmarked(pair[0]), _unmarked(pair[1])),), "[MQTT-3.3.2-17]"))
    for what, published, forwarded, stripped, unaltered in judged:
        if forwarded == published:
            require(True, f"marked: the {what} {forwarded!r} kept its byte order mark"
                    " [MQTT-1.5.4-3]")
            continue
        rule = "[MQTT-1.5.4-3]" if forwarded == stripped else unaltered
        require(False, f"marked: the {what} {forwarded!r} must arrive as published,"
                f" {published!r}, byte order mark included {rule}")
