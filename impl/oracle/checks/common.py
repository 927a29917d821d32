"""Steps shared by many checks: refusals, closes, and the broker still being alive."""

from __future__ import annotations

from mqttref.impl.oracle.flows import require
from mqttref.impl.oracle.probe import Probe, describe
from mqttref.impl.oracle.scenario import Context
from mqttref.impl.packets import ConnAck, PingReq, PingResp, Publish


async def still_serving(ctx: Context) -> None:
    """A fresh client is still served: bad input harmed nobody else."""
    probe = await ctx.client("other")
    await probe.send(PingReq())
    await probe.expect(PingResp)


async def refused_without_connack(ctx: Context, name: str, data: bytes, note: str) -> None:
    """A non-conforming CONNECT: close without any CONNACK [MQTT-3.1.4-1]."""
    probe = await ctx.open(name)
    await probe.send(data, note)
    seen = await probe.wait_close()
    require(
        not any(isinstance(p, ConnAck) for p in seen),
        f"{name}: {note}: the server must close without sending a CONNACK [MQTT-3.1.4-1];"
        f" it sent {', '.join(describe(p) for p in seen)}",
    )
    await still_serving(ctx)


async def closes_after(probe: Probe, data: bytes, note: str) -> None:
    """``probe`` sends ``data``; the server must close, answering nothing first."""
    await probe.send(data, note)
    seen = await probe.wait_close()
    answers = [describe(p) for p in seen if not isinstance(p, Publish)]
    require(
        not answers,
        f"{probe.name}: after {note} the server must close the connection; it answered"
        f" {', '.join(answers)} first",
    )
