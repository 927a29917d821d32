"""Steps shared by the 5.0 checks of packets a server must refuse (private: no checks)."""

from __future__ import annotations

from mqttref.impl.codec.packets import ConnAck, PingReq, PingResp, QoS, Subscription
from mqttref.oracle.checks5.common import closes_after_error, connect5, subscribe5
from mqttref.oracle.evidence import Deviation
from mqttref.oracle.probe import Closed, Garbled, Probe, Received, describe
from mqttref.oracle.scenario import Context


async def closes_unanswered(probe: Probe, why: str, *, ping: bool = True,
                            connack: bool = False) -> None:
    """The server must close on the bad packet just sent (``why`` cites the rule).

    With ``ping`` a PINGREQ follows it: a PINGRESP shows the server went on with the
    connection. That, or an answer to the bad packet itself (a PINGRESP, a CONNACK
    accepting), is a deviation at once, without waiting out the reply bound.
    """
    if ping:
        await probe.send(PingReq(), note="is the connection still open?")
    event = await next_answer(probe)
    if isinstance(event, Received):
        if isinstance(event.packet, PingResp) or (
                isinstance(event.packet, ConnAck) and event.packet.return_code < 0x80):
            raise Deviation(f"{probe.name}: answered {describe(event.packet)}: the connection"
                            f" goes on where the server must close {why}")
        probe.pending.append(event.packet)
    await closes_after_error(probe, why, connack=connack)


async def watcher(ctx: Context, name: str, topic_filter: str) -> Probe:
    """A client subscribed to ``topic_filter`` at QoS 1 (or what the server grants)."""
    probe, _ = await connect5(ctx, name)
    await subscribe5(probe, Subscription(topic_filter, QoS.AT_LEAST_ONCE), exact=False)
    return probe


async def next_answer(probe: Probe, bound: float | None = None) -> Received | Closed | None:
    """The next packet or the close within ``bound`` (the reply bound), or None.

    Bytes the probe's strict decoder refuses are the server's deviation as their sender,
    blamed on the rule the decoder cites: a check must not read them as a close.
    """
    event = await probe.next_event(probe.timing.reply_bound if bound is None else bound)
    if isinstance(event, Garbled):
        raise Deviation(f"{probe.name}: the server sent bytes the decoder refuses:"
                        f" {event.error}")
    return event
