"""Messages the server owns: retaining them and adding them to sessions.

Theory of operation: when the server takes ownership of a message (a client's
PUBLISH, a will), the topic chart decides what happens to the retained slot,
then every live session whose subscriptions match gets a ``Delivery``: one
copy at the highest granted QoS that is required [MQTT-3.3.5-1] (or only
allowed, for QoS 0 to an offline session or a QoS 2 message before its
PUBREL), plus an allowed extra copy per matching subscription. A new
subscription gets the topic's retained message(s) with RETAIN=1.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from mqttref.impl.codec.packets import NO_PROPERTIES, Properties
from mqttref.model.records import (
    PRIMARY,
    Accepted,
    Delivery,
    Message,
    RetainedSlot,
    Session,
    Subscription,
)
from mqttref.model.session import SessionState
from mqttref.model.topic import TOPIC, TopicEvent, TopicState
from mqttref.model.topics import matches
from mqttref.model.v5.numbering import topic_refs

_LIVE_SESSION = (
    SessionState.CLEAN_SESSION,
    SessionState.PERSISTENT_SESSION,
    SessionState.PERSISTENT_DISCONNECTED,
)


_PENDING = -1
"""In ``_released_at``: accepted as an allowed outcome, not (yet) certain."""


class MessageRouting:
    """Mixed into ``BrokerModel``: retained messages and fan-out."""

    sessions: dict[str, Session]
    retained: dict[str, RetainedSlot]
    topic_states: dict[str, str]
    refs_hit: set[str]
    owed: list[tuple[str, int, Delivery]]
    published: dict[tuple[str, bytes], int]
    origins: dict[tuple[str, bytes], set[str]]
    message_seqs: dict[tuple[str, bytes], list[int]]
    emptied_retained: set[str]
    _seq: int
    now: float
    _released_at: dict[int, int]
    _retained_changed: dict[str, int]

    messages: dict[int, Message]

    def _message_by_seq(self, seq: int) -> Message:
        return self.messages[seq]

    if TYPE_CHECKING:  # Level5's, which comes later in BrokerModel's bases

        def _share(self, message: Message, *, owed: bool = True) -> None:
            """Hand a message the server took to the Shared Subscription groups (owed
            to them once the server surely took it)."""

        def _share_released(self, message: Message) -> None:
            """The PUBREL of a QoS 2 message ``_share`` did not owe yet."""

        def _expiry(self, message: Message) -> str:
            """held, expiring or expired: the message against its Message Expiry Interval."""

        def _too_large(self, session: Session, delivery: Delivery) -> bool:
            """Whether a level-5 client's Maximum Packet Size rules the copy out."""

    def _session_takes_message(self, session: Session) -> bool:
        """Fire the session chart's ``message`` event: True when connected."""
        raise NotImplementedError

    def _accept_message(
        self,
        origin: str,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        *,
        required: bool,
        release_later: bool = False,
        properties: Properties = NO_PROPERTIES,
    ) -> Accepted:
        """The server owns a message: retain it and add it to matching sessions.

        ``properties``: at 5.0, those forwarded unaltered to every subscriber (3.3.2.3).
        """
        self._seq += 1
        message = Message(self._seq, origin, topic, payload, qos, properties, retain, self.now)
        self.published[topic, payload] = max(qos, self.published.get((topic, payload), 0))
        self.origins.setdefault((topic, payload), set()).add(origin)
        self.message_seqs.setdefault((topic, payload), []).append(message.seq)
        self.messages[message.seq] = message
        if retain and not payload:
            self.emptied_retained.add(topic)
        state = self.topic_states.get(topic, TopicState.NO_RETAINED)
        event = TopicEvent.PUBLISH_RETAINED if retain else TopicEvent.PUBLISH
        row = TOPIC.fire(state, event, lambda g: (g == "payload") == bool(payload))
        publisher = self.sessions.get(origin.removeprefix("will:"))
        self.refs_hit.update(topic_refs(row.refs, _level(publisher)))
        # A QoS 2 message before its PUBREL may or may not be retained yet (the
        # receiver may store it at PUBLISH or at PUBREL, 4.3.3): uncertain until then.
        certain = required
        if certain:
            self.topic_states[topic] = row.target
            if retain:
                self._retained_changed[topic] = message.seq
        else:
            self._released_at[message.seq] = _PENDING
        old = self.retained.get(topic)
        if row.action == "store_and_forward":
            if certain:
                self.retained[topic] = RetainedSlot(message, certain=qos > 0)  # [MQTT-3.3.1-7]
            else:
                slot = old or RetainedSlot(None, certain=False)
                slot.certain = False
                slot.alternatives.append(message)
                self.retained[topic] = slot
        elif row.action == "clear_and_forward" and old is not None:
            if certain:
                del self.retained[topic]
            else:
                old.certain = False
                old.alternatives.append(None)
        accepted = Accepted(message, retain, [])
        accepted.deliveries = self._forward(
            message, required=required, release_later=release_later, served=accepted.sessions
        )
        self._share(message, owed=required)
        return accepted

    def _release(self, accepted: Accepted) -> None:
        """The publisher's PUBREL arrived: the QoS 2 message is now certainly owned.

        Its retained effect happens now at the latest, its deliveries become
        required, and a subscription made since its PUBLISH may receive it too
        (a receiver that delivers at PUBREL matches the subscriptions of then).
        """
        message = accepted.message
        self._released_at[message.seq] = self._seq
        if accepted.retain:
            slot = self.retained.get(message.topic)
            later = slot is not None and any(m.seq > message.seq for m in slot.candidates())
            if self._retained_changed.get(message.topic, 0) > message.seq:
                # A later retained message (or clear) took effect for certain: a server
                # that stored this one at PUBLISH has overwritten it, one that stores at
                # PUBREL (4.3.3) retains it now. Either may be the retained message.
                slot = slot or RetainedSlot(None, certain=False)
                slot.certain = False
                slot.alternatives.append(message)
                self.retained[message.topic] = slot
            elif not later:
                state = self.topic_states.get(message.topic, TopicState.NO_RETAINED)
                row = TOPIC.fire(
                    state,
                    TopicEvent.PUBLISH_RETAINED,
                    lambda g: (g == "payload") == bool(message.payload),
                )
                self.topic_states[message.topic] = row.target
                # Another uncertain message that is still pending, or was released
                # after this one was accepted (two wills whose closes were possible at
                # once), may have been published after this one: the server's order
                # of the two is not observable, so either may be the retained one.
                overlapping: list[Message | None] = [
                    m
                    for m in (slot.candidates() if slot is not None else [])
                    if m.seq != message.seq
                    and (released := self._released_at.get(m.seq)) is not None
                    and (released == _PENDING or released >= message.seq)
                ]
                if row.action == "store_and_forward":
                    self.retained[message.topic] = RetainedSlot(
                        message, certain=not overlapping, alternatives=overlapping
                    )
                elif overlapping:
                    self.retained[message.topic] = RetainedSlot(
                        None, certain=False, alternatives=overlapping
                    )
                else:
                    self.retained.pop(message.topic, None)
        for delivery in accepted.deliveries:
            if delivery.required_on_release:
                self._widen_to_current_subscriptions(delivery)
                delivery.required = True
                delivery.required_on_release = False
                self._owe(delivery)
        accepted.deliveries += self._forward(
            message, required=False, release_later=False, served=accepted.sessions
        )
        self._share_released(message)

    def _widen_to_current_subscriptions(self, delivery: Delivery) -> None:
        """A copy not sent before the release may go at the QoS of the subscriptions of
        now, not only of the PUBLISH (or, for a will, of the moment its close became
        possible): a receiver that delivers at PUBREL (4.3.3) matches the subscriptions of
        then, and a will goes out when the connection actually closes. A subscription
        re-made at another QoS in between makes either QoS right [MQTT-3.8.4-6]."""
        message = delivery.message
        for session in self.sessions.values():
            if delivery not in session.pending:
                continue
            per_filter = {
                f: frozenset(min(message.qos, g) for g in s.possible_granted())
                for f, s in session.subscriptions.items()
                if matches(f, message.topic)
            }
            if not per_filter:
                return
            if delivery.channel == PRIMARY:
                now = frozenset(max(combo) for combo in itertools.product(*per_filter.values()))
            else:
                now = per_filter.get(delivery.channel, frozenset())
            delivery.allowed_qos = delivery.allowed_qos | now
            return

    def _forward(
        self,
        message: Message,
        *,
        required: bool,
        release_later: bool,
        served: set[str] | None = None,
    ) -> list[Delivery]:
        """Add the message to every live session with a matching subscription,
        skipping (and recording in) ``served``."""
        served = set() if served is None else served
        if self._expiry(message) == "expired":
            return []  # 5.0: past its Message Expiry Interval it goes nowhere [MQTT-3.3.2-5]
        created: list[Delivery] = []
        for session in self.sessions.values():
            if session.state not in _LIVE_SESSION or session.client_id in served:
                continue
            subscriptions = [
                s
                for f, s in session.subscriptions.items()
                if matches(f, message.topic)
                # No Local: not to the ClientID that published it [MQTT-3.8.3-3]
                and not (s.no_local and message.origin == session.client_id)
            ]
            if not subscriptions:
                continue
            connected = self._session_takes_message(session)
            per_filter = {
                s.topic_filter: frozenset(min(message.qos, g) for g in s.possible_granted())
                for s in subscriptions
            }
            primary_qos = frozenset(max(combo) for combo in itertools.product(*per_filter.values()))
            owed_offline = min(primary_qos) >= 1  # [MQTT-3.1.2-5]
            must = connected or owed_offline
            if session.v5 is not None and False in session.v5.exists():
                must = False  # the session may have expired [MQTT-4.1.0-2]
            delivery = Delivery(
                message,
                primary_qos,
                # RETAIN 0 [MQTT-3.3.1-9], or as published [MQTT-3.3.1-12] [MQTT-3.3.1-13]
                retain=message.retain and all(s.retain_as_published for s in subscriptions),
                required=required and must,
                filters=tuple(per_filter),
                required_on_release=release_later and must,
                # every identifier on the one copy [MQTT-3.3.4-3] [MQTT-3.3.4-4]
                identifiers=frozenset(
                    s.identifier for s in subscriptions if s.identifier is not None
                ),
            )
            if self._too_large(session, delivery):
                delivery.required = delivery.required_on_release = False  # [MQTT-3.1.2-25]
            session.pending.append(delivery)
            created.append(delivery)
            served.add(session.client_id)
            if delivery.required:
                self._owe(delivery)
            if len(per_filter) > 1:  # one copy per subscription is allowed too
                for s in subscriptions:
                    topic_filter = s.topic_filter
                    extra = Delivery(
                        message,
                        per_filter[topic_filter],
                        message.retain and s.retain_as_published,
                        False,
                        topic_filter,
                        (topic_filter,),
                        # each with its own identifier [MQTT-3.3.4-5]
                        identifiers=_identifiers(s),
                    )
                    session.pending.append(extra)
                    created.append(extra)
        return created

    def _owe(self, delivery: Delivery) -> None:
        for session in self.sessions.values():
            if delivery in session.pending and min(delivery.allowed_qos) >= 1:
                self.owed.append((session.client_id, session.generation, delivery))

    def _send_retained(self, session: Session, subscription: Subscription) -> None:
        for topic, slot in sorted(self.retained.items()):
            if not matches(subscription.topic_filter, topic):
                continue
            state = self.topic_states.get(topic, TopicState.NO_RETAINED)
            row = TOPIC.fire(state, TopicEvent.SUBSCRIBE)
            self.refs_hit.update(topic_refs(row.refs, _level(session)))
            for candidate in slot.candidates():
                expiry = self._expiry(candidate)
                if expiry == "expired":
                    continue  # an expired retained message is discarded (3.3.1.3)
                session.pending.append(
                    Delivery(
                        candidate,
                        frozenset(min(candidate.qos, g) for g in subscription.possible_granted()),
                        retain=True,  # [MQTT-3.3.1-8]
                        required=slot.certain
                        and candidate is slot.message
                        and row.action == "send_retained"
                        and expiry == "held",
                        channel=f"retained:{subscription.topic_filter}",
                        filters=(subscription.topic_filter,),
                        subscription=subscription,
                        identifiers=_identifiers(subscription),
                    )
                )


def _identifiers(subscription: Subscription) -> frozenset[int]:
    """The Subscription Identifier a copy for ``subscription`` alone carries (3.3.4)."""
    if subscription.identifier is None:
        return frozenset()
    return frozenset({subscription.identifier})


def _level(session: Session | None) -> int:
    """The protocol level whose numbers a session's coverage is in: 5 for a level-5
    session (one with its 5.0 state), 4 otherwise (``numbering.topic_refs``)."""
    return 5 if session is not None and session.v5 is not None else 4
