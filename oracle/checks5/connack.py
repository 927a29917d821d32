"""MQTT 5.0 CONNACK (3.2): refusals and the close after them, the one CONNACK first on a
connection, and its size within the client's Maximum Packet Size.

A CONNECT of another protocol (a wrong protocol name, an unknown Protocol Version) may
be answered in a format no 5.0 decoder reads, or not at all: the check reads those
answers as raw frames (``_wire.exchange``) and judges what the text asks for, the close,
and that any CONNACK refuses.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    Publish,
    QoS,
    Subscription,
)
from mqttref.oracle import raw
from mqttref.oracle.checks5 import _wire
from mqttref.oracle.checks5._steps import next_answer
from mqttref.oracle.checks5.common import (
    CONNACK_CODES,
    REFUSALS_OF_A_VALID_CONNECT,
    V5,
    check5,
    closes_after_error,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable
from mqttref.oracle.flows import first_packet_is_connack, require
from mqttref.oracle.probe import Closed, Probe, Received, describe
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE
KEEP = Properties(session_expiry_interval=10)


def _judge_refusal(name: str, seen: _wire.Exchange, why: str, *, accepted_is: str) -> None:
    """A CONNECT the server must not accept as 5.0: any CONNACK refuses, then the close.

    A 5.0 CONNACK must carry a Connect Reason Code of 0x80 or above with Session Present
    0; a CONNACK in 3.1.1's two-byte form with a non-zero return code is how a server
    refuses a client whose version it does not know, and is noted, not judged.
    ``accepted_is`` cites what an accepting CONNACK breaks.
    """
    for data in seen.frames:
        frame = _wire.parse(data)
        if frame is None or frame.kind != 2 or len(frame.body) < 2:
            raise Deviation(f"{name}: raw bytes {data[:16].hex(' ')} arrived where the server"
                            f" must close {why}")
        flags, code = frame.body[0], frame.body[1]
        if code == 0:
            raise Deviation(f"{name}: CONNACK 0x00 accepts the CONNECT {accepted_is}")
        if frame.length == 2 and code <= 5:
            require(True, f"{name}: a CONNACK in 3.1.1's form refusing with return code"
                    f" {code} (the server does not know the client's version)")
            continue
        require(code in CONNACK_CODES and code >= 0x80, f"{name}: a CONNACK refusing the"
                f" CONNECT must carry a Connect Reason Code of 0x80 or above, got 0x{code:02X}"
                " [MQTT-3.2.2-8]")
        require(not flags & 0x01, f"{name}: CONNACK 0x{code:02X} refuses, so Session Present"
                " must be 0 [MQTT-3.2.2-6]")
        require(seen.closed, f"{name}: after CONNACK 0x{code:02X} the server must close the"
                " connection [MQTT-3.2.2-7]" if seen.closed else
                f"{name}: the server sent CONNACK 0x{code:02X} and must then close the"
                " connection; it is still open [MQTT-3.2.2-7]")
    require(seen.closed, f"{name}: closed {why}" if seen.closed else
            f"{name}: the connection is still open after the reply bound; the server must"
            f" close it {why}")


@check5("MQTT-3.1.2-1", "MQTT-3.1.2-2", "MQTT-3.1.3-8", "MQTT-3.2.2-6", "MQTT-3.2.2-7",
        summary="a CONNECT with another protocol name or an unknown Protocol Version, one"
        " naming an unknown Authentication Method while a session exists, and a ClientID"
        " the server rejects get a refusing CONNACK (Session Present 0) or none, then the"
        " close")
async def connack_refusals_v5(ctx: Context) -> None:
    async with ctx.scenario("protocol name 'MQTs'"):
        data = raw.frame(0x10, raw.string(b"MQTs") + bytes((5, 0x02)) + raw.u16(60) + b"\x00"
                         + raw.string(ctx.client_id("name")))
        seen = await _wire.exchange(ctx, "name", data, "CONNECT with protocol name 'MQTs'")
        _judge_refusal("name", seen, "(the protocol name must be 'MQTT'; a server refusing"
                       " may send CONNACK 0x84 first) [MQTT-3.1.2-1]",
                       accepted_is="with protocol name 'MQTs' [MQTT-3.1.2-1] [MQTT-3.1.4-1]")
    async with ctx.scenario("Protocol Version 6"):
        data = raw.frame(0x10, raw.string(b"MQTT") + bytes((6, 0x02)) + raw.u16(60) + b"\x00"
                         + raw.string(ctx.client_id("ver")))
        seen = await _wire.exchange(ctx, "ver", data, "CONNECT with Protocol Version 6")
        if any((f := _wire.parse(d)) is not None and f.kind == 2 and f.body[1:2] == b"\x00"
               for d in seen.frames):
            raise NotApplicable("accepts a CONNECT of Protocol Version 6 (3.1.2-2 binds a"
                                " server that does not want to accept it)", "MQTT-3.1.2-2")
        _judge_refusal("ver", seen, "(a Protocol Version other than 5 the server does not"
                       " accept: CONNACK 0x84 or nothing, then the close) [MQTT-3.1.2-2]",
                       accepted_is="[MQTT-3.1.2-2]")
    async with ctx.scenario("unknown Authentication Method while a session exists"):
        cid = ctx.client_id("auth")
        first, _ = await connect5(ctx, "auth", cid, clean=False, props=KEEP)
        first.abort()
        probe = await ctx.open("again")
        method = f"mqttref-no-such-method-{ctx.token}"
        await probe.send(Connect(V5, cid, False, 60, properties=Properties(
            session_expiry_interval=10, authentication_method=method)),
            note="Clean Start 0 to the session just left, naming an unknown method")
        event = await next_answer(probe)
        if isinstance(event, Received) and isinstance(event.packet, ConnAck):
            if event.packet.return_code < 0x80:
                raise Inconclusive("accepts an unknown Authentication Method (judged by"
                                   " unsupported_authentication_method_v5)")
            probe.pending.append(event.packet)
        elif isinstance(event, Received):
            raise Inconclusive(f"answers an unknown Authentication Method with"
                               f" {describe(event.packet)} (judged by"
                               " unsupported_authentication_method_v5)")
        elif event is None:
            raise Deviation(f"again: neither a CONNACK nor the close within"
                            f" {ctx.timing.reply_bound:.1f}s of a CONNECT naming an"
                            " Authentication Method the server does not support"
                            " [MQTT-4.12.0-1]")
        if isinstance(event, Closed):
            raise NotApplicable("closes without a CONNACK on an unknown Authentication Method"
                                " (allowed, 4.12.0-1): no CONNACK to judge",
                                "MQTT-3.2.2-6", "MQTT-3.2.2-7")
        await closes_after_error(probe, "(a CONNECT naming an unsupported Authentication"
                                 " Method) [MQTT-4.12.0-1]", connack=True)
    odd = f"mqttref check {ctx.token} + # / \u00e9 " + "x" * 80
    for label, cid, what in (
            ("an empty ClientID", "", "a zero-length ClientID"),
            ("a long ClientID with punctuation", odd,
             "a ClientID of 100 characters with spaces, '+', '#', '/'")):
        async with ctx.scenario(label):
            probe = await ctx.open("cid")
            await probe.send(Connect(V5, cid, True, 60), note=what)
            event = await next_answer(probe)
            if isinstance(event, Received) and isinstance(event.packet, ConnAck):
                code = event.packet.return_code
                if code < 0x80:
                    raise NotApplicable(f"accepts {what} (a server MAY allow it, 3.1.3.1)",
                                        "MQTT-3.1.3-8")
                probe.pending.append(event.packet)
            elif event is None:
                raise Deviation(f"cid: neither a CONNACK nor the close within"
                                f" {ctx.timing.reply_bound:.1f}s of a CONNECT [MQTT-3.1.4-5]")
            await closes_after_error(probe, f"(a server that rejects {what} MAY send CONNACK"
                                     " 0x85, then MUST close) [MQTT-3.1.3-8]", connack=True)


MAXIMUM_PACKET_SIZE = 40
"""The client's Maximum Packet Size: room for a CONNACK's usual properties, not for a
Reason String of any length."""


def _within(name: str, frame: bytes, connack: ConnAck) -> None:
    size = len(frame)
    if size <= MAXIMUM_PACKET_SIZE:
        require(True, f"{name}: the CONNACK is {size} bytes, within the client's Maximum"
                f" Packet Size {MAXIMUM_PACKET_SIZE}: no Reason String or User Property took it"
                " beyond [MQTT-3.2.2-19] [MQTT-3.2.2-20]")
        return
    # Each property present is judged, both at once: one deviation must not hide the other.
    carried = [what for what, present in (
        (f"the Reason String {connack.properties.reason_string!r} [MQTT-3.2.2-19]",
         connack.properties.reason_string is not None),
        (f"User Properties {connack.properties.user_properties} [MQTT-3.2.2-20]",
         bool(connack.properties.user_properties))) if present]
    require(not carried, f"{name}: the CONNACK is {size} bytes, beyond the client's Maximum"
            f" Packet Size {MAXIMUM_PACKET_SIZE}, and carries {' and '.join(carried)}")


@check5("MQTT-3.2.2-19", "MQTT-3.2.2-20",
        summary="a CONNACK, accepting or refusing, carries no Reason String or User Property"
        " that would take it beyond the client's Maximum Packet Size")
async def connack_within_maximum_packet_size_v5(ctx: Context) -> None:
    limit = Properties(maximum_packet_size=MAXIMUM_PACKET_SIZE)
    async with ctx.scenario("accepted"):
        probe = await ctx.open("small")
        await probe.send(Connect(V5, ctx.client_id("small"), True, 60, properties=limit))
        connack = await first_packet_is_connack(probe, "[MQTT-3.1.4-5]")
        if connack.return_code in REFUSALS_OF_A_VALID_CONNECT:
            raise NotApplicable(f"refuses a valid CONNECT with 0x{connack.return_code:02X}")
        _within("small", probe.frames[0], connack)
    async with ctx.scenario("refused"):
        probe = await ctx.open("refused")
        await probe.send(Connect(V5, ctx.client_id("refused"), True, 60, properties=Properties(
            maximum_packet_size=MAXIMUM_PACKET_SIZE,
            authentication_method=f"mqttref-no-such-method-{ctx.token}")),
            note="naming an unknown Authentication Method")
        event = await next_answer(probe)
        if not (isinstance(event, Received) and isinstance(event.packet, ConnAck)):
            raise NotApplicable("answers an unknown Authentication Method with no CONNACK"
                                " (allowed, 4.12.0-1)")
        _within("refused", probe.frames[0], event.packet)


@check5("MQTT-3.2.0-1", "MQTT-3.2.0-2",
        summary="a session resumed with messages queued gets its CONNACK before them, and"
        " one CONNACK only, even after a second CONNECT")
async def connack_first_and_once_v5(ctx: Context) -> None:
    topic = ctx.topic("connack", "queued")
    cid = ctx.client_id("queue")
    sub, _ = await connect5(ctx, "sub", cid, clean=False, props=KEEP)
    await subscribe5(sub, Subscription(topic, Q1), exact=False)
    sub.abort()
    pub, _ = await connect5(ctx, "pub")
    for n in range(3):
        await publish5(pub, topic, f"queued{n}".encode(), Q1)
    back = await ctx.open("back")
    await back.send(Connect(V5, cid, False, 60, properties=KEEP))
    connack = await first_packet_is_connack(back, "[MQTT-3.1.4-5]")
    require(True, "back: the CONNACK came first, before the messages queued for the session"
            " [MQTT-3.2.0-1]")
    if connack.return_code >= 0x80:
        raise NotApplicable(f"refuses a valid CONNECT with 0x{connack.return_code:02X}")
    if connack.session_present:  # Session Present 0: no subscription to wait on (the
        # session checks judge whether it should have been kept)
        await publish5(pub, topic, b"marker", Q1)
        await collect_until(back, b"marker", "(a message on the subscription of the resumed"
                            " session) [MQTT-3.1.2-5]")
    await back.send(Connect(V5, ctx.client_id("second"), True, 60), note="a second CONNECT")
    _, closed = await _until_close_or_pong(back)
    count = sum(1 for frame in back.frames if frame[:1] == b"\x20")
    require(count == 1, f"back: {count} CONNACKs on one connection"
            + (" (after a second CONNECT)" if closed else "")
            + ": the server must not send more than one [MQTT-3.2.0-2]")


async def _until_close_or_pong(probe: Probe) -> tuple[list[Packet], bool]:
    """What arrives until the server closes, or answers a PINGREQ sent after the second
    CONNECT (then everything before it was processed)."""
    await probe.send(PingReq(), note="processed the second CONNECT?")
    seen: list[Packet] = []
    while True:
        event = await next_answer(probe)
        if event is None:
            raise Inconclusive("the server neither closed nor answered PINGREQ after a second"
                               " CONNECT")
        if isinstance(event, Closed):
            return seen, True
        if isinstance(event.packet, PingResp):
            return seen, False
        if not isinstance(event.packet, Publish):
            seen.append(event.packet)
