"""Access control as a client sees it: a filter the user may not subscribe to is refused.

MQTT 3.1.1 leaves authorization to the server: section 5.4.2 says a server
may restrict what a client may subscribe to, but it is not normative, and no
statement requires a server to refuse any filter. What the specification does
fix is how a refusal looks: the SUBACK holds one return code per filter
[MQTT-3.8.4-5], in the order of the SUBSCRIBE [MQTT-3.9.3-1], and 0x80 is the
code of a failed subscription (3.9.3) [MQTT-3.9.3-2].

So, given with ``--denied-filter`` a filter the run's user (``-u``) may not
subscribe to, this check is a robustness check (it cites no statement for the
refusal itself): a grant of that filter, or a message on a topic matching only
that filter delivered to the user, is a finding against the broker's access
control (or against the ``--denied-filter`` the run was given), never a FAIL of
an unrelated statement. The SUBACK's shape is judged against the statements
above, as in every SUBSCRIBE of the suite. Without ``--denied-filter`` the
check is NOT APPLICABLE.

The 5.0 counterpart (reason code 0x87 Not authorized) belongs to the 5.0 checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mqttref.impl.codec.packets import Connect, PingReq, PingResp, ProtocolLevel, Publish, QoS
from mqttref.oracle.connection import Credentials, current
from mqttref.oracle.evidence import LEDGER, Inconclusive
from mqttref.oracle.flows import first_packet_is_connack, subscribe
from mqttref.oracle.probe import Deviation, NotApplicable, Probe
from mqttref.oracle.scenario import V5, V311, Context, check

ACL_FINDING = ("ACL finding (no normative statement requires the refusal: section 5.4.2 leaves"
               " authorization to the server)")


def filter_problem(text: str) -> str | None:
    """Why ``text`` is no topic filter (4.7.1, 4.7.3), or None when it is one."""
    if not text:
        return "a topic filter is at least one character long [MQTT-4.7.3-1]"
    if "\x00" in text:
        return "a topic filter must not contain U+0000 [MQTT-4.7.3-2]"
    if len(text.encode("utf-8", "surrogatepass")) > 65535:
        return "a topic filter is at most 65535 bytes long [MQTT-4.7.3-3]"
    levels = text.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be a whole level and the last one [MQTT-4.7.1-2]"
        if "+" in level and level != "+":
            return "'+' must be a whole level [MQTT-4.7.1-3]"
    return None


def topic_in(topic_filter: str, token: str) -> str:
    """A topic name that ``topic_filter`` matches, with this run's token for each wildcard."""
    return "/".join(f"mqr{token}" if level in ("+", "#") else level
                    for level in topic_filter.split("/"))


ACCEPTS_CONNECT = {V311: "[MQTT-3.1.4-4]", V5: "[MQTT-3.1.4-5]"}
"""The statement a CONNACK to a valid CONNECT observes, at each level."""


async def connect_as(ctx: Context, name: str, user: Credentials | None,
                     level: ProtocolLevel = V311) -> Probe:
    """A client of ``level`` connected as ``user`` (anonymous when None), whatever the
    alternation; a refusal is inconclusive (the users are the run's, not the broker's fault)."""
    probe = await ctx.open(name)
    await probe.send(Connect(level, ctx.client_id(name), True, 60,
                             username=user.username if user else None,
                             password=user.password if user else None))
    connack = await first_packet_is_connack(probe, ACCEPTS_CONNECT[level])
    if connack.return_code:
        raise Inconclusive(f"{name}: CONNECT refused with 0x{connack.return_code:02X}")
    return probe


async def each_denied_filter(ctx: Context,
                             judge: Callable[[Context, str], Awaitable[None]]) -> None:
    """``judge`` each ``--denied-filter`` in a scenario of its own; NOT APPLICABLE without
    one (at either level: the refusal is the broker's choice, the filter the run's)."""
    if not ctx.denied_filters:
        raise NotApplicable("no --denied-filter given: this check needs a filter the run's"
                            " user may not subscribe to")
    for denied in ctx.denied_filters:
        async with ctx.scenario(f"denied filter {denied!r}"):
            await judge(ctx, denied)


@check(robustness=True,
       summary="SUBSCRIBE to a --denied-filter: refused with 0x80 beside a granted filter,"
               " and nothing on its topics delivered")
async def denied_filter_refused(ctx: Context) -> None:
    await each_denied_filter(ctx, _judge_denied)


async def _judge_denied(ctx: Context, denied: str) -> None:
    allowed = ctx.topic("acl", "allowed")
    users = current().users
    # The filters are denied to the first user (-u); the second (--user2), when given,
    # publishes, so that a broker that lets it write there has something to withhold.
    sub = await connect_as(ctx, "sub", users[0] if users else None)
    suback = await subscribe(sub, (allowed, QoS.AT_MOST_ONCE), (denied, QoS.AT_MOST_ONCE),
                             exact=False)
    allowed_code, denied_code = suback.return_codes
    if allowed_code == 0x80:
        raise Inconclusive(f"sub: the broker refused the check's own filter {allowed!r} too; let"
                           " the user read mqttref-check/# so that a refusal means the ACL")
    ledger = LEDGER.get(ctx.ledger)
    granted = denied_code != 0x80
    if granted:
        ledger.deviated(Deviation(
            f"{ACL_FINDING}: sub: the SUBACK grants QoS {denied_code} for {denied!r}, a filter"
            " --denied-filter says the user may not subscribe to (a refusal is return code"
            " 0x80, 3.9.3)"))
    else:
        ctx.trace.note(f"sub: {denied!r} refused with 0x80 beside the granted {allowed!r}")
    topic = topic_in(denied, ctx.token)
    pub = await connect_as(ctx, "pub", users[-1] if users else None)
    await pub.send(Publish(topic, f"denied {ctx.token}".encode(), QoS.AT_MOST_ONCE))
    await pub.send(PingReq(), note="the broker has taken the PUBLISH before the next one")
    await pub.expect(PingResp)
    await pub.send(Publish(allowed, f"allowed {ctx.token}".encode(), QoS.AT_MOST_ONCE))
    seen: list[Publish] = []
    while True:
        message = await sub.expect(Publish, "sub: the PUBLISH its subscription owes"
                                   " [MQTT-4.5.0-1]")
        seen.append(message)
        if message.topic == allowed:
            break
    seen += [p for p in await sub.quiet() if isinstance(p, Publish)]
    if any(p.topic == topic for p in seen):
        ledger.deviated(Deviation(
            f"{ACL_FINDING}: sub: a message on {topic!r}, which only the filter {denied!r}"
            " matches, was delivered to a user --denied-filter says may not subscribe to it"))
    else:
        ctx.trace.note(f"sub: nothing on {topic!r} delivered (if the publisher may not write"
                       " there either, the broker routed nothing)")
