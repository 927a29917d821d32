"""MQTT 5.0 enhanced authentication (4.12) through an exchange a client can take part in:
SCRAM-SHA-256 (RFC 7677), the one method with a public definition a broker is likely to
offer.

A server that does not offer it (CONNACK 0x8C or 0x87, the refusal [MQTT-4.12.0-1] lets it
give) leaves every statement here NOT APPLICABLE. One that does is judged on an exchange
with a proof no password makes (its AUTH packets, then the refusal and the close), and,
given the run's user and password (``-u``/``-P``), on a re-authentication with a wrong
proof (the close) and on an AUTH packet with reserved flags set (the close). The client's
Maximum Packet Size is the size of the server's challenge as learned in a first exchange,
plus a little for a longer nonce: a Reason String the server would add must be left out.
"""

from __future__ import annotations

import secrets

from mqttref.impl.auth import ScramSha256Client
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import Auth, ConnAck, Connect, Packet, Properties
from mqttref.oracle.checks5._closing import ending, size
from mqttref.oracle.checks5.common import V5, check5
from mqttref.oracle.connection import current
from mqttref.oracle.evidence import Deviation, Inconclusive, NotApplicable
from mqttref.oracle.flows import require
from mqttref.oracle.probe import Closed, Probe, Received, describe
from mqttref.oracle.scenario import Context

METHOD = "SCRAM-SHA-256"
CONTINUE, RE_AUTHENTICATE = 0x18, 0x19
AUTH_CODES = frozenset({0x00, CONTINUE, RE_AUTHENTICATE})
"""Authenticate Reason Codes (3.15.2.1)."""
SLACK = 16
"""Bytes a second challenge may be longer than the first (a longer nonce)."""
NEEDS_A_USER = ("MQTT-4.12.1-2", "MQTT-3.15.1-1")


def _user(ctx: Context) -> tuple[str, str | None]:
    """The run's first user and password (None without), or a made-up user."""
    users = current().users
    if users and users[0].password is not None:
        return users[0].username, users[0].password.decode("utf-8", "replace")
    if users:
        return users[0].username, None
    return f"mqttref-check-{ctx.token}", None


async def _begin(ctx: Context, name: str, scram: ScramSha256Client, *,
                 limit: int | None = None) -> tuple[Probe, Auth]:
    """CONNECT naming SCRAM-SHA-256 with its first message; the server's challenge, judged.

    A refusal of the method makes the check NOT APPLICABLE; a CONNACK that accepts
    without an exchange too, after its Authentication Method is judged."""
    probe = await ctx.open(name)
    props = Properties(authentication_method=METHOD, authentication_data=scram.initial_data(),
                       maximum_packet_size=limit)
    await probe.send(Connect(V5, ctx.client_id(name), True, 60, username=scram.user_name,
                             properties=props), note="SCRAM-SHA-256 client-first-message")
    packet = await _next(probe, "the answer to a CONNECT naming SCRAM-SHA-256")
    if isinstance(packet, ConnAck):
        code = packet.return_code
        if code < 0x80:
            _same_method(probe, packet, "a successful CONNACK")
            raise NotApplicable(f"accepts a SCRAM-SHA-256 CONNECT without an exchange"
                                f" (0x{code:02X}): nothing to judge of one")
        raise NotApplicable(f"refuses the Authentication Method {METHOD!r} with CONNACK"
                            f" 0x{code:02X} (it does not offer it, [MQTT-4.12.0-1])")
    if not isinstance(packet, Auth):
        raise Deviation(f"{name}: {describe(packet)} arrived before any CONNACK [MQTT-3.2.0-1]")
    _judge_auth(probe, packet, limit)
    return probe, packet


async def _next(probe: Probe, what: str) -> Packet:
    event = await probe.next_event(probe.timing.reply_bound)
    if event is None:
        raise Inconclusive(f"{probe.name}: no {what} within {probe.timing.reply_bound:.1f}s")
    if isinstance(event, Closed):
        raise Inconclusive(f"{probe.name}: closed instead of {what}")
    if not isinstance(event, Received):
        raise Deviation(f"{probe.name}: malformed bytes from the server: {event.error}")
    return event.packet


def _same_method(probe: Probe, packet: Auth | ConnAck, what: str) -> None:
    require(packet.properties.authentication_method == METHOD, f"{probe.name}: {what} must"
            f" carry the CONNECT's Authentication Method {METHOD!r}, got"
            f" {packet.properties.authentication_method!r} [MQTT-4.12.0-5]")


def _judge_auth(probe: Probe, packet: Auth, limit: int | None) -> None:
    code = packet.reason_code
    require(code in AUTH_CODES, f"{probe.name}: AUTH 0x{code:02X} must carry an Authenticate"
            " Reason Code [MQTT-3.15.2-1]")
    require(code == CONTINUE, f"{probe.name}: the server's AUTH asking for more must carry"
            f" 0x18 (Continue authentication), got 0x{code:02X} [MQTT-4.12.0-2]")
    _same_method(probe, packet, "the server's AUTH")
    if limit is not None:
        require(size(packet) <= limit, f"{probe.name}: the AUTH ({size(packet)} bytes) must fit"
                f" the client's Maximum Packet Size {limit}, its Reason String and User"
                " Properties left out where they do not [MQTT-3.15.2-2] [MQTT-3.15.2-3]")


def _core(packet: Auth) -> int:
    """The AUTH's size without what may be left out (Reason String, User Properties)."""
    props = packet.properties
    bare = Properties(authentication_method=props.authentication_method,
                      authentication_data=props.authentication_data)
    return len(encode(Auth(packet.reason_code, bare), V5))


@check5("MQTT-3.15.2-1", "MQTT-3.15.2-2", "MQTT-3.15.2-3", "MQTT-4.12.0-2", "MQTT-4.12.0-4",
        "MQTT-4.12.0-5", "MQTT-4.12.1-2", "MQTT-3.15.1-1",
        summary="SCRAM-SHA-256, where offered: the server's AUTH carries 0x18 and the method"
        " and fits the client's limit; a wrong proof is refused and closed, at CONNECT and on"
        " re-authentication; an AUTH with reserved flags set closes")
async def enhanced_authentication_v5(ctx: Context) -> None:
    user, password = _user(ctx)
    wrong = secrets.token_hex(8)
    # Whether the server offers the method at all decides for every scenario.
    first, challenge = await _begin(ctx, "learn", ScramSha256Client(user, wrong))
    await first.close()
    limit = _core(challenge) + SLACK
    async with ctx.scenario("a wrong proof at CONNECT"):
        scram = ScramSha256Client(user, wrong)
        probe, challenge = await _begin(ctx, "wrong", scram, limit=limit)
        await probe.send(Auth(CONTINUE, Properties(
            authentication_method=METHOD,
            authentication_data=scram.challenge(challenge.properties.authentication_data))),
            note="client-final-message with a proof of a wrong password")
        await ending(probe, "a proof no password of the user makes: the server rejects the"
                     " authentication and must close [MQTT-4.12.0-4]", before_connack=True)
    if password is None:
        raise NotApplicable("no -u/-P given: a re-authentication needs an exchange that"
                            " succeeds first", *NEEDS_A_USER)
    async with ctx.scenario("a wrong proof on re-authentication"):
        probe = await _connected(ctx, "reauth", user, password)
        scram = ScramSha256Client(user, wrong)
        await probe.send(Auth(RE_AUTHENTICATE, Properties(
            authentication_method=METHOD, authentication_data=scram.initial_data())),
            note="re-authentication, client-first-message")
        packet = await _next(probe, "AUTH 0x18 for the re-authentication")
        if not isinstance(packet, Auth):
            raise Deviation(f"reauth: {describe(packet)} answered AUTH 0x19; the"
                            " re-authentication goes on with AUTH 0x18 [MQTT-4.12.0-2]")
        _judge_auth(probe, packet, None)
        await probe.send(Auth(CONTINUE, Properties(
            authentication_method=METHOD,
            authentication_data=scram.challenge(packet.properties.authentication_data))),
            note="client-final-message with a proof of a wrong password")
        await ending(probe, "the re-authentication failed: the server must close"
                     " [MQTT-4.12.1-2]")
    async with ctx.scenario("AUTH with reserved flags set"):
        probe = await _connected(ctx, "flags", user, password)
        body = encode(Auth(RE_AUTHENTICATE, Properties(
            authentication_method=METHOD,
            authentication_data=ScramSha256Client(user, password).initial_data())), V5)
        await probe.send(bytes((body[0] | 0x01,)) + body[1:],
                         note="AUTH 0x19 with fixed-header flags 0001")
        await ending(probe, "an AUTH with reserved flags set is malformed [MQTT-3.15.1-1]")


async def _connected(ctx: Context, name: str, user: str, password: str) -> Probe:
    """A client through a whole SCRAM-SHA-256 exchange with the run's password."""
    scram = ScramSha256Client(user, password)
    probe, challenge = await _begin(ctx, name, scram)
    await probe.send(Auth(CONTINUE, Properties(
        authentication_method=METHOD,
        authentication_data=scram.challenge(challenge.properties.authentication_data))),
        note="client-final-message")
    packet = await _next(probe, "CONNACK for the finished exchange")
    if not isinstance(packet, ConnAck) or packet.return_code >= 0x80:
        raise Inconclusive(f"{name}: the exchange with the run's password ended in"
                           f" {describe(packet)}: is -u/-P a SCRAM-SHA-256 user of it?")
    _same_method(probe, packet, "the successful CONNACK")
    return probe
