"""MQTT 5.0 enhanced authentication (4.12) as a client without credentials can judge it:
an Authentication Method the server does not know, and AUTH packets no exchange allows.

The method name is made up for the run, so a server that knows it is not expected; one
that does (it answers AUTH 0x18 or accepts the CONNECT naming the method) leaves the
refusal without a scenario: NOT APPLICABLE, with what it did judged on the way.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    Publish,
    QoS,
    Subscription,
)
from mqttref.oracle.checks5.common import (
    CONNACK_CODES,
    V5,
    check5,
    closes_after_error,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received, describe
from mqttref.oracle.scenario import Context

CONTINUE = 0x18
RE_AUTHENTICATE = 0x19


@check5("MQTT-4.12.0-1", "MQTT-3.1.4-6",
        summary="a CONNECT naming an Authentication Method the server does not support is"
        " refused (CONNACK 0x80 or above, 0x8C or 0x87 named) and the connection closed, and"
        " a PUBLISH sent after it is not processed")
async def unsupported_authentication_method_v5(ctx: Context) -> None:
    method = f"X-MQTTREF-CHECK-{ctx.token}"
    async with ctx.scenario("refused and closed"):
        probe = await ctx.open("auth")
        await _connect_with(ctx, probe, method)
        code = await _refusal(probe, method)
        if code is not None:
            await probe.wait_close(why=f"CONNACK 0x{code:02X} refused the CONNECT naming the"
                                   f" unsupported Authentication Method {method!r}"
                                   " [MQTT-4.12.0-1] [MQTT-3.2.2-7]")
    async with ctx.scenario("data after the refused CONNECT"):
        # Its own connection: a server may close on the PUBLISH as well, which must not
        # pass for the close the refusal owes (judged above on a connection without it).
        topic = ctx.topic("auth", "after")
        watcher, _ = await connect5(ctx, "watch")
        await subscribe5(watcher, Subscription(topic, QoS.AT_MOST_ONCE), exact=False)
        probe = await ctx.open("auth")
        await _connect_with(ctx, probe, method)
        await probe.send(Publish(topic, b"after-connect", QoS.AT_MOST_ONCE),
                         note="sent before any answer to the CONNECT")
        await _refusal(probe, method)
        deadline = probe.timing.reply_bound
        while not isinstance(event := await probe.next_event(deadline), Closed):
            if event is None:
                raise Inconclusive("the refused connection stayed open (judged by the"
                                   " scenario 'refused and closed')")
        pub, _ = await connect5(ctx, "pub")
        await publish5(pub, topic, b"marker", QoS.AT_MOST_ONCE)
        before = await collect_until(watcher, b"marker", "(a later message on the watched"
                                     " topic) [MQTT-3.3.4-1]")
        require(all(m.payload != b"after-connect" for m in before), "watch: the PUBLISH the"
                " client sent after a CONNECT the server refused must not be processed"
                " [MQTT-3.1.4-6]")


async def _connect_with(ctx: Context, probe: Probe, method: str) -> None:
    await probe.send(Connect(V5, ctx.client_id("auth"), True, 60,
                             properties=Properties(authentication_method=method)),
                     note="an Authentication Method no server knows")


async def _refusal(probe: Probe, method: str) -> int | None:
    """How the server refused the CONNECT naming ``method``: its CONNACK code, or None for
    a close without CONNACK. A server that goes on with the method makes the check NOT
    APPLICABLE, with what it sent judged."""
    why = f"(the Authentication Method {method!r} is one the server does not support)"
    event = await probe.next_event(probe.timing.reply_bound)
    if event is None:
        raise Deviation(f"auth: neither a CONNACK, an AUTH nor the close within"
                        f" {probe.timing.reply_bound:.1f}s {why} [MQTT-4.12.0-1]")
    if isinstance(event, Closed):
        require(True, f"auth: closed without CONNACK {why} [MQTT-4.12.0-1]")
        return None
    if not isinstance(event, Received):
        raise Deviation(f"auth: malformed bytes from the server: {event.error}")
    packet = event.packet
    if isinstance(packet, Auth):
        require(packet.reason_code == CONTINUE, f"auth: the server's AUTH during the exchange"
                f" must carry 0x18 (Continue authentication), got 0x{packet.reason_code:02X}"
                " [MQTT-4.12.0-2]")
        require(packet.properties.authentication_method == method, f"auth: the AUTH must"
                f" carry the CONNECT's Authentication Method {method!r}, got"
                f" {packet.properties.authentication_method!r} [MQTT-4.12.0-5]")
        raise NotApplicable(f"continues an exchange for the made-up method {method!r} (it"
                            " treats it as supported, 4.12)", "MQTT-4.12.0-1", "MQTT-3.1.4-6")
    if not isinstance(packet, ConnAck):
        raise Deviation(f"auth: {describe(packet)} arrived before any CONNACK {why}"
                        " [MQTT-4.12.0-1]")
    code = packet.return_code
    if code < 0x80:
        echoed = packet.properties.authentication_method
        if echoed == method:
            require(True, f"auth: the successful CONNACK (0x{code:02X}) carries the CONNECT's"
                    f" Authentication Method {method!r} [MQTT-4.12.0-5]")
            raise NotApplicable(f"accepts the made-up method {method!r} as supported (4.12)",
                                "MQTT-4.12.0-1", "MQTT-3.1.4-6")
        missing = (f"auth: a successful CONNACK (0x{code:02X}) must carry the CONNECT's"
                   f" Authentication Method {method!r}, got {echoed!r} [MQTT-4.12.0-5]")
        unused = await _method_not_in_use(probe, method)
        raise Deviation(missing if unused is None else
                        f"{missing}; and the server does not support the method: {unused}, yet"
                        " it accepted the CONNECT naming it instead of closing [MQTT-4.12.0-1]")
    require(code in CONNACK_CODES, f"auth: CONNACK 0x{code:02X} must be a Connect Reason Code"
            " [MQTT-3.2.2-8]")
    require(not packet.session_present, "auth: a CONNACK with a non-zero Reason Code must set"
            " Session Present to 0 [MQTT-3.2.2-6]")
    return code


async def _method_not_in_use(probe: Probe, method: str) -> str | None:
    """After a successful CONNACK without the CONNECT's Authentication Method: whether the
    server took the method up at all. The CONNACK alone cannot say (a server that did
    and left the method out breaks only [MQTT-4.12.0-5]); a re-authentication by the
    method can, for the client that named it may start one after CONNACK (4.12.1). A
    DISCONNECT 0x8C (the method "is not supported or does not match the authentication
    method currently in use") or 0x82 (AUTH on a connection that named no method is a
    Protocol Error, 4.12) says the connection has no method: what that answer was, else
    None (an AUTH goes on with the method; anything else tells nothing)."""
    await probe.send(Auth(RE_AUTHENTICATE, Properties(authentication_method=method)),
                     note="re-authentication by the CONNECT's method: is it in use?")
    event = await probe.next_event(probe.timing.reply_bound)
    while isinstance(event, Received) and not isinstance(event.packet, (Auth, Disconnect)):
        probe.pending.append(event.packet)
        event = await probe.next_event(probe.timing.reply_bound)
    if isinstance(event, Received) and isinstance(event.packet, Disconnect):
        meaning = NO_METHOD_IN_USE.get(event.packet.reason_code)
        if meaning is not None:
            return (f"a re-authentication by it got DISCONNECT"
                    f" 0x{event.packet.reason_code:02X} ({meaning})")
    return None


NO_METHOD_IN_USE = {0x82: "Protocol Error", 0x8C: "Bad authentication method"}
"""The DISCONNECT codes by which a server answering a re-authentication says the
connection has no Authentication Method in use (``_method_not_in_use``)."""


@check5("MQTT-4.13.1-1", "MQTT-4.12.0-6",
        summary="an AUTH packet from a client whose CONNECT named no Authentication Method,"
        " or before any CONNECT, closes the connection and is never answered with AUTH")
async def auth_without_a_method_v5(ctx: Context) -> None:
    async with ctx.scenario("AUTH after a CONNECT without a method"):
        probe, _ = await connect5(ctx, "plain")
        await probe.send(Auth(RE_AUTHENTICATE, Properties(authentication_method="SCRAM-SHA-256")),
                         note="re-authentication on a connection that named no method")
        why = ("an AUTH from a client whose CONNECT named no Authentication Method is a"
               " Protocol Error (4.12, 0x82) [MQTT-4.13.1-1]")
        event = await probe.next_event(probe.timing.reply_bound)
        if isinstance(event, Received):
            require(not isinstance(event.packet, Auth), f"plain: the server must not send an"
                    f" AUTH packet to a client whose CONNECT named no Authentication Method,"
                    f" got {describe(event.packet)} [MQTT-4.12.0-6]")
            probe.pending.insert(0, event.packet)
        await closes_after_error(probe, why)
    async with ctx.scenario("AUTH before CONNECT"):
        probe = await ctx.open("first")
        await probe.send(Auth(CONTINUE, Properties(authentication_method="SCRAM-SHA-256")),
                         note="AUTH as the first packet")
        await closes_after_error(probe, "a first packet other than CONNECT is a Protocol Error"
                                 " (3.1, 4.13) [MQTT-4.13.1-1]", connack=True)
