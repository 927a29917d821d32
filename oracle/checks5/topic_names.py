"""MQTT 5.0 Topic Names that no sender may write (3.3.2.1, 3.3.2.3.5, 4.7): a wildcard in a
Topic Name [MQTT-3.3.2-2] [MQTT-4.7.0-1] or a Response Topic [MQTT-3.3.2-14], a Topic
Name or Topic Filter of no characters [MQTT-4.7.3-1].

These rules bind the writer. The server is judged as one when it forwards: a PUBLISH
that breaks them must never reach a subscriber (judged up to a control message the
subscriber is owed, published after it; the probe's strict decoder refuses such a
name). Received from a client, each is a Protocol Error on which the server must close
[MQTT-4.13.1-1]; for a SUBSCRIBE with an empty Topic Filter the SUBACK may refuse it
instead (0x8F, 3.9.3). Those reactions are judged on 4.13.1-1 alone.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import QoS, SubAck
from mqttref.oracle import raw
from mqttref.oracle.checks5._steps import closes_unanswered, next_answer, watcher
from mqttref.oracle.checks5.common import (
    SUBACK_CODES,
    check5,
    closes_after_error,
    collect_until,
    connect5,
    publish5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received, describe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


@check5("MQTT-3.3.2-2", "MQTT-4.7.0-1", "MQTT-3.3.2-14", "MQTT-4.7.3-1",
        summary="a PUBLISH to a Topic Name with '+' or '#', with no Topic Name and no Topic"
        " Alias, or with a wildcard in its Response Topic closes the sender's connection and"
        " is never forwarded; a SUBSCRIBE to an empty Topic Filter is refused")
async def topic_name_rules_v5(ctx: Context) -> None:
    names, resp = ctx.topic("names", "n"), ctx.topic("names", "resp")
    watchers: dict[str, Probe | None] = {"name": None}
    if ctx.profile5.wildcard_available:
        watchers["name"] = await watcher(ctx, "watch", f"{names}/#")
    watchers["resp"] = await watcher(ctx, "rwatch", resp)
    cases: dict[str, tuple[bytes, bytes, str]] = {
        "'+' in the Topic Name": (f"{names}/+".encode(), b"\x00", "a Topic Name holding '+'"),
        "'#' in the Topic Name": (f"{names}/#".encode(), b"\x00", "a Topic Name holding '#'"),
        "no Topic Name and no Topic Alias": (b"", b"\x00", "a Topic Name of no characters and"
                                             " no Topic Alias (3.3.2.1)"),
        "'+' in the Response Topic": (
            resp.encode(), raw.properties(b"\x08" + raw.string(f"{names}/+/r")),
            "a Response Topic holding '+' (3.3.2.3.5)"),
    }
    for label, (topic, props, what) in cases.items():
        async with ctx.scenario(label):
            bad, _ = await connect5(ctx, "bad")
            await bad.send(raw.publish5(topic, f"bad {label}".encode(), props=props),
                           note=f"QoS 0 PUBLISH with {what}")
            await closes_unanswered(bad, f"({what} is a Protocol Error) [MQTT-4.13.1-1]")
    async with ctx.scenario("empty Topic Filter"):
        probe, _ = await connect5(ctx, "filter")
        await probe.send(raw.subscribe(probe.new_packet_id(), (b"", 0x01)),
                         note="SUBSCRIBE to a Topic Filter of no characters")
        event = await next_answer(probe)
        why = "(a Topic Filter of no characters, 4.7.3) [MQTT-4.13.1-1]"
        if isinstance(event, Received) and isinstance(event.packet, SubAck):
            codes = event.packet.return_codes
            require(len(codes) == 1 and codes[0] in SUBACK_CODES and codes[0] >= 0x80,
                    f"filter: the SUBACK must refuse the empty filter (0x80 or above), got"
                    f" {codes} {why}")
        elif isinstance(event, Closed):
            require(True, f"filter: closed {why}")
        else:
            if isinstance(event, Received):
                probe.pending.append(event.packet)
            await closes_after_error(probe, why)
    for group, control, what, rules in (
            ("name", f"{names}/ok", "a wildcard Topic Name or an empty one without an alias",
             "[MQTT-3.3.2-2] [MQTT-4.7.0-1] [MQTT-4.7.3-1]"),
            ("resp", resp, "a wildcard Response Topic", "[MQTT-3.3.2-14]")):
        async with ctx.scenario(f"none forwarded ({group})"):
            watching = watchers[group]
            if watching is None:
                raise NotApplicable("declares Wildcard Subscription Available 0 in CONNACK"
                                    " (3.2.2.3.11): no subscription matches every bad topic"
                                    " name", "MQTT-3.3.2-2", "MQTT-4.7.0-1", "MQTT-4.7.3-1")
            pub, _ = await connect5(ctx, "ctl")
            await publish5(pub, control, b"control", Q1)
            before = await collect_until(watching, b"control", "(a message on a topic the"
                                         " watcher subscribes to) [MQTT-3.3.4-1]")
            forwarded = [describe(m) for m in before if m.payload.startswith(b"bad ")]
            if forwarded:  # decoded, so rewritten valid: the missed close is judged above
                ctx.trace.note(f"{watching.name}: forwarded, valid: {forwarded}")
            require(True, f"{watching.name}: no PUBLISH with {what} reached the subscriber"
                    f" before the control message published after them {rules}")
