"""The ClientID names the session (3.1.3.1) and Clean Start decides its fate (3.1.2.4).

Two clients leave sessions with a subscription each and a message each waits for them.
The first comes back with Clean Start 0 and gets its own session, its message and not the
other's; the second comes back with Clean Start 1 and gets a new session, with neither
its old subscription nor its queued message. The first connects with a ClientID of
exactly 23 characters, the longest every server must allow; the second's differs from it
in the last character only, so that a server that tells sessions apart by less than the
whole ClientID (a prefix, a fixed-width key) hands one the other's session [MQTT-3.1.3-2].
"""

from __future__ import annotations

from mqttref.impl.codec.packets import Connect, Properties, QoS, Subscription
from mqttref.oracle.checks5.common import (
    REFUSALS_OF_A_VALID_CONNECT,
    V5,
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.evidence import NotApplicable
from mqttref.oracle.flows import first_packet_is_connack, require
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE
KEEP = Properties(session_expiry_interval=10)
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def longest_allowed(token: str) -> str:
    """A ClientID of 23 characters from the alphabet every server must allow, with the
    run's token in it (3.1.3.1)."""
    return (f"Zz9{token}" + ALPHABET[::-7] * 3)[:23]


def last_character_changed(client_id: str) -> str:
    """``client_id`` with its last character replaced by another of the allowed alphabet."""
    return client_id[:-1] + ("0" if client_id[-1] != "0" else "1")


@check5("MQTT-3.1.3-5", "MQTT-3.1.2-6", "MQTT-3.1.3-2", "MQTT-3.1.4-4",
        summary="a ClientID of 23 allowed characters is accepted; Clean Start 0 with no"
        " session creates one; a session comes back to its own ClientID with its own queued"
        " message only; Clean Start 1 discards the session and what it held")
async def client_identifier_names_the_session_v5(ctx: Context) -> None:
    first = longest_allowed(ctx.token)
    second = last_character_changed(first)
    mine, theirs = ctx.topic("cid", "one"), ctx.topic("cid", "two")
    probe = await ctx.open("one")
    ctx.persistent.add(first)
    await probe.send(Connect(V5, first, False, 60, properties=KEEP),
                     note=f"ClientID of {len(first)} characters, Clean Start 0, no session")
    connack = await first_packet_is_connack(probe, "[MQTT-3.1.4-5]")
    require(connack.return_code != 0x85, f"one: CONNACK 0x85 refuses the ClientID {first!r}"
            " of 23 characters from the allowed alphabet, which every server must allow"
            " [MQTT-3.1.3-5]")
    if connack.return_code in REFUSALS_OF_A_VALID_CONNECT:
        raise NotApplicable(f"refuses a valid CONNECT with 0x{connack.return_code:02X}")
    require(connack.return_code == 0, f"one: a valid CONNECT with a ClientID of 23 allowed"
            f" characters must be accepted, got 0x{connack.return_code:02X} [MQTT-3.1.3-5]")
    granted = (await subscribe5(probe, Subscription(mine, Q1), exact=False)).return_codes[0]
    probe.abort()
    other, _ = await connect5(ctx, "two", second, clean=False, props=KEEP)
    await subscribe5(other, Subscription(theirs, Q1), exact=False)
    other.abort()
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, mine, b"for one", Q1)
    await publish5(pub, theirs, b"for two", Q1)
    async with ctx.scenario("Clean Start 0 resumes the ClientID's own session"):
        back, connack = await connect5(ctx, "one", first, clean=False, props=KEEP)
        require(connack.session_present, "one: Clean Start 0 found no session, though the"
                " first CONNECT with Clean Start 0 and no session must have created one"
                " [MQTT-3.1.2-6]")
        await publish5(pub, mine, b"mark one", Q1)
        got = [m.payload for m in await collect_until(back, b"mark one", "(a message on the"
                                                      " session's subscription)"
                                                      " [MQTT-3.1.2-6]")]
        require(b"for two" not in got, f"one: got {got}, with the message queued for the"
                " session of another ClientID: the ClientID must identify the session"
                " [MQTT-3.1.3-2]")
        if granted:  # a QoS 0 message need not be kept for an absent client (3.1.2.4)
            require(b"for one" in got, f"one: got {got} before the marker: the message queued"
                    " for this ClientID's session must come with it [MQTT-3.1.3-2]")
    async with ctx.scenario("Clean Start 1 discards the session"):
        fresh, connack = await connect5(ctx, "two", second, clean=True)
        require(not connack.session_present, "two: Clean Start 1 must start a new session:"
                " Session Present must be 0 [MQTT-3.1.4-4]")
        await subscribe5(fresh, Subscription(ctx.topic("cid", "new"), Q1), exact=False)
        await publish5(pub, theirs, b"after clean", Q1)
        await publish5(pub, ctx.topic("cid", "new"), b"mark two", Q1)
        got = [m.payload for m in await collect_until(fresh, b"mark two", "(a message on the"
                                                      " new session's subscription)"
                                                      " [MQTT-3.3.4-1]")]
        require(not {b"for two", b"after clean"} & set(got), f"two: got {got}: Clean Start 1"
                " must discard the old session, its queued message and its subscription"
                " [MQTT-3.1.4-4]")
