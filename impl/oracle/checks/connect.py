"""CONNECT and CONNACK: the first packets, client identifiers, keep alive (3.1, 3.2)."""

from __future__ import annotations

import asyncio
import time

from mqttref.impl.oracle import raw
from mqttref.impl.oracle.checks.common import refused_without_connack, still_serving
from mqttref.impl.oracle.flows import deliveries, first_packet_is_connack, publish, require
from mqttref.impl.oracle.probe import Deviation, Inconclusive, Probe, Received, describe
from mqttref.impl.oracle.scenario import V311, Context, check
from mqttref.impl.packets import (
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    QoS,
)

KEEP_ALIVE_BOUND = 1.5 * 1 + 7.0
"""Seconds within which a keep alive of 1 s must have expired: 1.5 times it, plus a
margin for servers that sweep their timers periodically (mosquitto 2.0.11 closes an
idle keep-alive-1 client 1.3 to 7 s after its last packet)."""

ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@check("MQTT-4.8.0-1",
       summary="PINGREQ, PUBLISH, SUBSCRIBE or DISCONNECT before CONNECT: closed, not processed")
async def first_packet_must_be_connect(ctx: Context) -> None:
    watcher = await ctx.subscriber("watch", (ctx.topic("early"), QoS.AT_MOST_ONCE))
    early = {
        "PINGREQ": bytes((0xC0, 0)),
        "PUBLISH": raw.publish(ctx.topic("early"), b"before connect"),
        "SUBSCRIBE": raw.subscribe(1, (ctx.topic("x"), 0)),
        "DISCONNECT": bytes((0xE0, 0)),
    }
    for kind, data in early.items():
        probe = await ctx.open(kind.lower()[:6])
        await probe.send(data, f"{kind} as the first packet")
        seen = await probe.wait_close()
        require(not seen, f"{kind} before CONNECT was answered with "
                f"{', '.join(describe(p) for p in seen)} instead of a close")
    got = await deliveries(watcher)
    require(not got, "a PUBLISH sent before CONNECT was delivered")


@check("MQTT-3.1.0-2", summary="a second CONNECT on one connection closes it")
async def second_connect_closes(ctx: Context) -> None:
    cid = ctx.client_id("two")
    probe = await ctx.client("c1", cid)
    await probe.send(Connect(V311, cid, True, 60), "second CONNECT")
    seen = await probe.wait_close()
    require(not seen, f"second CONNECT answered with {[describe(p) for p in seen]}")


@check("MQTT-3.2.0-1", "MQTT-3.1.4-4", "MQTT-3.2.2-1", "MQTT-3.1.3-5",
       summary="a valid CONNECT with a 23-character id: CONNACK 0, session present 0")
async def connack_accepts_valid_connect(ctx: Context) -> None:
    cid = (ctx.token + ALNUM * 2)[:23]
    await ctx.client("c1", cid, clean=True, session_present=False)
    short = await ctx.client("c2", ALNUM[ctx.rng.randrange(10, 36)] + ctx.token[:4])
    await short.send(Disconnect())


@check("MQTT-3.1.2-2", "MQTT-3.2.2-4", "MQTT-3.2.2-5",
       summary="protocol level 7: CONNACK 0x01, session present 0, then close")
async def unsupported_protocol_level(ctx: Context) -> None:
    probe = await ctx.open("c1")
    await probe.send(raw.connect(ctx.client_id("lvl"), level=7), "CONNECT 'MQTT' level 7")
    try:
        connack = await first_packet_is_connack(probe)
    except Deviation as exc:
        raise Deviation(f"{exc}: a CONNACK 0x01 is required [MQTT-3.1.2-2]") from exc
    require(connack.return_code == 0x01, "an unsupported level must be refused with 0x01"
            f" [MQTT-3.1.2-2], got 0x{connack.return_code:02X}")
    require(not connack.session_present,
            "a refusing CONNACK must have session present 0 [MQTT-3.2.2-4]")
    await _closed_after_refusal(probe)


async def _closed_after_refusal(probe: Probe) -> None:
    try:
        await probe.wait_close()
    except Deviation as exc:
        raise Deviation(f"{exc} after a refusing CONNACK [MQTT-3.2.2-5]") from exc


@check("MQTT-3.1.2-1", summary="protocol name 'MQTX': never accepted as MQTT 3.1.1")
async def wrong_protocol_name(ctx: Context) -> None:
    probe = await ctx.open("c1")
    await probe.send(raw.connect(ctx.client_id("nam"), name=b"MQTX"), "CONNECT 'MQTX' level 4")
    event = await probe.next_event(ctx.timing.reply_bound)
    if isinstance(event, Received):
        packet = event.packet
        require(not (isinstance(packet, ConnAck) and packet.return_code == 0),
                f"a CONNECT with protocol name 'MQTX' was accepted: {describe(packet)}")
    await still_serving(ctx)


@check("MQTT-3.1.2-3", "MQTT-3.1.4-1", summary="CONNECT reserved flag 1: closed without CONNACK")
async def connect_reserved_flag(ctx: Context) -> None:
    await refused_without_connack(
        ctx, "c1", raw.connect(ctx.client_id("rsv"), flags=0x03), "CONNECT with reserved flag 1"
    )


@check("MQTT-3.1.3-8", "MQTT-3.1.3-9", "MQTT-3.2.2-4", "MQTT-3.2.2-5",
       summary="empty client id with clean session 0: CONNACK 0x02, then close")
async def empty_client_id_persistent_rejected(ctx: Context) -> None:
    probe = await ctx.open("c1")
    await probe.send(Connect(V311, "", False, 60))
    connack = await first_packet_is_connack(probe)
    require(connack.return_code == 0x02, "empty id with clean session 0 must get 0x02"
            f" [MQTT-3.1.3-8] [MQTT-3.1.3-9], got 0x{connack.return_code:02X}")
    require(not connack.session_present,
            "a refusing CONNACK must have session present 0 [MQTT-3.2.2-4]")
    await _closed_after_refusal(probe)


@check("MQTT-3.1.4-5", summary="data after a refused CONNECT is not processed")
async def nothing_processed_after_refused_connect(ctx: Context) -> None:
    topic = ctx.topic("refused")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_MOST_ONCE))
    probe = await ctx.open("c1")
    data = raw.connect("", flags=0x00) + raw.publish(topic, b"must not be processed")
    await probe.send(data, "CONNECT (empty id, clean 0) + PUBLISH in one write")
    connack = await first_packet_is_connack(probe)
    if connack.return_code == 0:
        raise Inconclusive("the server accepted the CONNECT it must refuse [MQTT-3.1.3-8]")
    await probe.wait_close()
    got = await deliveries(watcher)
    require(not got, f"a PUBLISH after a refused CONNECT was delivered: {got}")


@check("MQTT-3.1.3-6", "MQTT-3.1.3-9",
       summary="empty client id with clean session 1: unique id assigned, or 0x02 and close")
async def empty_client_id_clean_session(ctx: Context) -> None:
    first = await ctx.open("c1")
    await first.send(Connect(V311, "", True, 60))
    connack = await first_packet_is_connack(first)
    if connack.return_code == 0x02:
        ctx.trace.note("the server does not allow empty client ids (allowed)")
        await first.wait_close()
        return
    require(connack.return_code == 0, f"return code 0x{connack.return_code:02X}: only 0 or 0x02")
    second = await ctx.open("c2")
    await second.send(Connect(V311, "", True, 60))
    connack2 = await first_packet_is_connack(second)
    require(connack2.return_code == 0, "a second empty-id client must be accepted too")
    require(await first.is_open(),
            "two clients with empty ids must get distinct ids: the first was taken over")


@check("MQTT-3.1.4-2", "MQTT-3.1.3-2", "MQTT-3.1.2-6", "MQTT-3.1.4-3",
       summary="same client id again: the old connection is closed, its clean session gone")
async def takeover_closes_existing(ctx: Context) -> None:
    cid = ctx.client_id("tko")
    topic = ctx.topic("takeover")
    old = await ctx.subscriber("old", (topic, QoS.AT_LEAST_ONCE), client_id=cid, clean=False)
    new = await ctx.client("new", cid, clean=True, session_present=False)
    await old.wait_close()
    pub = await ctx.client("pub")
    await publish(pub, topic, b"after takeover", QoS.AT_LEAST_ONCE)
    got = await deliveries(new)
    require(not got, f"the new clean session inherited the old subscription: {got}")


@check("MQTT-3.1.2-24",
       summary="keep alive 1 s and silence: closed, not before 1 s, within 1.5 s plus a margin")
async def keep_alive_expiry_closes(ctx: Context) -> None:
    probe = await ctx.client("c1", keep_alive=1)
    start = time.monotonic()
    await probe.wait_close(ctx.timing.bound(KEEP_ALIVE_BOUND))
    elapsed = time.monotonic() - start
    require(elapsed >= 1.0 * 0.9,
            f"closed after {elapsed:.2f}s, before the keep alive period itself had passed")


@check("MQTT-3.1.2-24", "MQTT-3.12.4-1",
       summary="keep alive 1 s with PINGREQ every 0.5 s: answered, stays open")
async def keep_alive_kept_by_pingreq(ctx: Context) -> None:
    probe = await ctx.client("c1", keep_alive=1)
    for _ in range(6):
        await probe.send(PingReq())
        await probe.expect(PingResp, "PINGRESP [MQTT-3.12.4-1]")
        await asyncio.sleep(0.5)  # the client's own pacing, well inside keep alive
    require(await probe.is_open(), "closed although the client kept sending PINGREQ")


async def _refused(ctx: Context, label: str, data: bytes, note: str) -> None:
    await refused_without_connack(ctx, label, data, note)


@check("MQTT-3.1.4-1", summary="password flag without user name flag: closed")
async def password_without_user_name(ctx: Context) -> None:
    data = raw.connect(ctx.client_id("pw"), flags=0x42, tail=raw.string(b"secret"))
    await _refused(ctx, "c1", data, "CONNECT with password flag, no user name flag")


@check("MQTT-3.1.4-1",
       summary="will retain without will flag: closed without CONNACK")
async def will_retain_without_will_flag(ctx: Context) -> None:
    data = raw.connect(ctx.client_id("wr"), flags=0x22)
    await _refused(ctx, "c1", data, "CONNECT with will retain 1, will flag 0")


@check("MQTT-3.1.4-1",
       summary="will QoS 1 without will flag: closed without CONNACK")
async def will_qos_without_will_flag(ctx: Context) -> None:
    data = raw.connect(ctx.client_id("wq"), flags=0x0A)
    await _refused(ctx, "c1", data, "CONNECT with will QoS 1, will flag 0")


@check("MQTT-3.1.4-1", summary="will QoS 3: closed without CONNACK")
async def will_qos_3(ctx: Context) -> None:
    tail = raw.string(ctx.topic("w")) + raw.string(b"will")
    data = raw.connect(ctx.client_id("w3"), flags=0x1E, tail=tail)
    await _refused(ctx, "c1", data, "CONNECT with will flag and will QoS 3")


@check("MQTT-3.1.4-1",
       summary="will flag set but no will topic or message: closed without CONNACK")
async def will_flag_without_will_fields(ctx: Context) -> None:
    data = raw.connect(ctx.client_id("wf"), flags=0x06)
    await _refused(ctx, "c1", data, "CONNECT with will flag 1 and no will fields")


@check("MQTT-3.1.4-1", summary="CONNECT without payload: closed without CONNACK")
async def connect_without_client_id(ctx: Context) -> None:
    body = raw.string(b"MQTT") + bytes((4, 0x02)) + raw.u16(60)
    await _refused(ctx, "c1", raw.frame(0x10, body), "CONNECT with no payload")


@check("MQTT-1.5.3-1", "MQTT-3.1.4-1",
       summary="client id that is not UTF-8: closed without CONNACK")
async def client_id_ill_formed_utf8(ctx: Context) -> None:
    data = raw.connect(b"mqr\xff\xfe" + ctx.token.encode())
    await _refused(ctx, "c1", data, "CONNECT with client id bytes FF FE")


@check("MQTT-1.5.3-1", summary="will topic that is not UTF-8: closed")
async def will_topic_ill_formed_utf8(ctx: Context) -> None:
    tail = raw.string(b"mqttref-check/\xc3\x28") + raw.string(b"will")
    data = raw.connect(ctx.client_id("wu"), flags=0x06, tail=tail)
    await _refused(ctx, "c1", data, "CONNECT with will topic bytes C3 28")


@check("MQTT-1.5.3-1", summary="user name that is not UTF-8: closed")
async def user_name_ill_formed_utf8(ctx: Context) -> None:
    data = raw.connect(ctx.client_id("un"), flags=0x82, tail=raw.string(b"user\xed\xa0\x80"))
    await _refused(ctx, "c1", data, "CONNECT with user name holding an encoded surrogate")


@check("MQTT-3.14.1-1", summary="DISCONNECT with reserved flags set: closed")
async def disconnect_reserved_flags(ctx: Context) -> None:
    probe = await ctx.client("c1")
    await probe.send(bytes((0xE1, 0)), "DISCONNECT with flags 0001")
    await probe.wait_close()
    await still_serving(ctx)
