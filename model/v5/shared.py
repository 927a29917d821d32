"""The 5.0 Shared Subscription chart: a message in a group ``$share/{ShareName}/{filter}`` (4.8.2).

Theory of operation: a Shared Subscription's Topic Filter is ``$share/``, a
ShareName of at least one character without ``/``, ``+`` or ``#``, a ``/`` and
a Topic Filter [MQTT-4.8.2-1] [MQTT-4.8.2-2]. The sessions subscribed with the
same such filter form a group; a message matching its filter is sent to the
client of only one of them (4.8), which the server chooses: the model holds the
set of members it may choose, never one expected member. The copy respects that
member's granted QoS [MQTT-4.8.2-3] and carries only that member's Subscription
Identifier (3.3.4). No retained message is sent when a session joins a group
(3.8.4), and No Local on a Shared Subscription is a Protocol Error
[MQTT-3.8.3-4].

SHARED_5 is the chart of one message in one group (a "routing"): ``owed`` until
a member is sent it; a QoS 0 copy makes it ``delivered``; a QoS 1 or 2 copy is
``in_flight`` with its member until that member acknowledges it. Each message
goes to one member, once: no member is sent a second new copy while one is in
flight or after the message was delivered (4.8: "only sent to the Client
associated with one of these Sessions"); the holder gets it again only as the
re-send (DUP 1, the same Packet Identifier) of 4.4.0, which its QoS flow judges.
Then:

- PUBACK or PUBREC with a Reason Code of 0x80 or more discards it: no other
  member may be sent it [MQTT-4.8.2-6].
- QoS 2: the member's connection breaks, the server completes the delivery when
  it reconnects [MQTT-4.8.2-4], by re-sending it (``resend``, 4.3.3); the
  member's session ends first, the message goes to no other member [MQTT-4.8.2-5].
- QoS 1: the member's connection breaks or its session ends, the message is
  ``handed_back``: the server MAY (or, the session gone, SHOULD) send it to
  another member, and may still re-send it to the first one (4.8.2).

``SharedGroups5`` holds the groups and one routing per message and matching
group, judges each observed copy, and names what is owed after quiescence. The
"only one of its sessions" rule of 4.8 has no statement id of its own: a copy to
a second member cites [MQTT-4.8.2-5] or [MQTT-4.8.2-6] where one of them forbids
it, and otherwise no id (``ONLY_ONE_MEMBER`` quotes the section instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import UsageError, Violation
from mqttref.model.topics import matches, topic_filter_problem
from mqttref.model.v5.subscription_options import SHARE_PREFIX, Copy, Message5


class RoutingState(StrEnum):
    OWED = "owed"
    IN_FLIGHT = "in_flight"
    HANDED_BACK = "handed_back"
    DELIVERED = "delivered"
    DISCARDED = "discarded"


class RoutingEvent(StrEnum):
    SEND = "send"
    RESEND = "resend"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CONNECTION_LOST = "connection_lost"
    SESSION_ENDED = "session_ended"


R, RE = RoutingState, RoutingEvent

SHARED_5 = Chart(
    name="shared_5",
    title="Shared Subscription message (MQTT 5.0)",
    description="One message matching one Shared Subscription: sent to only one member of the "
    "group, at that member's QoS; handed to another member only for QoS 1 whose member lost "
    "its connection or session before acknowledging it.",
    protocol="5.0",
    states=states_of(
        RoutingState,
        {
            R.OWED: "the message matched the group's filter; no member has been sent it",
            R.IN_FLIGHT: "one member was sent it at QoS 1 or 2 and has not acknowledged it",
            R.HANDED_BACK: "QoS 1: its member lost its connection or session before the PUBACK",
            R.DELIVERED: "the chosen member has it (QoS 0 sent, or acknowledged)",
            R.DISCARDED: "no member may be sent it any more",
        },
        finals=(R.DELIVERED, R.DISCARDED),
    ),
    events=events_of(
        RoutingEvent,
        {
            RE.SEND: "the server sends the message to a member of the group as a new "
            "PUBLISH (a first send, DUP 0)",
            RE.RESEND: "the server re-sends the PUBLISH to the member holding it, which "
            "reconnected to its session (DUP 1, the same Packet Identifier)",
            RE.ACCEPTED: "the member answers PUBACK or PUBREC with a Reason Code below 0x80",
            RE.REJECTED: "the member answers PUBACK or PUBREC with a Reason Code of 0x80 or more",
            RE.CONNECTION_LOST: "the member's Network Connection closes; its session remains",
            RE.SESSION_ENDED: "the member's session ends before the member reconnects",
        },
    ),
    initial=R.OWED,
    guards=("qos0", "qos1_or_2", "qos1", "qos2", "reconnected"),
    actions=("choose_member", "discard"),
    transitions=(
        Transition(R.OWED, RE.SEND, R.DELIVERED, ("MQTT-4.8.2-3", "MQTT-4.5.0-1"),
                   "qos0", "choose_member"),
        Transition(R.OWED, RE.SEND, R.IN_FLIGHT, ("MQTT-4.8.2-3", "MQTT-4.5.0-1"),
                   "qos1_or_2", "choose_member"),
        Transition(R.HANDED_BACK, RE.SEND, R.IN_FLIGHT, ("MQTT-4.8.2-3",),
                   action="choose_member"),
        Transition(R.IN_FLIGHT, RE.RESEND, R.IN_FLIGHT, ("MQTT-4.8.2-4", "MQTT-4.4.0-1"),
                   "reconnected"),
        Transition(R.IN_FLIGHT, RE.ACCEPTED, R.DELIVERED, ("MQTT-4.3.2-3", "MQTT-4.3.3-3")),
        Transition(R.IN_FLIGHT, RE.REJECTED, R.DISCARDED, ("MQTT-4.8.2-6", "MQTT-4.4.0-2"),
                   action="discard"),
        Transition(R.IN_FLIGHT, RE.CONNECTION_LOST, R.HANDED_BACK, ("MQTT-4.4.0-1",), "qos1"),
        Transition(R.IN_FLIGHT, RE.CONNECTION_LOST, R.IN_FLIGHT, ("MQTT-4.8.2-4",), "qos2"),
        Transition(R.IN_FLIGHT, RE.SESSION_ENDED, R.HANDED_BACK, ("MQTT-4.1.0-2",), "qos1"),
        Transition(R.IN_FLIGHT, RE.SESSION_ENDED, R.DISCARDED, ("MQTT-4.8.2-5", "MQTT-4.1.0-2"),
                   "qos2", "discard"),
    ),
)  # fmt: skip

ONLY_ONE_MEMBER = (
    "4.8: a message matching a Shared Subscription is only sent to one of its sessions"
)
"""Unnumbered (4.8, Shared Subscription): the violations it alone decides cite no id."""


# --------------------------------------------------------------------- filters


@attrs.frozen(order=True)
class SharedFilter:
    """``$share/{share_name}/{topic_filter}``: the group's name is the whole string."""

    share_name: str
    topic_filter: str

    def __str__(self) -> str:
        return f"{SHARE_PREFIX}{self.share_name}/{self.topic_filter}"


def share_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a Shared Subscription's Topic Filter, or None."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return "does not start with $share/ [MQTT-4.8.2-1]"
    share_name, slash, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not share_name:
        return "has an empty ShareName [MQTT-4.8.2-1]"
    if "+" in share_name or "#" in share_name:
        return "has a ShareName with a wildcard [MQTT-4.8.2-2]"
    if not slash or topic_filter_problem(rest) is not None:
        return "has no Topic Filter after the ShareName and '/' [MQTT-4.8.2-2]"
    return None


def parse_shared(topic_filter: str) -> SharedFilter:
    problem = share_problem(topic_filter)
    if problem is not None:
        raise UsageError(f"{topic_filter!r} {problem}")
    share_name, _, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
    return SharedFilter(share_name, rest)


@attrs.frozen
class SubscribeReaction:
    """What the server did with one ``$share/...`` filter of a SUBSCRIBE."""

    suback_code: int | None = None
    """The SUBACK's Reason Code for the filter, None when no SUBACK came."""
    closed: bool = False
    """The server closed the Network Connection (with a DISCONNECT or without)."""


def judge_subscribe(
    client: str, topic_filter: str, no_local: bool, reaction: SubscribeReaction
) -> None:
    """Raise ``Violation`` when the server's answer to a shared filter is not allowed.

    - No Local set: a Protocol Error [MQTT-3.8.3-4], which the server answers by
      closing the connection [MQTT-4.13.1-1]; a SUBACK that leaves it open is wrong.
    - A malformed ShareName: the filter is no Shared Subscription's [MQTT-4.8.2-1]
      [MQTT-4.8.2-2]; a grant (0x00-0x02) accepts it, while a refusal (0x80 or
      more) or a close are both allowed: the specification gives no Reason Code
      for it, so [MQTT-4.13.1-1] does not oblige a close.
    - Otherwise the Reason Codes are the SUBACK's (``reason_codes``).
    """
    problem = share_problem(topic_filter)
    granted = reaction.suback_code is not None and reaction.suback_code < 0x80
    if problem is not None and granted:
        raise Violation(
            client,
            f"{topic_filter!r} {problem}, yet it was granted",
            refs=("MQTT-4.8.2-1", "MQTT-4.8.2-2"),
            allowed=["a SUBACK refusal (0x80 or more)", "close"],
            arrived=f"SUBACK 0x{reaction.suback_code:02X}",
        )
    if problem is None and no_local and not reaction.closed:
        raise Violation(
            client,
            f"No Local on {topic_filter!r} is a Protocol Error",
            refs=("MQTT-3.8.3-4", "MQTT-4.13.1-1"),
            allowed=["close (DISCONNECT 0x82, or none)"],
            arrived="no close"
            if reaction.suback_code is None
            else f"SUBACK 0x{reaction.suback_code:02X} and no close",
        )


# ---------------------------------------------------------------------- groups


@attrs.frozen
class Member:
    """One session's subscription to a group, as granted."""

    client_id: str
    granted_qos: int
    retain_as_published: bool = False
    identifier: int | None = None

    def copy_of(self, message: Message5) -> Copy:
        """The copy this member gets: its QoS [MQTT-4.8.2-3] [MQTT-3.8.4-8], its Retain As
        Published [MQTT-3.3.1-12] [MQTT-3.3.1-13], its identifier only (3.3.4)."""
        ids = () if self.identifier is None else (self.identifier,)
        return Copy(
            min(message.qos, self.granted_qos), message.retain and self.retain_as_published, ids
        )


@attrs.define
class Routing:
    """One message in one group: the SHARED_5 chart's state and its bookkeeping."""

    seq: int
    share: SharedFilter
    message: Message5
    members: Mapping[str, Member]
    """The group's members when the message was published: the ones it is owed to."""
    state: str = SHARED_5.initial
    holders: list[str] = attrs.field(factory=list)
    """Members sent the message so far; the last one holds it."""
    disturbed: bool = False
    """An eligible member lost its connection or left while the message was owed, or
    was away when it was published and would get it at QoS 0: the server may have
    chosen it (and dropped a QoS 0 copy), so the message is not owed to the others."""
    resend_due: str | None = None
    """A QoS 2 holder that reconnected: the delivery is to be completed [MQTT-4.8.2-4]."""
    discard_refs: tuple[str, ...] = ()
    sent_qos: int = 0
    """The QoS of the copy the holder was sent: the member's, not the message's
    [MQTT-4.8.2-3]; a QoS 0 copy waits for no acknowledgement."""
    optional: bool = False
    """Allowed, not owed: a QoS 2 message before its PUBREL (the server may start
    onward delivery at the PUBLISH or at the PUBREL, 4.3.3), or one whose group
    formed after its PUBLISH (a server that delivered at the PUBLISH matched none)."""

    @property
    def eligible(self) -> frozenset[str]:
        return frozenset(self.members)

    def holds(self, client: str, qos: int | None = None) -> Callable[[str], bool]:
        """The chart's guards: the QoS of the copy (``qos`` when one is being sent, else
        the one sent to the member holding it), and whether ``client`` holds it and
        reconnected since its connection broke (the delivery to complete [MQTT-4.8.2-4])."""
        if qos is None:
            qos = self.sent_qos
        truth = {
            "qos0": qos == 0,
            "qos1_or_2": qos > 0,
            "qos1": qos == 1,
            "qos2": qos == 2,
            "reconnected": self.resend_due == client,
        }
        return truth.__getitem__

    def accepts(self, client: str, qos: int) -> bool:
        """Whether the chart lets ``client`` be sent the message now as a new PUBLISH,
        at ``qos``: never while a member holds it in flight, nor once delivered."""
        return SHARED_5.allows(self.state, RE.SEND, self.holds(client, qos))

    def fire(self, event: str, client: str, qos: int | None = None) -> Transition:
        row = SHARED_5.fire(self.state, event, self.holds(client, qos))
        self.state = row.target
        if event == RE.SEND:
            self.sent_qos = self.sent_qos if qos is None else qos
        if row.action == "discard":
            self.discard_refs = row.refs
        return row


@attrs.define
class SharedGroups5:
    """Every group of one server, the members' connections and the messages' routings."""

    _groups: dict[SharedFilter, dict[str, Member]] = attrs.field(factory=dict, init=False)
    _connected: set[str] = attrs.field(factory=set, init=False)
    _routings: dict[int, list[Routing]] = attrs.field(factory=dict, init=False)
    _published: dict[int, Message5] = attrs.field(factory=dict, init=False)
    """Message number -> the message, also when it matched no group (yet)."""
    _next_seq: int = attrs.field(default=1, init=False)

    # --------------------------------------------------------- membership

    def members(self, share: SharedFilter) -> frozenset[str]:
        return frozenset(self._groups.get(share, {}))

    def groups(self) -> tuple[SharedFilter, ...]:
        return tuple(sorted(s for s, m in self._groups.items() if m))

    def subscribe(
        self, member: Member, topic_filter: str, *, no_local: bool = False
    ) -> SharedFilter:
        """The session joins the group (or replaces its own subscription to it).

        Sends no retained message (3.8.4): ``retained_on_subscribe`` is always empty.
        """
        share = parse_shared(topic_filter)
        if no_local:
            raise UsageError(
                f"No Local on {topic_filter!r} is a Protocol Error [MQTT-3.8.3-4]: "
                "the server closes (judge_subscribe), it does not subscribe"
            )
        self._groups.setdefault(share, {})[member.client_id] = member
        self._connected.add(member.client_id)
        return share

    @staticmethod
    def retained_on_subscribe() -> frozenset[str]:
        """Retained messages a join sends: none ("No retained messages are sent", 3.8.4)."""
        return frozenset()

    def unsubscribe(self, client_id: str, topic_filter: str) -> bool:
        """Leave the group; whether the session was a member. What it was sent stays
        in flight until acknowledged [MQTT-3.10.4-3]."""
        share = parse_shared(topic_filter)
        members = self._groups.get(share, {})
        was_member = members.pop(client_id, None) is not None
        if was_member:
            self._disturb(share, client_id)
        return was_member

    # --------------------------------------------------------- connections

    def connect(self, client_id: str) -> None:
        """The member's client reconnects to its session (after ``connection_lost``)."""
        if client_id in self._connected:
            return
        self._connected.add(client_id)
        for routing in self._all():
            if (
                routing.state == R.IN_FLIGHT
                and routing.sent_qos == 2
                and routing.holders
                and routing.holders[-1] == client_id
            ):
                routing.resend_due = client_id

    def connection_lost(self, client_id: str) -> None:
        self._connected.discard(client_id)
        for share, members in self._groups.items():
            if client_id in members:
                self._disturb(share, client_id)
        self._holder_event(client_id, RE.CONNECTION_LOST)

    def session_ended(self, client_id: str) -> None:
        """The session is gone: it leaves every group; what it held is handed back
        (QoS 1) or discarded (QoS 2 [MQTT-4.8.2-5])."""
        self._connected.discard(client_id)
        for share, members in self._groups.items():
            if members.pop(client_id, None) is not None:
                self._disturb(share, client_id)
        self._holder_event(client_id, RE.SESSION_ENDED)

    def _disturb(self, share: SharedFilter, client_id: str) -> None:
        for routing in self._all():
            if routing.share == share and routing.state == R.OWED and client_id in routing.eligible:
                routing.disturbed = True

    def _holder_event(self, client_id: str, event: RoutingEvent) -> None:
        for routing in self._all():
            if routing.state == R.IN_FLIGHT and routing.holders[-1] == client_id:
                routing.fire(event, client_id)
                routing.resend_due = None

    def _all(self) -> list[Routing]:
        return [r for routings in self._routings.values() for r in routings]

    # --------------------------------------------------------- messages

    def publish(self, message: Message5, *, owed: bool = True) -> int:
        """The server took ownership of ``message``: one routing per matching group with
        members. Returns the message's number for ``delivered`` and ``acknowledged``.
        ``owed=False``: a QoS 2 message before its PUBREL, which the server may send
        to a member already or only once released (4.3.3); ``release`` then owes it."""
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._published[seq] = message
        self._routings[seq] = [
            Routing(seq, share, message, dict(members), optional=not owed,
                    disturbed=self._away_at_qos0(members, message))
            for share, members in sorted(self._groups.items())
            if members and matches(share.topic_filter, message.topic)
        ]
        return seq

    def _away_at_qos0(self, members: Mapping[str, Member], message: Message5) -> bool:
        """Whether the server may have chosen a member that is away and dropped the
        message: its copy is QoS 0, which a session holds pending transmission only
        optionally (4.1, Session State; [MQTT-3.1.2-5] in 3.1.1's words), so the message
        is not owed to the group, now or when that member is back."""
        return any(
            client_id not in self._connected and member.copy_of(message).qos == 0
            for client_id, member in members.items()
        )

    def release(self, seq: int) -> None:
        """The publisher's PUBREL for message ``seq`` (published with ``owed=False``):
        the groups of its PUBLISH are owed it now [MQTT-4.5.0-1]; a group formed since
        may be sent it (a server delivering at the PUBREL) or not (one that delivered
        at the PUBLISH): it gets a routing that is allowed, not owed (4.3.3, 4.8.2)."""
        routings = self._routings.setdefault(seq, [])
        message = self._published[seq]
        for routing in routings:
            routing.optional = False
        routed = {r.share for r in routings}
        routings.extend(
            Routing(seq, share, message, dict(members), optional=True)
            for share, members in sorted(self._groups.items())
            if members and share not in routed and matches(share.topic_filter, message.topic)
        )

    def routings(self, seq: int) -> tuple[Routing, ...]:
        return tuple(self._routings.get(seq, ()))

    def recipients(self, seq: int) -> Mapping[SharedFilter, frozenset[str]]:
        """For each group the message matched: the members the server may send it to now."""
        found = {}
        for routing in self.routings(seq):
            members = routing.eligible | self.members(routing.share)
            found[routing.share] = frozenset(
                m for m in members if self._accepts(routing, m)
            )
        return found

    def _accepts(self, routing: Routing, client_id: str) -> bool:
        copy = self._copy_for(routing, client_id)
        return copy is not None and routing.accepts(client_id, copy.qos)

    def _member(self, routing: Routing, client_id: str) -> Member | None:
        """The member's subscription now, or as it was when the message was published."""
        current = self._groups.get(routing.share, {}).get(client_id)
        return current if current is not None else routing.members.get(client_id)

    def delivered(
        self,
        client_id: str,
        seq: int,
        copy: Copy,
        share: SharedFilter | None = None,
        *,
        identified: bool = True,
    ) -> SharedFilter:
        """Judge one PUBLISH of message ``seq`` sent to ``client_id`` for a shared
        subscription; return the group it is counted for.

        ``identified`` False: the member's session is resumed by a 3.1.1 connection,
        whose PUBLISH has no properties, so no Subscription Identifier (3.3.4 is a 5.0
        rule); the session keeps its groups all the same (a session is its ClientID's).

        When the client is in several groups the message matched and ``share`` does
        not say which, the copy counts for a group that may take it, preferring the
        one the client already holds it in, then the group with the fewest members.
        """
        routings = [r for r in self.routings(seq) if share is None or r.share == share]
        message = self._message(seq)
        member_of = [r for r in routings if client_id in r.eligible | self.members(r.share)]
        if not member_of:
            raise Violation(
                client_id,
                f"{message.topic!r}: not a member of a group it matched",
                refs=("MQTT-3.3.2-3",),
                allowed=sorted(str(r.share) for r in routings),
                arrived=str(copy),
            )
        fitting = [r for r in member_of if self._fits(r, client_id, copy, identified)]
        if not fitting:
            expected = {str(self._copy_for(r, client_id)) for r in member_of}
            raise Violation(
                client_id,
                f"{message.topic!r} sent as {copy}",
                refs=_copy_refs(copy, [self._copy_for(r, client_id) for r in member_of]),
                allowed=sorted(expected),
                arrived=str(copy),
            )
        open_ = [r for r in fitting if r.accepts(client_id, copy.qos)]
        if not open_:
            if self._duplicate_allowed(fitting, client_id, copy, message):
                return fitting[0].share
            raise self._second_member(client_id, fitting[0], copy)
        open_.sort(key=lambda r: (client_id not in r.holders, len(r.eligible), r.share))
        chosen = open_[0]
        chosen.fire(RE.SEND, client_id, copy.qos)
        chosen.holders.append(client_id)
        chosen.resend_due = None
        return chosen.share

    def resent(self, client_id: str, seq: int) -> SharedFilter:
        """A member was sent message ``seq`` again, as the re-send (DUP 1, its Packet
        Identifier) of the copy in flight in its session after it reconnected
        [MQTT-4.4.0-1]. Holding it at QoS 2, that completes the delivery it is owed
        [MQTT-4.8.2-4] (the chart's ``resend``); a QoS 1 copy handed back makes it the
        holder again; a copy the message went on from (to another member) is its
        session's own business. The broker model leaves re-sends to the member's QoS
        flow, which owes and judges them; the acknowledgement reaches ``acknowledged``."""
        for routing in self.routings(seq):
            if not routing.holders or client_id not in routing.holders:
                continue
            if routing.holders[-1] == client_id and routing.state == R.IN_FLIGHT:
                routing.fire(RE.RESEND, client_id)
                routing.resend_due = None
            elif routing.holders[-1] == client_id and routing.state == R.HANDED_BACK:
                routing.fire(RE.SEND, client_id)
            return routing.share
        raise UsageError(f"{client_id} was re-sent message {seq}, which it was never sent")

    def _fits(self, routing: Routing, client_id: str, copy: Copy, identified: bool) -> bool:
        want = self._copy_for(routing, client_id)
        if want is not None and not identified:
            want = attrs.evolve(want, identifiers=())
        return want == copy

    def _copy_for(self, routing: Routing, client_id: str) -> Copy | None:
        member = self._member(routing, client_id)
        return None if member is None else member.copy_of(routing.message)

    def _message(self, seq: int) -> Message5:
        for routing in self.routings(seq):
            return routing.message
        raise UsageError(f"message {seq} matched no group (or was never published)")

    @staticmethod
    def _duplicate_allowed(
        fitting: list[Routing], client_id: str, copy: Copy, message: Message5
    ) -> bool:
        """A QoS 1 message sent at QoS 0 may come twice to its member (3.8.4)."""
        return (
            message.qos == 1
            and copy.qos == 0
            and any(r.holders and r.holders[-1] == client_id for r in fitting)
        )

    def _second_member(self, client_id: str, routing: Routing, copy: Copy) -> Violation:
        holder = routing.holders[-1] if routing.holders else "nobody"
        if routing.state == R.DISCARDED:
            why, refs = "the message was discarded", routing.discard_refs
        elif holder == client_id:
            why, refs = f"a second new copy to {holder}, which was sent it ({routing.state})", ()
        else:
            why, refs = f"{holder} was sent it ({routing.state})", ()
        return Violation(
            client_id,
            f"{routing.message.topic!r} in {routing.share}: {why}; {ONLY_ONE_MEMBER}",
            refs=refs,
            allowed=["no copy"],
            arrived=str(copy),
        )

    def acknowledged(self, client_id: str, seq: int, reason_code: int) -> None:
        """The member answered the message's PUBLISH with PUBACK or PUBREC.

        A QoS 1 message handed back when its member's connection broke may be re-sent to
        that member when it reconnects (the re-send of 4.4.0, DUP 1, which the member's
        QoS flow judges): its acknowledgement then finds the message handed back, and
        the member holds it again."""
        event = RE.REJECTED if reason_code >= 0x80 else RE.ACCEPTED
        for routing in self.routings(seq):
            if not routing.holders or routing.holders[-1] != client_id:
                continue
            if routing.state == R.HANDED_BACK:
                routing.fire(RE.SEND, client_id)
            if routing.state == R.IN_FLIGHT:
                routing.fire(event, client_id)
                routing.resend_due = None  # the delivery is complete (or refused)
                return
        if any(r.state == R.DELIVERED and client_id in r.holders for r in self.routings(seq)):
            # A QoS 1 message handed back when this member's connection broke went to
            # another member, who acknowledged it; the member reconnected and its QoS
            # flow re-sent its copy all the same [MQTT-4.4.0-1]: that copy's PUBACK.
            return
        raise UsageError(f"{client_id} acknowledged message {seq}, which it does not hold")

    # --------------------------------------------------------- obligations

    def owed(self) -> list[tuple[Routing, tuple[str, ...]]]:
        """Routings the server owes a PUBLISH now, with the statements that owe it.

        A message owed to a group whose eligible members all stayed connected and
        subscribed must have gone to one of them [MQTT-4.5.0-1]; one that a member
        may have been chosen for and then disconnected is not owed to the others.
        A QoS 2 message whose member reconnected is owed to it [MQTT-4.8.2-4].
        """
        found: list[tuple[Routing, tuple[str, ...]]] = []
        for routing in self._all():
            if (
                routing.state == R.OWED
                and not routing.disturbed
                and not routing.optional
                and routing.eligible
                and routing.eligible <= self._connected
            ):
                found.append((routing, ("MQTT-4.5.0-1",)))
            elif routing.resend_due is not None and routing.state == R.IN_FLIGHT:
                found.append((routing, ("MQTT-4.8.2-4", "MQTT-4.4.0-1")))
        return found

    def check_quiescent(self) -> list[Violation]:
        """After quiescence, every owed routing is a violation."""
        return [
            Violation(
                str(routing.share),
                f"{routing.message.topic!r} (message {routing.seq}) went to no member"
                if routing.state == R.OWED
                else f"{routing.message.topic!r} (message {routing.seq}) not re-sent to "
                f"{routing.resend_due}",
                refs=refs,
                allowed=sorted(routing.eligible),
            )
            for routing, refs in self.owed()
        ]


def _copy_refs(copy: Copy, expected: list[Copy | None]) -> tuple[str, ...]:
    refs: set[str] = set()
    for want in expected:
        if want is None:
            continue
        if want.qos != copy.qos:
            refs.update(("MQTT-4.8.2-3", "MQTT-3.8.4-8"))
        if want.retain != copy.retain:
            refs.update(("MQTT-3.3.1-12", "MQTT-3.3.1-13"))
        if want.identifiers != copy.identifiers:
            refs.add("MQTT-3.3.4-3")
    return tuple(sorted(refs))
