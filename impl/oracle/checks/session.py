"""Sessions across connections: CleanSession, stored state, redelivery (3.1.2.4, 4.1, 4.4)."""

from __future__ import annotations

from mqttref.impl.oracle.flows import (
    deliveries,
    first_packet_is_connack,
    publish,
    require,
    subscribe,
    summary,
)
from mqttref.impl.oracle.probe import describe
from mqttref.impl.oracle.scenario import V311, Context, check
from mqttref.impl.packets import (
    Connect,
    Disconnect,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
)


@check("MQTT-3.2.2-2", "MQTT-3.2.2-3", "MQTT-3.2.2-1", "MQTT-3.1.2-4", "MQTT-3.1.2-6",
       "MQTT-3.1.4-3",
       summary="session present: 0 for a new session, 1 when resumed, 0 after clean session 1")
async def session_present_flag(ctx: Context) -> None:
    cid = ctx.client_id("sp")
    first = await ctx.client("c1", cid, clean=False, session_present=False)
    await subscribe(first, (ctx.topic("sp"), QoS.AT_LEAST_ONCE))  # state worth storing
    await first.send(Disconnect())
    second = await ctx.client("c2", cid, clean=False, session_present=True)
    await second.send(Disconnect())
    third = await ctx.client("c3", cid, clean=True, session_present=False)
    await third.send(Disconnect())
    fourth = await ctx.client("c4", cid, clean=False, session_present=False)
    await fourth.send(Disconnect())


@check("MQTT-3.1.2-4", "MQTT-3.1.2-5", "MQTT-4.1.0-1", "MQTT-3.1.3-2", "MQTT-4.5.0-1",
       summary="persistent session: subscriptions kept, QoS 1 and 2 messages queued offline")
async def persistent_session_queues_messages(ctx: Context) -> None:
    cid = ctx.client_id("ps")
    t1, t2, t0 = ctx.topic("ps", "q1"), ctx.topic("ps", "q2"), ctx.topic("ps", "q0")
    sub = await ctx.subscriber("sub", (t1, QoS.AT_LEAST_ONCE), (t2, QoS.EXACTLY_ONCE),
                               (t0, QoS.AT_MOST_ONCE), client_id=cid, clean=False)
    await sub.send(Disconnect())
    await sub.wait_close()
    pub = await ctx.client("pub")
    await publish(pub, t1, b"offline qos1", QoS.AT_LEAST_ONCE)
    await publish(pub, t2, b"offline qos2", QoS.EXACTLY_ONCE)
    await publish(pub, t0, b"offline qos0", QoS.AT_MOST_ONCE)
    back = await ctx.client("sub2", cid, clean=False, session_present=True)
    got = summary(await deliveries(back))
    kept = [g for g in got if g[0] != t0]
    queued = [(t1, b"offline qos1", 1, False), (t2, b"offline qos2", 2, False)]
    require(sorted(kept) == sorted(queued),
            "the resumed session must deliver the queued QoS 1 and 2 messages [MQTT-3.1.2-5];"
            f" got {got}")
    await publish(pub, t1, b"live again", QoS.AT_LEAST_ONCE)
    live = summary(await deliveries(back))
    require(live == [(t1, b"live again", 1, False)],
            f"the resumed session's subscription must still work [MQTT-3.1.2-4]; got {live}")


@check("MQTT-3.3.1-1", "MQTT-4.4.0-1", "MQTT-2.3.1-4", "MQTT-4.6.0-1", "MQTT-4.3.2-1",
       summary="unacknowledged QoS 1 messages resent on reconnect: same ids, DUP=1, same order")
async def redelivery_on_reconnect(ctx: Context) -> None:
    cid = ctx.client_id("rd")
    topic = ctx.topic("redeliver")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE), client_id=cid, clean=False)
    pub = await ctx.client("pub")
    for n in range(3):
        await publish(pub, topic, f"m{n}".encode(), QoS.AT_LEAST_ONCE)
    first = await deliveries(sub, ack=False)
    require([m.payload for m in first] == [b"m0", b"m1", b"m2"],
            f"expected m0, m1, m2 in order; got {summary(first)}")
    require(all(not m.dup for m in first), "a first delivery must have DUP=0 [MQTT-4.3.2-1]")
    ids = [m.packet_id for m in first]
    require(len(set(ids)) == 3,
            f"unacknowledged PUBLISHes in flight must have distinct ids [MQTT-2.3.1-4]: {ids}")
    sub.abort()
    back = await ctx.client("sub2", cid, clean=False, session_present=True)
    again = await deliveries(back)
    before = [(m.payload, m.packet_id) for m in first]
    after = [(m.payload, m.packet_id) for m in again]
    require(after == before,
            "resent messages must keep their ids [MQTT-4.4.0-1] and order [MQTT-4.6.0-1]:"
            f" before {before}, after {after}")
    require(all(m.dup for m in again), "a re-delivered PUBLISH must have DUP=1 [MQTT-3.3.1-1]")


@check("MQTT-4.4.0-1", "MQTT-4.3.3-1",
       summary="QoS 2 after PUBREC: PUBREL (not the PUBLISH) resent on reconnect, same id")
async def pubrel_resent_on_reconnect(ctx: Context) -> None:
    cid = ctx.client_id("rl")
    topic = ctx.topic("pubrel")
    sub = await ctx.subscriber("sub", (topic, QoS.EXACTLY_ONCE), client_id=cid, clean=False)
    pub = await ctx.client("pub")
    await publish(pub, topic, b"exactly once", QoS.EXACTLY_ONCE)
    message = await sub.expect(Publish)
    assert message.packet_id is not None
    await sub.send(PubRec(message.packet_id))
    rel = await sub.expect(PubRel)
    require(rel.packet_id == message.packet_id, "PUBREL must carry the PUBLISH's id")
    sub.abort()
    back = await ctx.client("sub2", cid, clean=False, session_present=True)
    again = await back.quiet()
    require(not any(isinstance(p, Publish) for p in again),
            "the PUBLISH must not be resent once PUBREL was sent [MQTT-4.3.3-1]")
    rels = [p for p in again if isinstance(p, PubRel)]
    require([r.packet_id for r in rels] == [message.packet_id],
            f"the unacknowledged PUBREL must be resent with id {message.packet_id};"
            f" got {again}")
    await back.send(PubComp(message.packet_id))
    require(not await back.quiet(), "nothing more is owed after PUBCOMP")


@check("MQTT-3.1.2-6", "MQTT-3.1.4-3",
       summary="clean session 1 discards the stored session: no subscription, no queue")
async def clean_session_discards_state(ctx: Context) -> None:
    cid = ctx.client_id("cs")
    topic = ctx.topic("clean")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE), client_id=cid, clean=False)
    await sub.send(Disconnect())
    pub = await ctx.client("pub")
    await publish(pub, topic, b"queued", QoS.AT_LEAST_ONCE)
    cleaner = await ctx.client("clean", cid, clean=True, session_present=False)
    got = await deliveries(cleaner)
    require(not got, f"a clean session must not receive the old session's queue: {summary(got)}")
    await publish(pub, topic, b"after clean", QoS.AT_LEAST_ONCE)
    got = await deliveries(cleaner)
    require(not got, f"a clean session must not keep the old subscriptions: {summary(got)}")
    await cleaner.send(Disconnect())
    await cleaner.wait_close()
    later = await ctx.client("later", cid, clean=False, session_present=False)
    got = await deliveries(later)
    require(not got, f"state of a clean session must not be reused later: {summary(got)}")


@check("MQTT-4.1.0-2", "MQTT-3.8.4-1",
       summary="a session lasts as long as its connection: a subscription keeps delivering")
async def session_lasts_with_connection(ctx: Context) -> None:
    topic = ctx.topic("lasting")
    sub = await ctx.subscriber("sub", (topic, QoS.AT_LEAST_ONCE))
    pub = await ctx.client("pub")
    for n in range(3):
        await publish(pub, topic, f"n{n}".encode(), QoS.AT_LEAST_ONCE)
        got = summary(await deliveries(sub))
        require(got == [(topic, f"n{n}".encode(), 1, False)], f"delivery {n}: got {got}")
    await subscribe(sub, (ctx.topic("other"), QoS.AT_MOST_ONCE))


@check("MQTT-3.1.2-4", "MQTT-3.2.2-2",
       summary="a persistent session outlives a close for a protocol violation (second CONNECT,"
       " QoS 3 PUBLISH)")
async def session_survives_violation_close(ctx: Context) -> None:
    topic = ctx.topic("violation", "session")
    pub = await ctx.client("pub")
    for how in ("a second CONNECT", "a PUBLISH with QoS bits 11"):
        cid = ctx.client_id("pv")
        first = await ctx.subscriber("c1", (topic, QoS.AT_LEAST_ONCE), client_id=cid,
                                     clean=False)
        if how == "a second CONNECT":
            await first.send(Connect(V311, cid, False, 60), "second CONNECT, clean session 0")
        else:
            await first.send(bytes((0x36, 0x03, 0x00, 0x01, 0x61)), "PUBLISH with QoS bits 11")
        await first.wait_close()
        back = await ctx.open("c2")
        await back.send(Connect(V311, cid, False, 60))
        connack = await first_packet_is_connack(back)
        require(connack.return_code == 0 and connack.session_present,
                f"after the server closed the connection for {how}, the session stored for"
                f" {cid!r} must remain: CONNACK session present must be 1 [MQTT-3.1.2-4]"
                f" [MQTT-3.2.2-2]; got {describe(connack)}")
        await publish(pub, topic, how.encode(), QoS.AT_LEAST_ONCE)
        got = summary(await deliveries(back, at_least=1))
        require(got == [(topic, how.encode(), 1, False)],
                f"the stored subscription must still deliver [MQTT-3.1.2-4]; got {got}")
        await back.send(Disconnect())
