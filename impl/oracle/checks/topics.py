"""Topic names, topic filters and matching (4.7)."""

from __future__ import annotations

from mqttref.impl.oracle import raw
from mqttref.impl.oracle.flows import deliveries, publish, require, subscribe
from mqttref.impl.oracle.probe import Closed, Received, describe
from mqttref.impl.oracle.scenario import Context, check
from mqttref.impl.packets import QoS, SubAck

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


@check("MQTT-3.3.2-3", "MQTT-4.5.0-1", "MQTT-4.7.3-4",
       summary="+ and # match by the rules of 4.7, case- and level-exact")
async def wildcard_matching(ctx: Context) -> None:
    # Each filter gets its own subtree, so it sees only the topics listed for it.
    subs = {}
    for n, pattern in enumerate(MATCHING):
        subs[pattern] = await ctx.subscriber(f"s{n}", (ctx.topic(f"m{n}", pattern),
                                                       QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    for n, (must, must_not) in enumerate(MATCHING.values()):
        for topic in must + must_not:
            await publish(pub, ctx.topic(f"m{n}", topic), topic.encode(),
                          QoS.AT_LEAST_ONCE)
    for pattern, (must, _) in MATCHING.items():
        received = await deliveries(subs[pattern], at_least=len(must))
        got = sorted(m.payload.decode() for m in received)
        extra, missing = sorted(set(got) - set(must)), sorted(set(must) - set(got))
        require(not extra, f"filter {pattern!r} (under the run's prefix) matched {extra}, which"
                " it must not [MQTT-3.3.2-3] [MQTT-4.7.3-4]")
        require(not missing, f"filter {pattern!r} (under the run's prefix) did not get {missing}"
                " [MQTT-4.5.0-1]")


@check("MQTT-4.7.2-1",
       summary="filters starting with # or + do not match topics starting with $")
async def dollar_topics_not_matched_by_wildcards(ctx: Context) -> None:
    dollar = f"${ctx.token}/check/t"
    everything = await ctx.client("hash")
    await subscribe(everything, ("#", QoS.AT_MOST_ONCE))
    plus = await ctx.subscriber("plus", ("+/check/t", QoS.AT_MOST_ONCE))
    exact = await ctx.subscriber("exact", (dollar, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    await publish(pub, dollar, b"dollar", QoS.AT_LEAST_ONCE)
    accepted = await deliveries(exact)
    ctx.trace.note(
        "the server " + ("delivered" if accepted else "did not deliver (allowed)")
        + f" a client's PUBLISH to {dollar!r}"
    )
    for probe in (everything, plus):
        leaked = [m.topic for m in await deliveries(probe) if m.topic.startswith("$")]
        require(not leaked, f"{probe.name}: wildcard filter matched $-topics {leaked}")


@check("MQTT-4.7.3-4", "MQTT-1.5.3-3",
       summary="no normalisation: U+FEFF kept, NFC and NFD names are different topics")
async def topics_not_normalised(ctx: Context) -> None:
    nfc, nfd = ctx.topic("caf\u00e9"), ctx.topic("cafe\u0301")
    bom = ctx.topic("\ufeffbom")
    sub_nfc = await ctx.subscriber("nfc", (nfc, QoS.AT_LEAST_ONCE))
    sub_any = await ctx.subscriber("any", (ctx.topic("+"), QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    for topic in (nfd, bom, nfc):
        await publish(pub, topic, topic.encode(), QoS.AT_LEAST_ONCE)
    got = [m.topic for m in await deliveries(sub_nfc, at_least=1)]
    require(got == [nfc], f"the NFC filter must match only the NFC name; got {got}")
    got = sorted(m.topic for m in await deliveries(sub_any, at_least=3))
    require(got == sorted([nfd, bom, nfc]),
            f"topic names must arrive unchanged (BOM kept, no normalisation); got {got!r}")


@check("MQTT-4.8.0-1",
       summary="invalid filters (a/#/b, a+, #a, a/b#): closed, or refused with 0x80; never granted")
async def invalid_filters_refused(ctx: Context) -> None:
    for n, bad in enumerate(("a/#/b", "a+", "#a", "a/b#")):
        probe = await ctx.client(f"c{n}")
        await probe.send(raw.subscribe(1, (ctx.topic(bad), 1)), f"SUBSCRIBE to P/{bad}")
        event = await probe.next_event(ctx.timing.reply_bound)
        if isinstance(event, Closed):
            continue
        require(isinstance(event, Received) and isinstance(event.packet, SubAck),
                f"P/{bad}: neither a close nor a SUBACK within the reply bound: {event}")
        assert isinstance(event, Received)
        require(event.packet == SubAck(1, (0x80,)),
                f"P/{bad} is not a valid filter: the server must close (or refuse it with 0x80);"
                f" it answered {describe(event.packet)}")
