"""Topic names, topic filters and matching (4.7).

What a server may choose here: to refuse wildcard filters [MQTT-3.8.3-2] or any
filter (0x80, [MQTT-3.8.4-5]), to keep topics beginning with '$' to itself
(4.7.2). A check that meets such a choice says so, NOT APPLICABLE, and judges
what is left. "Nothing arrived" is evidence only after a message that had to
arrive, published later, did.
"""

from __future__ import annotations

import time

from mqttref.impl.codec.packets import Packet, Publish, QoS
from mqttref.oracle import raw
from mqttref.oracle.checks.qos import _arrivals, _arrived, _far_id, _granted, _has
from mqttref.oracle.evidence import observe
from mqttref.oracle.flows import granted_text, publish, require, subscribe
from mqttref.oracle.probe import (
    Closed,
    Deviation,
    Garbled,
    NotApplicable,
    Probe,
    Received,
    describe,
)
from mqttref.oracle.scenario import Context, check

# filter (relative to the run's prefix P) -> topics it must match / must not match.
# Written out by hand from section 4.7, so that no matching code is trusted.
MATCHING = {
    "sport/tennis/+": (("sport/tennis/player1", "sport/tennis/"),
                       ("sport/tennis", "sport/tennis/player1/ranking", "sport/golf/x")),
    "sport/#": (("sport", "sport/tennis", "sport/tennis/player1/ranking", "sport/"),
                ("sports", "spor", "other/sport")),
    "+/tennis/#": (("sport/tennis", "sport/tennis/x/y", "/tennis"), ("sport/golf", "tennis")),
    "sport/+/player1": (("sport/tennis/player1", "sport//player1"),
                        ("sport/tennis/player2", "sport/player1")),
    "Finance": (("Finance",), ("finance", "FINANCE", "Finance/", "/Finance")),
    "a/b/c": (("a/b/c",), ("a/b", "a/b/c/d", "a/b/c ", "A/b/c")),
}

NORMALISED = {"finance", "FINANCE", "a/b/c ", "A/b/c"}
"""Topics of ``MATCHING`` that only a server that folds case or strips spaces
would match to the filter: matching them is a normalisation [MQTT-4.7.3-4]."""


@check("MQTT-3.3.2-3", "MQTT-4.5.0-1", "MQTT-4.7.3-4", "MQTT-4.7.1-1", "MQTT-3.3.2-2",
       summary="+ and # match by the rules of 4.7, case- and level-exact")
async def wildcard_matching(ctx: Context) -> None:
    """Each filter of ``MATCHING`` gets its own client and subtree. For each, the
    topics it must not match are published first, then those it must: every one
    of the latter must arrive [MQTT-4.5.0-1]; once they have, none of the former
    may have [MQTT-3.3.2-3], nor a case or space variant of a plain filter
    [MQTT-4.7.3-4]. What a wildcard filter delivers carries the topic name
    published to, never a wildcard [MQTT-4.7.1-1] [MQTT-3.3.2-2] (judged on what
    the server sends). A refused filter (wildcards are optional [MQTT-3.8.3-2]) is
    left out; if every filter is refused nothing is left to judge."""
    subs: dict[str, Probe] = {}
    refused: list[str] = []
    for n, pattern in enumerate(MATCHING):
        probe = await ctx.client(f"s{n}")
        topic_filter = ctx.topic(f"m{n}", pattern)
        (code,) = (await subscribe(probe, (topic_filter, QoS.AT_LEAST_ONCE),
                                   exact=False)).return_codes
        if code == 0x80:
            refused.append(granted_text(1, code, topic_filter))
            ctx.trace.note(refused[-1])
            continue
        subs[pattern] = probe
    if not subs:
        raise NotApplicable("; ".join(refused))
    if not any("+" in p or "#" in p for p in subs):
        ctx.ledger.chose(NotApplicable(
            "refuses every wildcard filter (allowed [MQTT-3.8.3-2]): no delivery through one"
            " shows the topic names it sends", "MQTT-4.7.1-1", "MQTT-3.3.2-2"))
    pub = await ctx.client("pub")
    for n, (pattern, (must, must_not)) in enumerate(MATCHING.items()):
        if pattern in subs:
            for topic in must_not + must:
                await publish(pub, ctx.topic(f"m{n}", topic), topic.encode(), QoS.AT_LEAST_ONCE)
    bound = ctx.timing.obligation_bound
    for pattern, probe in subs.items():
        must, must_not = MATCHING[pattern]
        received = await _arrivals(probe, _has(*(t.encode() for t in must)), bound)
        got = {m.payload.decode() for m in received}
        missing = sorted(set(must) - got)
        _arrived(not missing, probe.name, f"filter P/{pattern}: the messages to"
                 f" {['P/' + t for t in must]}" + (f" ({missing} missing)" if missing else ""),
                 bound)
        wild = [m.topic for m in received if "+" in m.topic or "#" in m.topic]
        if "+" in pattern or "#" in pattern:
            require(not wild, f"{probe.name}: a topic name sent by the server must not contain"
                    f" wildcard characters [MQTT-4.7.1-1] [MQTT-3.3.2-2]; got {wild}")
        extra = sorted(got - set(must))
        require(not [t for t in extra if t not in NORMALISED],
                f"{probe.name}: filter P/{pattern} must not match {['P/' + t for t in must_not]}"
                f" [MQTT-3.3.2-3]; got {extra}")
        if set(must_not) & NORMALISED:
            require(not extra, f"{probe.name}: filter P/{pattern} must not match the case or"
                    f" space variants {sorted(set(must_not) & NORMALISED)}: no normalisation"
                    f" [MQTT-4.7.3-4] [MQTT-3.3.2-3]; got {extra}")


@check("MQTT-4.7.2-1",
       summary="filters starting with # or + do not match topics starting with $")
async def dollar_topics_not_matched_by_wildcards(ctx: Context) -> None:
    """A message to '$<token>/check/t' must not reach the filters '#' and
    '+/check/t' [MQTT-4.7.2-1]. That is evidence only with two controls: a client
    subscribed to the $-topic by name receives the message (the server did take
    and route it: a server may keep '$' topics to itself, 4.7.2, which leaves the
    statement nothing to judge), and both wildcard subscribers receive a message
    on 'n<token>/check/t', published after it, that their filters match."""
    if not ctx.profile.wildcards:
        raise NotApplicable("refuses filters containing wildcards (allowed [MQTT-3.8.3-2])")
    dollar = f"${ctx.token}/check/t"
    normal = f"n{ctx.token}/check/t"
    exact = await ctx.client("exact")
    (code,) = (await subscribe(exact, (dollar, QoS.AT_MOST_ONCE), exact=False)).return_codes
    if code == 0x80:
        raise NotApplicable(granted_text(0, code, dollar) + ": it keeps $-topics to itself (4.7.2)")
    wild = {"#": await ctx.client("hash"), "+/check/t": await ctx.client("plus")}
    for topic_filter, probe in wild.items():
        await _granted(probe, (topic_filter, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, dollar, b"dollar", QoS.AT_LEAST_ONCE)
    await publish(pub, normal, b"control", QoS.AT_LEAST_ONCE)
    bound = ctx.timing.obligation_bound
    if not _has(b"dollar")(await _arrivals(exact, _has(b"dollar"), bound)):
        raise NotApplicable(f"does not deliver a client's PUBLISH to {dollar!r} even to a"
                            f" subscription naming it (nothing within {bound:.1f}s): it keeps"
                            " $-topics to itself (4.7.2)")
    for topic_filter, probe in wild.items():
        got = await _arrivals(probe, _has(b"control"), bound)
        _arrived(_has(b"control")(got), probe.name,
                 f"the message to {normal!r}, which the filter {topic_filter!r} matches", bound)
        leaked = sorted({m.topic for m in got if m.topic.startswith("$")})
        require(not leaked, f"{probe.name}: the filter {topic_filter!r} starts with a wildcard"
                f" and must not match topics beginning with '$' [MQTT-4.7.2-1], so a topic name"
                f" sent to it does not match its filter [MQTT-3.3.2-3]; got {leaked}")


@check("MQTT-4.7.3-4", "MQTT-1.5.3-3",
       summary="no normalisation: U+FEFF kept, NFC and NFD names are different topics")
async def topics_not_normalised(ctx: Context) -> None:
    """Four topics, four clients each subscribed to one of them by name: 'café'
    in NFC and in NFD, 'bom' with a leading U+FEFF and without. Each client gets
    the message to its own topic, with that topic name unchanged, and none of the
    others: NFC and NFD are not unified [MQTT-4.7.3-4], and U+FEFF is neither
    stripped from the name nor from the filter [MQTT-1.5.3-3]. Each client's own
    message, published last, is the control for "none of the others". A server
    refusing one of the filters (allowed [MQTT-3.8.4-5]) leaves nothing to judge."""
    topics = {"nfc": ctx.topic("caf\u00e9"), "nfd": ctx.topic("cafe\u0301"),
              "bom": ctx.topic("\ufeffbom"), "bare": ctx.topic("bom")}
    subs: dict[str, Probe] = {}
    for label, topic in topics.items():
        subs[label] = await ctx.client(label)
        await _granted(subs[label], (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    for label in ("nfd", "bom", "nfc", "bare"):
        await publish(pub, topics[label], label.encode(), QoS.AT_LEAST_ONCE)
    bound = ctx.timing.obligation_bound
    twin = {"nfc": "nfd", "nfd": "nfc", "bom": "bare", "bare": "bom"}
    for label, probe in subs.items():
        got = await _arrivals(probe, _has(label.encode()), bound)
        rule = "[MQTT-1.5.3-3]" if label in ("bom", "bare") else "[MQTT-4.7.3-4]"
        own = [m for m in got if m.payload == label.encode()]
        _arrived(bool(own), label, f"the message to its own topic {topics[label]!r}", bound,
                 "[MQTT-4.5.0-1]" if label in ("nfc", "bare") else rule)
        require(all(m.topic == topics[label] for m in own),
                f"{label}: the topic name must arrive as published, {topics[label]!r}"
                f" {rule}; got {[m.topic for m in own]!r}")
        other = twin[label]
        require(not any(m.payload == other.encode() for m in got),
                f"{label}: the filter {topics[label]!r} must not match {topics[other]!r}: no"
                f" normalisation, U+FEFF kept [MQTT-4.7.3-4] {rule}")


INVALID_FILTERS = ("a/#/b", "a+", "#a", "a/b#")
"""Filters that break section 4.7.1: '#' not last or not a whole level, '+' not a whole level."""


@check("MQTT-4.8.0-1",
       summary="invalid filters (a/#/b, a+, #a, a/b#): the connection is closed")
async def invalid_filters_refused(ctx: Context) -> None:
    """A filter that breaks 4.7.1 ('#' not last or not a whole level, '+' not a
    whole level) makes the SUBSCRIBE a protocol violation: the server must close
    the connection [MQTT-4.8.0-1]. A valid SUBSCRIBE answered first on the same
    connection shows the close is the violation's. A server that does not
    support wildcards must refuse wildcard filters [MQTT-3.8.3-2]: for it a 0x80
    refusal is the answer the spec states, and the check NOT APPLICABLE."""
    for n, bad in enumerate(INVALID_FILTERS):
        async with ctx.scenario(f"P/{bad}"):
            probe = await ctx.client(f"c{n}")
            await _granted(probe, (ctx.topic("valid", str(n)), QoS.AT_LEAST_ONCE))
            await probe.send(raw.subscribe(_far_id(ctx), (ctx.topic(bad), 1)),
                             f"SUBSCRIBE to P/{bad}")
            closed, seen = await _close_or_packets(probe, ctx.timing.reply_bound)
            answers = ", ".join(describe(p) for p in seen) or "nothing"
            if not closed and not ctx.profile.wildcards:
                raise NotApplicable(f"refuses wildcard filters (allowed [MQTT-3.8.3-2]) and"
                                    f" answered P/{bad} with {answers} instead of closing")
            if not closed:
                raise Deviation(f"c{n}: P/{bad} breaks section 4.7.1, a protocol violation: the"
                                " server must close the connection [MQTT-4.8.0-1]; still open"
                                f" after {ctx.timing.reply_bound:.1f}s, having answered {answers}")
            observe(f"c{n}: closed after a SUBSCRIBE to P/{bad}, a protocol violation, while a"
                    f" valid SUBSCRIBE was answered [MQTT-4.8.0-1]")


async def _close_or_packets(probe: Probe, bound: float) -> tuple[bool, list[Packet]]:
    """Whether the server closes within ``bound`` seconds, and what it sent first."""
    seen: list[Packet] = list(probe.pending)
    probe.pending = []
    deadline = time.monotonic() + bound
    while True:
        event = await probe.next_event(max(deadline - time.monotonic(), 0.0))
        if event is None:
            return False, seen
        if isinstance(event, Closed):
            return True, seen
        if isinstance(event, Garbled):
            raise Deviation(f"{probe.name}: the server sent malformed bytes: {event.error}")
        assert isinstance(event, Received)
        if not isinstance(event.packet, Publish):
            seen.append(event.packet)
