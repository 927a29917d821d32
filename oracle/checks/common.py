"""Steps shared by many checks: refusals, closes, and the broker still being alive.

Each step cites the statement that makes its outcome the server's business, so
that what it sees is evidence (or a deviation) for that statement only. Callers
pass ``why`` to name the statement their scenario is about; the defaults cite
what the step itself relies on.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import ConnAck, PingReq, PingResp, Publish
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Probe, describe
from mqttref.oracle.scenario import Context


async def still_serving(ctx: Context, why: str = "PINGRESP to a PINGREQ [MQTT-3.12.4-1]") -> None:
    """A fresh client is still served: bad input harmed nobody else.

    The connect is judged by ``Context.client`` [MQTT-3.1.4-4]; the PINGRESP
    by ``why`` (by default the PINGREQ rule itself, [MQTT-3.12.4-1]).
    """
    probe = await ctx.client("other")
    await probe.send(PingReq())
    await probe.expect(PingResp, why)


async def refused_without_connack(ctx: Context, name: str, data: bytes, note: str,
                                  why: str = "[MQTT-3.1.4-1]") -> None:
    """A non-conforming CONNECT: close without any CONNACK [MQTT-3.1.4-1].

    ``why`` cites what requires the close (by default [MQTT-3.1.4-1]; a check
    of a rule with its own "MUST close", such as ill-formed UTF-8
    [MQTT-1.5.3-1], cites that). A CONNACK before the close, whatever its code,
    is a deviation from [MQTT-3.1.4-1]: the server must not answer a CONNECT
    that does not conform to section 3.1.
    """
    probe = await ctx.open(name)
    await probe.send(data, note)
    seen = await probe.wait_close(why=f"{note} {why}")
    connacks = [describe(p) for p in seen if isinstance(p, ConnAck)]
    sent = f"; it sent {', '.join(connacks)} first" if connacks else ""
    require(not connacks,
            f"{name}: {note}: the server must close without sending a CONNACK [MQTT-3.1.4-1]{sent}")
    await still_serving(ctx)


async def closes_after(probe: Probe, data: bytes, note: str, why: str = "") -> None:
    """``probe`` sends ``data``; the server must close, answering nothing first.

    ``why`` cites the statement that requires the close (a reaction rule such
    as [MQTT-2.2.2-2] or [MQTT-4.8.0-1]): the close is evidence for it, and a
    missing close or an answer to the bad packet is a deviation from it.
    Without ``why`` nothing is cited, and a deviation is an oracle gap.
    """
    await probe.send(data, note)
    seen = await probe.wait_close(why=f"{note} {why}" if why else "")
    answers = [describe(p) for p in seen if not isinstance(p, Publish)]
    answered = f"; it answered {', '.join(answers)} first" if answers else ""
    require(
        not answers,
        f"{probe.name}: after {note} the server must close the connection without answering"
        f" it {why}{answered}",
    )
