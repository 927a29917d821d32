"""Will messages: published on an abrupt close, discarded on DISCONNECT (3.1.2.5 - 3.1.2.7)."""

from __future__ import annotations

from mqttref.impl.oracle.checks.connect import KEEP_ALIVE_BOUND
from mqttref.impl.oracle.flows import deliveries, require, subscribe, summary
from mqttref.impl.oracle.probe import Probe
from mqttref.impl.oracle.scenario import V311, Context, check
from mqttref.impl.packets import Connect, Disconnect, QoS, Will


async def _willer(ctx: Context, topic: str, payload: bytes, *, qos: QoS = QoS.AT_LEAST_ONCE,
                  retain: bool = False, keep_alive: int = 60) -> Probe:
    will = Will(topic, payload, qos, retain)
    return await ctx.client("willer", will=will, keep_alive=keep_alive)


@check("MQTT-3.1.2-8", "MQTT-3.1.2-16", "MQTT-3.1.2-10", "MQTT-3.3.1-9",
       summary="abrupt close: the will is published once, as a non-retained message")
async def will_published_on_abrupt_close(ctx: Context) -> None:
    topic = ctx.topic("will", "abrupt")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_LEAST_ONCE))
    willer = await _willer(ctx, topic, b"gone")
    willer.abort()
    got = summary(await deliveries(watcher, at_least=1))
    require(got == [(topic, b"gone", 1, False)],
            f"expected the will once, QoS 1, RETAIN=0; got {got}")


@check("MQTT-3.14.4-3", "MQTT-3.1.2-10", "MQTT-3.1.2-8",
       summary="DISCONNECT then close: the will is discarded, not published")
async def no_will_after_disconnect(ctx: Context) -> None:
    topic = ctx.topic("will", "disconnect")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_LEAST_ONCE))
    willer = await _willer(ctx, topic, b"must not appear")
    await willer.send(Disconnect())
    await willer.wait_close()
    got = await deliveries(watcher)
    require(not got, f"the will was published after DISCONNECT: {summary(got)}")


@check("MQTT-3.1.2-17", "MQTT-3.3.1-8", "MQTT-3.3.1-9",
       summary="will retain 1: published as a retained message")
async def will_published_retained(ctx: Context) -> None:
    topic = ctx.topic("will", "retained")
    ctx.retained.add(topic)
    willer = await _willer(ctx, topic, b"retained will", retain=True)
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_LEAST_ONCE))
    await watcher.settle()
    willer.abort()
    live = summary(await deliveries(watcher, at_least=1))
    require(live == [(topic, b"retained will", 1, False)],
            f"the live subscriber must get the will with RETAIN=0 [MQTT-3.3.1-9]; got {live}")
    late = await ctx.client("late")
    await subscribe(late, (topic, QoS.AT_LEAST_ONCE))
    got = summary(await deliveries(late, at_least=1))
    require(got == [(topic, b"retained will", 1, True)],
            "a new subscriber must get the will as the retained message [MQTT-3.1.2-17]"
            f" [MQTT-3.3.1-8]; got {got}")


@check("MQTT-3.1.2-8", "MQTT-3.8.4-6",
       summary="will QoS 2 reaches a QoS 2 subscriber at QoS 2 and a QoS 0 one at QoS 0")
async def will_qos_respected(ctx: Context) -> None:
    topic = ctx.topic("will", "qos")
    high = await ctx.subscriber("high", (topic, QoS.EXACTLY_ONCE))
    low = await ctx.subscriber("low", (topic, QoS.AT_MOST_ONCE))
    willer = await _willer(ctx, topic, b"qos2 will", qos=QoS.EXACTLY_ONCE)
    willer.abort()
    got_high = summary(await deliveries(high, at_least=1))
    got_low = summary(await deliveries(low, at_least=1))
    require(got_high == [(topic, b"qos2 will", 2, False)],
            f"the QoS 2 subscriber must get the will at QoS 2 [MQTT-3.1.2-8]; got {got_high}")
    require(got_low == [(topic, b"qos2 will", 0, False)],
            f"the QoS 0 subscriber must get it at QoS 0 [MQTT-3.8.4-6]; got {got_low}")


@check("MQTT-3.1.2-12", summary="no will flag: nothing published when the connection drops")
async def no_will_without_flag(ctx: Context) -> None:
    watcher = await ctx.subscriber("watch", (ctx.topic("#"), QoS.AT_MOST_ONCE))
    plain = await ctx.client("plain")
    plain.abort()
    got = await deliveries(watcher)
    require(not got, f"a client without a will caused publications: {summary(got)}")


@check("MQTT-3.1.2-8", "MQTT-3.1.2-24",
       summary="keep alive expiry counts as a network failure: the will is published")
async def will_on_keep_alive_expiry(ctx: Context) -> None:
    topic = ctx.topic("will", "keepalive")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_LEAST_ONCE))
    willer = await _willer(ctx, topic, b"timed out", keep_alive=1)
    await willer.wait_close(ctx.timing.bound(KEEP_ALIVE_BOUND))
    got = summary(await deliveries(watcher, at_least=1))
    require(got == [(topic, b"timed out", 1, False)], f"expected the will; got {got}")


@check("MQTT-3.1.2-8", "MQTT-4.8.0-1",
       summary="a close for a protocol violation publishes the will")
async def will_on_protocol_violation(ctx: Context) -> None:
    topic = ctx.topic("will", "violation")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_LEAST_ONCE))
    willer = await _willer(ctx, topic, b"violated")
    await willer.send(bytes((0x36, 0x03, 0x00, 0x01, 0x61)), "PUBLISH with QoS bits 11")
    await willer.wait_close()
    got = summary(await deliveries(watcher, at_least=1))
    require(got == [(topic, b"violated", 1, False)], f"expected the will; got {got}")


@check("MQTT-3.1.2-8",
       summary="a close for a second CONNECT (a protocol violation) publishes the will")
async def will_on_second_connect(ctx: Context) -> None:
    """Found by the model exploration against mosquitto 2.0.11; kept here so that it
    reproduces on every run. The second CONNECT is a protocol violation [MQTT-3.1.0-2],
    and a close for one is among the closes that publish the will (3.1.2.5)."""
    topic = ctx.topic("will", "second-connect")
    watcher = await ctx.subscriber("watch", (topic, QoS.AT_LEAST_ONCE))
    cid = ctx.client_id("willer")
    willer = await ctx.client("willer", cid, will=Will(topic, b"twice", QoS.AT_LEAST_ONCE, False))
    await willer.send(Connect(V311, cid, True, 60), "second CONNECT")
    await willer.wait_close()
    got = summary(await deliveries(watcher, at_least=1))
    require(got == [(topic, b"twice", 1, False)], f"expected the will; got {got}")
