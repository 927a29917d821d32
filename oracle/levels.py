"""Which protocol levels a broker accepts: what ``mqttref check`` judges by default.

``--protocol all`` (the default) judges every level the broker accepts, so a broker
that implements MQTT 3.1.1 alone is judged at 3.1.1 and not failed on every 5.0
statement. A server that does not support a level refuses a CONNECT of it: a 3.1.1
server with CONNACK 0x01 and the close [MQTT-3.1.2-2] (3.1.1), which it writes in its
own (3.1.1) format even to a 5.0 CONNECT (aedes does); a 5.0 server with CONNACK 0x84
or nothing, then the close [MQTT-3.1.2-2] (5.0). Whichever way a level is refused, the
run says how in one line and judges the others.

When no level is accepted, nothing is left out: the run goes on as for one protocol,
whose reachability check ends it with its one clear line (exit 2), or reports a silent
broker as the FAIL it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import attrs

from mqttref.impl.codec.packets import ConnAck, Connect, Disconnect
from mqttref.oracle.connection import Connection, current, use
from mqttref.oracle.probe import Closed, Probe, Received, Timing, Trace
from mqttref.oracle.scenario import LEVELS
from mqttref.oracle.target import REFUSALS

V311_CONNACK = b"\x20\x02"
"""The fixed header of a 3.1.1 CONNACK (3.1.1 3.2): type 2, flags 0, two bytes to follow."""


@attrs.frozen
class Refusal:
    """A protocol level the broker did not accept, and how it said so."""

    protocol: str
    how: str

    def line(self, host: str, port: int) -> str:
        return (f"mqttref check: MQTT {self.protocol} not judged: {host}:{port} does not"
                f" accept a {self.protocol} CONNECT ({self.how})")


@attrs.frozen
class Accepted:
    """The protocols to judge, in order, and the ones left out with how each was refused."""

    protocols: tuple[str, ...]
    refused: tuple[Refusal, ...] = ()


def accepted(host: str, port: int, protocols: Sequence[str], timing: Timing,
             connection: Connection) -> Accepted:
    """``protocols`` less the ones the broker refuses; all of them when it refuses every
    one (or cannot be reached): the run itself then says why, as for one protocol."""
    with use(connection):
        answers = [asyncio.run(refusal(host, port, timing, protocol))
                   for protocol in protocols]
    refused = tuple(Refusal(p, how) for p, how in zip(protocols, answers, strict=True)
                    if how is not None)
    if len(refused) == len(protocols):
        return Accepted(tuple(protocols))
    return Accepted(tuple(p for p, how in zip(protocols, answers, strict=True) if how is None),
                    refused)


async def refusal(host: str, port: int, timing: Timing, protocol: str) -> str | None:
    """How the broker refuses a clean CONNECT at ``protocol``'s level from the run's first
    user, or None when it accepts it (CONNACK 0) or cannot be reached at all (which is no
    answer about the level: the run reports it)."""
    level = LEVELS[protocol]
    users = current().users
    user = users[0] if users else None
    try:
        probe = await Probe.open("level", host, port, Trace(), timing, level=level)
    except (OSError, TimeoutError):
        return None
    try:
        await probe.send(Connect(level, "mqttreflevel", True, 60,
                                 username=user.username if user else None,
                                 password=user.password if user else None))
        event = await probe.next_event(timing.reply_bound)
        if isinstance(event, Received) and isinstance(event.packet, ConnAck):
            code = event.packet.return_code
            if code == 0:
                await probe.send(Disconnect())
                return None
            return f"CONNACK 0x{code:02X} {REFUSALS.get(code, 'refused')}"
        if isinstance(event, Received):
            return f"{event.packet.packet_type.name} instead of CONNACK"
        if isinstance(event, Closed):
            return f"the connection closed ({event.how}) without CONNACK"
        if event is None:
            return f"no CONNACK within {timing.reply_bound:.1f} s"
        first = probe.frames[0] if probe.frames else b""
        if len(first) == 4 and first.startswith(V311_CONNACK):
            code = first[3]
            why = "accepted" if code == 0 else REFUSALS.get(code, "refused")
            return f"a 3.1.1 CONNACK, return code 0x{code:02X} {why}"
        return f"an answer the {protocol} codec refuses: {event.error}"
    except OSError as exc:
        return f"the connection failed: {exc or type(exc).__name__}"
    finally:
        await probe.close()
