"""SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (3.8 - 3.11).

A refused filter (0x80) and a lower grant are choices the server may make
[MQTT-3.8.4-5] [MQTT-3.8.4-6]: what a SUBACK must look like is judged whatever
it grants, what is delivered is judged at what it granted, and a statement that
a choice leaves nothing to observe is NOT APPLICABLE, naming it.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import QoS, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe
from mqttref.oracle.checks.qos import (
    _arrivals,
    _arrived,
    _copies,
    _far_id,
    _granted,
    _has,
    _leaks_after_unsubscribe,
    _publishable,
)
from mqttref.oracle.evidence import observe
from mqttref.oracle.flows import publish, require, subscribe, summary
from mqttref.oracle.probe import Deviation, Inconclusive, NotApplicable, Probe, describe
from mqttref.oracle.scenario import Context, check


@check("MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-4", "MQTT-3.8.4-5", "MQTT-3.9.3-1",
       "MQTT-3.9.3-2", "MQTT-2.3.1-7",
       summary="one SUBSCRIBE, three filters: one SUBACK, same id, a code per filter in order")
async def suback_answers_each_filter(ctx: Context) -> None:
    """A SUBSCRIBE with three filters (QoS 0, 1, 2) is answered by one SUBACK
    [MQTT-3.8.4-1] [MQTT-3.8.4-4] with its packet id [MQTT-3.8.4-2] [MQTT-2.3.1-7] and
    one return code per filter [MQTT-3.8.4-5], each 0, 1, 2 or 0x80 [MQTT-3.9.3-2]:
    judged whatever is granted. Then a message to each filter's topic shows what
    each filter was really granted: the code must say it [MQTT-3.8.4-5], each filter
    is subscribed as if sent alone [MQTT-3.8.4-4], and the codes come in the order
    of the filters [MQTT-3.9.3-1] (observable only when the filters' outcomes
    differ). Refusing filters is allowed; refusing all leaves no delivery to judge."""
    probe = await ctx.client("c1")
    asked = (QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE)
    topics = [ctx.topic("sa", str(n)) for n in range(len(asked))]
    pid = _far_id(ctx)
    await probe.send(Subscribe(pid, tuple(Subscription(t, q)
                                          for t, q in zip(topics, asked, strict=True))))
    suback = await probe.expect(SubAck, "SUBACK for SUBSCRIBE [MQTT-3.8.4-1]")
    require(suback.packet_id == pid, f"c1: SUBACK id {suback.packet_id} must be the SUBSCRIBE's"
            f" id {pid} [MQTT-3.8.4-2] [MQTT-2.3.1-7]")
    more = [describe(p) for p in await probe.settle() if isinstance(p, SubAck)]
    require(not more, "c1: one SUBSCRIBE with three filters must be answered by a single SUBACK"
            f" [MQTT-3.8.4-4]; also got {more}")
    codes = suback.return_codes
    require(len(codes) == len(asked), f"c1: SUBACK return codes {codes} must hold one code per"
            f" filter ({len(asked)}) [MQTT-3.8.4-5]")
    require(all(code in (0, 1, 2, 0x80) for code in codes),
            f"c1: SUBACK return codes {codes} must each be 0, 1, 2 or 0x80 [MQTT-3.9.3-2]")
    if all(code == 0x80 for code in codes):
        raise NotApplicable(f"refuses all of {topics} with 0x80 (allowed [MQTT-3.8.4-5]): no"
                            " filter is subscribed, so no delivery shows what each return code"
                            " stands for", "MQTT-3.8.4-4", "MQTT-3.9.3-1")
    await _deliveries_match_codes(ctx, probe, topics, codes)


async def _deliveries_match_codes(ctx: Context, probe: Probe, topics: list[str],
                                  codes: tuple[int, ...]) -> None:
    """Publish to each topic (refused ones first, so that their silence is evidence
    once the granted ones have arrived) and compare what arrives with the codes."""
    published = _publishable(ctx)
    expected = [None if c == 0x80 else min(int(published), c) for c in codes]
    payloads = [f"to filter {n}".encode() for n in range(len(topics))]
    pub = await ctx.client("pub")
    order = sorted(range(len(topics)), key=lambda n: expected[n] is not None)
    for n in order:
        await publish(pub, topics[n], payloads[n], published)
    bound = ctx.timing.obligation_bound
    wanted = [payloads[n] for n in range(len(topics)) if expected[n] is not None]
    got = await _arrivals(probe, _has(*wanted), bound)
    observed: list[int | None] = []
    for payload in payloads:
        levels = {int(m.qos) for m in _copies(got, payload)}
        observed.append(levels.pop() if len(levels) == 1 else (None if not levels else -1))
    shown = ", ".join(f"filter {n}: code {c}, delivered {'nothing' if o is None else o}"
                      for n, (c, o) in enumerate(zip(codes, observed, strict=True)))
    if observed != expected and sorted(observed, key=str) == sorted(expected, key=str):
        raise Deviation(f"c1: the return codes are not in the order of the filters ({shown},"
                        f" published at QoS {int(published)}) [MQTT-3.9.3-1]")
    for n, (want, seen) in enumerate(zip(expected, observed, strict=True)):
        if want is not None and seen is None:
            raise Deviation(f"c1: filter {n} was granted QoS {codes[n]} but a message to"
                            f" {topics[n]!r} was not delivered within {bound:.1f}s: each filter"
                            " of a SUBSCRIBE must be subscribed as if sent alone [MQTT-3.8.4-4]")
    require(observed == expected, "c1: each return code must show the QoS granted to its filter,"
            f" or its failure [MQTT-3.8.4-5] ({shown}, published at QoS {int(published)});"
            " each filter subscribed as if sent alone [MQTT-3.8.4-4]")
    if len(set(expected)) < 2:
        raise NotApplicable(f"answers every filter alike ({shown}, allowed [MQTT-3.8.4-5]"
                            " [MQTT-3.8.4-6]): the order of the return codes cannot be told"
                            " apart", "MQTT-3.9.3-1")
    observe(f"c1: the filters' deliveries follow the return codes position by position"
            f" ({shown}) [MQTT-3.9.3-1]")


@check("MQTT-3.8.4-3", summary="subscribing again replaces the subscription (new QoS, one copy)")
async def resubscribe_replaces(ctx: Context) -> None:
    """A second SUBSCRIBE to the same filter replaces the subscription
    [MQTT-3.8.4-3]: a message then arrives once, at the QoS of the new grant. The
    first grant is the higher, so a server that kept or added to the old one
    delivers above the new grant or twice. Needs grants that lead to different
    QoS; a server granting QoS 0 to both leaves nothing to tell apart."""
    topic = ctx.topic("replace")
    sub = await ctx.client("sub")
    (first,) = await _granted(sub, (topic, QoS.EXACTLY_ONCE))
    (second,) = await _granted(sub, (topic, QoS.AT_MOST_ONCE))
    published = int(_publishable(ctx))
    if min(published, first) == min(published, second):
        raise NotApplicable(f"grants QoS {first} then QoS {second} to {topic!r} (allowed"
                            f" [MQTT-3.8.4-6]): at QoS {published} a replaced subscription"
                            " delivers like the old one")
    pub = await ctx.client("pub")
    await publish(pub, topic, b"once", QoS(published))
    bound = ctx.timing.obligation_bound
    copies = _copies(await _arrivals(sub, _has(b"once"), bound), b"once")
    _arrived(bool(copies), "sub", "the message", bound)
    expected = min(published, second)
    require([int(m.qos) for m in copies] == [expected],
            f"sub: subscribed at QoS {first}, then again at QoS {second}: the second must"
            f" replace the first [MQTT-3.8.4-3], so one copy at QoS {expected} arrives; got"
            f" {summary(copies)}")


@check("MQTT-3.10.4-1", "MQTT-3.10.4-2", "MQTT-3.10.4-4", "MQTT-3.10.4-5", "MQTT-3.10.4-6",
       "MQTT-2.3.1-7",
       summary="UNSUBSCRIBE: exact filter comparison, one UNSUBACK with the id, even for no match")
async def unsubscribe_flow(ctx: Context) -> None:
    """UNSUBSCRIBE compares filters character by character [MQTT-3.10.4-1]: '#',
    a topic that '+' matches, a case variant and a trailing '/' delete nothing, yet
    are answered by an UNSUBACK [MQTT-3.10.4-5] with the id [MQTT-3.10.4-4]
    [MQTT-2.3.1-7]. Then one UNSUBSCRIBE naming two filters exactly gets one UNSUBACK
    and deletes both [MQTT-3.10.4-6]; nothing more is added for them
    [MQTT-3.10.4-2], shown against a witness and a still-subscribed control.

    Each filter is subscribed in a SUBSCRIBE of its own, and each subscription
    (the subscriber's and the witness's) first delivers a message [MQTT-4.5.0-1]:
    only a subscription seen delivering before the UNSUBSCRIBE and not after it was
    deleted by it [MQTT-3.10.4-1]."""
    base = ctx.topic("unsub")
    plus, exact, control = base + "/+", base + "/k/a", base + "/z/ctl"
    probes = {plus: base + "/c", exact: base + "/k/a"}
    if not ctx.profile.wildcards:
        ctx.trace.note("the broker refuses wildcard filters: the '+' subscription is left out")
        del probes[plus]
    sub = await ctx.client("sub")
    for topic_filter in (*probes, control):
        await _granted(sub, (topic_filter, QoS.AT_LEAST_ONCE))
    witness = await ctx.client("witness")
    for topic in probes.values():
        await _granted(witness, (topic, QoS.AT_MOST_ONCE))
    pub = await ctx.client("pub")
    await _delivering(ctx, pub, {"sub": sub, "witness": witness}, probes)
    none_match = (base + "/#", base + "/c", base + "/k/A", base + "/k/a/")
    uid = _far_id(ctx)
    await sub.send(Unsubscribe(uid, none_match), "no filter equals a subscription's")
    ack = await sub.expect(UnsubAck, "UNSUBACK although no subscription was deleted"
                           " [MQTT-3.10.4-5]")
    require(ack.packet_id == uid, f"sub: UNSUBACK id {ack.packet_id} must be the UNSUBSCRIBE's"
            f" id {uid} [MQTT-3.10.4-4] [MQTT-2.3.1-7]")
    bound = ctx.timing.obligation_bound
    payloads = {f"still {n}".encode(): t for n, t in enumerate(probes.values())}
    for payload, topic in payloads.items():
        await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
    got = {m.payload for m in await _arrivals(sub, _has(*payloads), bound)}
    lost = sorted(t for p, t in payloads.items() if p not in got)
    _arrived(not lost, "sub", f"after an UNSUBSCRIBE of {list(none_match)}, none equal to a"
             f" filter of {list(probes)}, the messages to {sorted(payloads.values())}, whose"
             " subscriptions delivered before it,"
             + (f" ({lost} missing)" if lost else ""), bound,
             "(only filters equal character by character are deleted) [MQTT-3.10.4-1]")
    await _witnessed(ctx, witness, payloads)
    await _unsubscribe_both(ctx, sub, pub, witness, probes=probes, control=control)


async def _delivering(ctx: Context, pub: Probe, probes: dict[str, Probe],
                      topics: dict[str, str]) -> None:
    """A message to each topic of ``topics`` (filter -> topic) reaches every probe.

    Shows each subscription working before the check changes it: a message
    matching a subscription must be added to its session [MQTT-4.5.0-1].
    """
    bound = ctx.timing.obligation_bound
    payloads = {f"before {n}".encode(): t for n, t in enumerate(topics.values())}
    for payload, topic in payloads.items():
        await publish(pub, topic, payload, QoS.AT_LEAST_ONCE)
    for name, probe in probes.items():
        got = {m.payload for m in await _arrivals(probe, _has(*payloads), bound)}
        lost = sorted(t for p, t in payloads.items() if p not in got)
        _arrived(not lost, name, f"the messages to {sorted(payloads.values())}, which it"
                 " subscribes to" + (f" ({lost} missing)" if lost else ""), bound)


async def _witnessed(ctx: Context, witness: Probe, payloads: dict[bytes, str]) -> None:
    """Drain what the witness got so far (it must have got ``payloads``)."""
    bound = ctx.timing.obligation_bound
    seen = {m.payload for m in await _arrivals(witness, _has(*payloads), bound)}
    _arrived(set(payloads) <= seen, "witness", f"the messages to {sorted(payloads.values())}",
             bound)


async def _unsubscribe_both(ctx: Context, sub: Probe, pub: Probe, witness: Probe, *,
                            probes: dict[str, str], control: str) -> None:
    """One UNSUBSCRIBE naming the filters of ``probes`` (filter -> a topic only it
    matches; an unknown filter goes first when there is only one, so that a server
    handling only the first filter shows): one UNSUBACK, every filter deleted."""
    filters = list(probes)
    named = filters if len(filters) > 1 else [filters[0] + "/none", *filters]
    uid = _far_id(ctx)
    await sub.send(Unsubscribe(uid, tuple(named)))
    ack = await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    require(ack.packet_id == uid, f"sub: UNSUBACK id {ack.packet_id} must be the UNSUBSCRIBE's"
            f" id {uid} [MQTT-3.10.4-4] [MQTT-2.3.1-7]")
    more = [describe(p) for p in await sub.settle() if isinstance(p, UnsubAck)]
    require(not more, f"sub: one UNSUBSCRIBE naming {len(named)} filters must be answered by a"
            f" single UNSUBACK [MQTT-3.10.4-6]; also got {more}")
    leaked = await _leaks_after_unsubscribe(ctx, sub, pub, witness,
                                            topics=list(probes.values()), control=control)
    kept = [f for f in filters if probes[f] in leaked]
    if kept and named[0] not in kept:
        raise Deviation(f"sub: the UNSUBSCRIBE named {named}, yet {kept}, not its first filter,"
                        " still delivers: every filter of it must be handled as if sent alone"
                        " [MQTT-3.10.4-6]")
    # A subscription named exactly that still delivers was either not deleted
    # [MQTT-3.10.4-1] or deleted and still fed [MQTT-3.10.4-2]: no client can tell which.
    require(not leaked, f"sub: after UNSUBACK messages to {leaked} still arrive: a filter equal"
            " character by character deletes its subscription [MQTT-3.10.4-1], and the server"
            " must stop adding messages for deleted subscriptions [MQTT-3.10.4-2]")
    observe(f"sub: one UNSUBSCRIBE deleted every one of {filters} [MQTT-3.10.4-6]")


@check("MQTT-3.8.3-2",
       summary="a server that does not support wildcard filters refuses every one of them")
async def wildcard_subscription_support(ctx: Context) -> None:
    """"If the Server chooses not to support topic filters that contain wildcard
    characters it MUST reject any Subscription request whose filter contains them"
    [MQTT-3.8.3-2]. Three wildcard filters and a plain one, each subscribed by a
    client of its own in a SUBSCRIBE with that one filter (so that a server handling
    only the first filter of a SUBSCRIBE [MQTT-3.8.4-4], or keeping only a
    session's last SUBSCRIBE [MQTT-4.1.0-2], cannot look like one that grants
    wildcards without matching by them): a server that grants the wildcard filters
    and matches by them supports them (the statement is NOT APPLICABLE); one that
    refuses every wildcard filter while it grants the plain one meets it; one that
    grants a wildcard filter but does not match by it, while the plain filter
    delivers, neither supports it nor rejected it."""
    plain = ctx.topic("wplain")
    wild = {ctx.topic("wp", "+"): ctx.topic("wp", "x"), ctx.topic("wh", "#"):
            ctx.topic("wh", "y", "z"), ctx.topic("+", "wm"): ctx.topic("q", "wm")}
    clients: dict[str, Probe] = {}
    codes: dict[str, int] = {}
    for n, topic_filter in enumerate((*wild, plain)):
        clients[topic_filter] = probe = await ctx.client(f"c{n + 1}")
        suback = await subscribe(probe, (topic_filter, QoS.AT_MOST_ONCE), exact=False)
        codes[topic_filter] = suback.return_codes[0]
    if codes[plain] == 0x80:
        raise Inconclusive(f"the plain filter {plain!r} was refused too: the refusals say"
                           " nothing about wildcards")
    granted = [f for f in wild if codes[f] != 0x80]
    if not granted:
        observe(f"every wildcard filter {list(wild)} refused with 0x80 while the plain one"
                " was granted [MQTT-3.8.3-2]")
        return
    pub = await ctx.client("pub")
    for f in granted:
        await publish(pub, wild[f], f.encode(), QoS.AT_LEAST_ONCE)
    await publish(pub, plain, b"plain", QoS.AT_LEAST_ONCE)
    bound = ctx.timing.obligation_bound
    control = clients[plain]
    got = {m.payload for m in await _arrivals(control, _has(b"plain"), bound)}
    _arrived(b"plain" in got, control.name, f"the message to the plain filter {plain!r}", bound)
    unmatched = []
    for f in granted:
        if f.encode() not in {m.payload for m in await _arrivals(clients[f], _has(f.encode()),
                                                                   bound)}:
            unmatched.append(f)
    if unmatched:
        raise Deviation(f"granted {unmatched} but does not match"
                        f" {[wild[f] for f in unmatched]} by them (nothing within {bound:.1f}s),"
                        " while the plain filter delivers: a server that does not support"
                        " wildcard filters must refuse them [MQTT-3.8.3-2]")
    refused = [f for f in wild if f not in granted]
    raise NotApplicable("grants wildcard filters and matches by them"
                        + (f" (refusing {refused} with 0x80, allowed [MQTT-3.8.4-5])"
                           if refused else "")
                        + ": the statement binds servers that do not support them")
