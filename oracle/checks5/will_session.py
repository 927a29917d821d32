"""The Will Message as part of the session state (3.1.2.5): stored with the session when
the CONNECT sets the Will Flag, and removed once published or once the client sent
DISCONNECT 0x00.

Removal is observed on a session that outlives its connection (Session Expiry Interval
10 s): the client comes back with Clean Start 0 and no will of its own, then drops the
connection. A will still held in the session would now be published. Whether it was is
judged up to a marker published after a further connection of the same ClientID, which
the server accepts only once it has dealt with the dropped one.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Disconnect, Properties, QoS, Will
from mqttref.oracle.checks5._steps import watcher
from mqttref.oracle.checks5.common import check5, collect_until, connect5, publish5
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE
KEEP = Properties(session_expiry_interval=10)


async def _resume_and_drop(ctx: Context, cid: str) -> None:
    """Back to the session with no will, drop the connection, then a clean connection of
    the same ClientID (which ends the session: no will is left to publish)."""
    back, _ = await connect5(ctx, "back", cid, clean=False, props=KEEP)
    back.abort()
    await connect5(ctx, "last", cid, clean=True)


async def _not_again(ctx: Context, watch: Probe, topic: str, payload: bytes, why: str) -> None:
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, topic, b"marker", Q1)
    got = [m.payload for m in await collect_until(watch, b"marker", "(a message on the will"
                                                  " topic) [MQTT-3.3.4-1]")]
    require(payload not in got, f"watch: the will {payload!r} was published {why}: it must"
            " have been removed from the session [MQTT-3.1.2-10]")


@check5("MQTT-3.1.2-7", "MQTT-3.1.2-10",
        summary="a will is stored with the session and published when the connection drops;"
        " once published, or after DISCONNECT 0x00, it is gone from the session and a later"
        " drop of the resumed session publishes nothing")
async def will_in_session_state_v5(ctx: Context) -> None:
    async with ctx.scenario("published once"):
        topic = ctx.topic("wills", "published")
        watch = await watcher(ctx, "watch", topic)
        cid = ctx.client_id("dies")
        dying, _ = await connect5(ctx, "dies", cid, props=KEEP,
                                  will=Will(topic, b"first will", Q1, False))
        dying.abort()
        await collect_until(watch, b"first will", "(the will of a connection dropped without"
                            " DISCONNECT: stored with the session) [MQTT-3.1.2-7]")
        await _resume_and_drop(ctx, cid)
        await _not_again(ctx, watch, topic, b"first will", "again after the session it"
                         " was published from was resumed and dropped")
    async with ctx.scenario("DISCONNECT 0x00"):
        topic = ctx.topic("wills", "normal")
        watch = await watcher(ctx, "watch", topic)
        cid = ctx.client_id("leaves")
        leaving, _ = await connect5(ctx, "leaves", cid, props=KEEP,
                                    will=Will(topic, b"discarded will", Q1, False))
        await leaving.send(Disconnect(0))
        # The server's close tells that it read the DISCONNECT (it only SHOULD close: a
        # quiescence window at most), before this side drops the connection.
        await leaving.next_event(ctx.timing.window)
        leaving.abort()
        await _resume_and_drop(ctx, cid)
        await _not_again(ctx, watch, topic, b"discarded will", "although the client had sent"
                         " DISCONNECT 0x00 before the session was resumed and dropped")
