"""Shared subscriptions (MQTT 5.0, 4.8.2): each message to one member of a group.

Theory of operation. ``$share/{ShareName}/{filter}`` makes the subscribing
session a member of the group named by the whole string: the ShareName and
the filter together, so ``$share/g/a`` and ``$share/g/b`` are two groups. A
group is not a topic server's business: topic servers deliver to every
subscriber, a group to one. So groups live beside them, in ``SharedGroups``,
indexed by their filters in a ``FilterTree`` whose "subscribers" are group
keys; the registry asks it after the topic server has delivered, and only
when a group exists, so a broker without shared subscriptions pays one test
per publish.

Each group picks its members round robin, skipping members without a
connection while any member has one (a disconnected persistent member queues,
which is allowed but useless while another could take the message now). A
message sent through a group remembers the group (``OutboundMessage.share``),
so when a member's session ends with QoS 1/2 messages of the group still
unacknowledged or queued, ``SharedGroups.hand_over`` gives them to another
member, as 4.8.2 says the Server SHOULD. A member that answered PUBACK or
PUBREC with a reason code of 0x80 or more has no such message left: it was
refused, and goes to nobody else [MQTT-4.8.2-6]. The store keeps the group of
every queued and in-flight message with it, so a restart changes none of this: a
member whose session resumes gets its messages, one whose session ends after the
restart (or expired while the broker was down, ended at start-up by the session
table) hands them over like any other.

Shared subscriptions get no retained messages when made (the registry skips
them, 4.8.2) and may not set No Local [MQTT-3.8.3-4] (the codec refuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from mqttref.impl.broker.matching import FilterTree
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.packets import QoS
from mqttref.impl.flow import OutboundState
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message, OutboundMessage

SHARED_PREFIX = "$share/"


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """``(ShareName, filter)`` of a well-formed shared subscription, else None.

    A ShareName is at least one character [MQTT-4.8.2-1] without ``/``, ``+`` or
    ``#``, followed by ``/`` and a topic filter [MQTT-4.8.2-2]. At 5.0 the codec has
    refused anything else already; below 5.0 the registry refuses it with 0x80.
    """
    if not topic_filter.startswith(SHARED_PREFIX):
        return None
    share_name, slash, inner = topic_filter[len(SHARED_PREFIX):].partition("/")
    if not share_name or not slash or not inner or "+" in share_name or "#" in share_name:
        return None
    return share_name, inner


@attrs.define(slots=True)
class Member:
    """One session in a group, with what its own SUBSCRIBE asked for."""

    session: Session
    granted: QoS
    identifier: int | None = None
    """Its Subscription Identifier, carried by what the group sends it [MQTT-3.3.4-3]."""
    retain_as_published: bool = False
    """Forwarded messages keep their RETAIN flag [MQTT-3.3.1-12]."""


class SharedGroup:
    """The members of one ``$share/{ShareName}/{filter}`` and whose turn it is."""

    __slots__ = ("_turn", "inner", "key", "members")

    def __init__(self, key: str, inner: str) -> None:
        self.key = key
        """The whole ``$share/...`` filter: the group's name in sessions and the store."""
        self.inner = inner
        """The topic filter the group matches with."""
        self.members: dict[str, Member] = {}
        """Client id -> member, in the order they joined."""
        self._turn = 0

    def __repr__(self) -> str:
        return f"<SharedGroup {clip(self.key)} {len(self.members)} members>"

    def pick(self, leaving: str | None = None) -> Member | None:
        """The next member round robin: a connected one if any is, else any, never
        ``leaving``. None if the group has nobody else."""
        members = list(self.members.values())
        count = len(members)
        fallback: tuple[int, Member] | None = None
        for step in range(count):
            index = (self._turn + step) % count
            member = members[index]
            if member.session.client_id == leaving:
                continue
            if member.session.connection is not None:
                self._turn = index + 1
                return member
            if fallback is None:
                fallback = index, member
        if fallback is None:
            return None
        self._turn = fallback[0] + 1
        return fallback[1]


class SharedGroups:
    """Every shared subscription group, indexed by filter for publishing."""

    def __init__(self, closer: Callable[[Session, Exception], None]) -> None:
        self.groups: dict[str, SharedGroup] = {}
        self.index = FilterTree()
        """Group filters -> group keys (the tree's "client ids")."""
        self._failed = closer
        """What to do with a session that raised while receiving (close its connection)."""

    def __bool__(self) -> bool:
        return bool(self.groups)

    def __iter__(self) -> Iterator[SharedGroup]:
        return iter(self.groups.values())

    def join(self, key: str, inner: str, member: Member) -> None:
        """Add or replace a session's membership of one group [MQTT-3.8.4-3]."""
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = SharedGroup(key, inner)
            self.index.add(inner, key, QoS.AT_MOST_ONCE)
        group.members[member.session.client_id] = member

    def leave(self, key: str, client_id: str) -> None:
        """Remove one membership; a group without members is forgotten."""
        group = self.groups.get(key)
        if group is None:
            return
        group.members.pop(client_id, None)
        if not group.members:
            del self.groups[key]
            self.index.remove(group.inner, key)

    def publish(self, message: Message, now: float) -> int:
        """Send a message to one member of each group whose filter matches; how many."""
        sent = 0
        for key in self.index.match(message.topic):
            group = self.groups[key]
            member = group.pick()
            if member is not None:
                self.send(group, member, message, now)
                sent += 1
        return sent

    def send(self, group: SharedGroup, member: Member, message: Message, now: float) -> None:
        """One member's copy, at the lower of the two QoS [MQTT-3.8.4-8], with its
        identifier; a session that raises loses its connection, nobody else anything."""
        qos = message.qos if message.qos <= member.granted else member.granted
        identifiers = () if member.identifier is None else (member.identifier,)
        try:
            member.session.deliver(message, qos, now,
                                   retain=message.retain and member.retain_as_published,
                                   identifiers=identifiers, share=group.key)
        except Exception as exc:  # one broken session must not cost the publisher
            self._failed(member.session, exc)

    def hand_over(self, session: Session, now: float) -> int:
        """Give the group messages a session that ends still holds to other members.

        QoS 1 in flight and not yet acknowledged, or queued and never sent at QoS 1 or
        2: the session's client may never have seen them, and they SHOULD go to another
        member (4.8.2). A QoS 2 message once sent is not: its delivery is that client's
        to complete [MQTT-4.8.2-4] and no other client may get it [MQTT-4.8.2-5].
        Returns how many were handed over."""
        if not self.groups:
            return 0
        waiting = [entry.message for entry in session.inflight.values()
                   if entry.message.share is not None
                   and entry.state is OutboundState.AWAITING_PUBACK]
        waiting.extend(out for _seq, out in session.queue if out.share is not None and out.qos)
        handed = 0
        for out in waiting:
            if out.expires_at is not None and out.expires_at <= now:
                continue  # expired: forwarded to nobody [MQTT-3.3.2-5]
            group = self.groups.get(out.share or "")
            member = None if group is None else group.pick(leaving=session.client_id)
            if group is None or member is None:
                continue
            self.send(group, member, _message_of(out), now)
            handed += 1
        if handed:
            broker_log.info("shared hand-over", "session %s ended: %d shared subscription "
                            "message(s) went to other members", clip(session.client_id), handed)
        return handed


def _message_of(out: OutboundMessage) -> Message:
    """The message again from one member's copy: as published when the copy kept it
    (its QoS and RETAIN may be above this member's [MQTT-4.8.2-3]), else (restored
    from the store) the copy without the identifiers, which were that member's."""
    if out.published is not None:
        return out.published
    properties = out.properties
    if properties.subscription_identifiers:
        properties = attrs.evolve(properties, subscription_identifiers=())
    return Message(out.topic, out.payload, out.qos, out.retain, properties=properties,
                   expires_at=out.expires_at)
