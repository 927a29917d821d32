"""Shared Subscriptions in the broker model: level-5 sessions in ``$share`` groups (4.8.2).

Theory of operation: a group's messages are not per-session deliveries, so
they stay out of ``Session.pending``: ``SharedGroups5`` (``model/v5/shared``)
holds the groups, one routing per message and matching group, and says what
is owed (to one member, any of them [MQTT-4.5.0-1]). The broker feeds it
members once their SUBACK grants them, every message the server surely took,
each copy a member receives (judged on a copy of the groups, so a rejection
changes nothing), the members' acknowledgements, and their connections and
sessions ending. A copy at QoS 1 or 2 joins the member's QoS flow like any
other PUBLISH, so its packet id and acknowledgements are judged as usual.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import attrs

from mqttref.impl.codec.packets import NO_PROPERTIES, PubAck, Publish, PubRec, QoS
from mqttref.model.errors import Violation
from mqttref.model.events import Observation
from mqttref.model.flows import Flow
from mqttref.model.obligations import Obligation
from mqttref.model.records import Connection, Delivery, Message, Session, Subscription
from mqttref.model.v5.shared import Member, RoutingState, SharedGroups5
from mqttref.model.v5.subscription_options import SHARE_PREFIX, Copy, Message5


def is_shared(topic_filter: str) -> bool:
    return topic_filter.startswith(SHARE_PREFIX)


class SharedRouting:
    """Mixed into ``BrokerModel`` (through ``Level5``): the ``$share`` groups."""

    shared5: SharedGroups5
    shared_seq: dict[int, int]
    """Message seq -> its number in ``shared5`` (messages published to the groups)."""
    message_seqs: dict[tuple[str, bytes], list[int]]
    refs_hit: set[str]
    sessions: dict[str, Session]
    connections: dict[str, Connection]
    max_inflight: int
    now: float

    def _reject(
        self, conn: Connection, message: str, refs: list[str] | tuple[str, ...],
        arrived: Observation,
    ) -> Violation:
        raise NotImplementedError

    def _joined(self, session: Session, subscription: Subscription) -> None:
        """A SUBACK granted a shared subscription: the session is a member (no
        retained message is sent for it, 3.8.4)."""
        assert subscription.granted is not None
        member = Member(
            session.client_id,
            subscription.granted,
            subscription.retain_as_published,
            subscription.identifier,
        )
        self.shared5.subscribe(member, subscription.topic_filter)

    def _share(self, message: Message, *, owed: bool = True) -> None:
        """The server took ``message``: each matching group owes it to one member, or
        (``owed`` False: a QoS 2 message before its PUBREL) may be sent it already, as
        a server that starts onward delivery at the PUBLISH does (4.3.3)."""
        if message.seq in self.shared_seq or not self.shared5.groups():
            return
        self.shared_seq[message.seq] = self.shared5.publish(
            Message5(message.origin, message.topic, message.qos, message.retain), owed=owed
        )

    def _share_released(self, message: Message) -> None:
        """The PUBREL of a QoS 2 message: the groups of its PUBLISH are owed it now; a
        group formed since is only allowed it (a server that delivered at the PUBLISH
        matched no such group, one that delivers at the PUBREL may choose it)."""
        seq = self.shared_seq.get(message.seq)
        if seq is not None:
            self.shared5.release(seq)
        elif self.shared5.groups():
            self.shared_seq[message.seq] = self.shared5.publish(
                Message5(message.origin, message.topic, message.qos, message.retain),
                owed=False,
            )

    def _observe_shared(
        self, conn: Connection, session: Session, packet: Publish, *, must: bool
    ) -> Delivery | None:
        """A PUBLISH nothing pending explains, to a member of a group the message
        went to: judged by ``SharedGroups5.delivered`` (the member's QoS
        [MQTT-4.8.2-3], its identifier only, one member [MQTT-4.8.2-5]
        [MQTT-4.8.2-6]). Returns the delivery it stands for; None when no group
        of this session's explains it (the caller judges it as not due), or when
        none takes it and ``must`` is False (another pending copy explains it)."""
        seqs = self.message_seqs.get((packet.topic, packet.payload), [])
        routed = [s for s in seqs if self._routed_to_groups(self._message_by_seq(s))]
        if not routed or not session.shared:
            return None
        held = [s for s in routed if self._expiry(self._message_by_seq(s)) != "expired"]
        if not held:
            if not must:
                return None
            raise self._reject(
                conn, "a group's message sent after it expired", ["MQTT-3.3.2-5"], packet
            )
        routed = held
        level5 = conn.level == 5  # MQTT 5.0 (a 3.1.1 connection may resume the session)
        seen = Copy(int(packet.qos), packet.retain, packet.properties.subscription_identifiers)
        error: Violation | None = None
        for seq in reversed(routed):
            handed_back = {
                r.share for r in self.shared5.routings(self.shared_seq[seq])
                if r.state == RoutingState.HANDED_BACK
                or (r.state == RoutingState.OWED and r.disturbed)
            }
            trial = copy.deepcopy(self.shared5)
            try:
                share = trial.delivered(
                    session.client_id, self.shared_seq[seq], seen, identified=level5
                )
            except Violation as violation:
                error = error or violation
                continue
            delivery = Delivery(
                self._message_by_seq(seq),
                frozenset({int(packet.qos)}),
                packet.retain,
                required=False,
                # A message handed over by a member whose connection or session ended
                # (4.8.2), or queued for it when it did, reaches its new member after
                # the later messages it already got, and after other handed-over ones
                # (handed over twice, it may pass one handed over once): each has an
                # order of its own, not the group's [MQTT-4.6.0-6].
                channel=f"share:{share}"
                + (f" handed over #{seq}" if share in handed_back else ""),
                filters=(str(share),),
                identifiers=frozenset(packet.properties.subscription_identifiers),
            )
            if self._overtakes(session, delivery):
                # Judged here, before anything changes: the caller would reject it for
                # the order after this commits, and a rejected observation must leave
                # the model as it was (it may be allowed later: a hand-over racing the
                # CONNACK that ends its member's session).
                error = error or Violation(
                    conn.client,
                    "a message overtook an earlier one of the same publisher, topic and QoS",
                    refs=("MQTT-4.6.0-6",),
                )
                continue
            try:
                if level5:  # a 3.1.1 connection resuming the session: no properties
                    self._check_publish5(conn, delivery, packet)
            except Violation as violation:
                error = error or violation
                continue
            self.shared5 = trial
            return delivery
        assert error is not None
        if not must:
            return None
        raise self._reject(conn, error.detail, error.refs, packet)

    def _check_publish5(self, conn: Connection, delivery: Delivery, packet: Publish) -> None:
        raise NotImplementedError

    @staticmethod
    def _overtakes(session: Session, delivery: Delivery) -> bool:
        """Whether a later message of the copy's order (publisher, topic, QoS, channel)
        was sent first, or an earlier one is still owed before it [MQTT-4.6.0-6]."""
        key = delivery.order_key
        return session.last_sent.get(key, 0) > delivery.message.seq or any(
            d.order_key == key and d.message.seq < delivery.message.seq and d.required
            for d in session.pending
        )

    def _routed_to_groups(self, message: Message) -> bool:
        """Whether a Shared Subscription group matched the message (a subscriber)."""
        seq = self.shared_seq.get(message.seq)
        return seq is not None and bool(self.shared5.routings(seq))

    def _allowed_shared(
        self, session: Session, packet_ids: Iterator[int], *, level5: bool
    ) -> list[Publish]:
        """The copies of group messages this member may be sent now (3.3.4, 4.8.2), with
        the Message Expiry Interval that is left [MQTT-3.3.2-6]; on a 3.1.1 connection
        resuming the session, without properties."""
        found: list[Publish] = []
        for seq, seq5 in sorted(self.shared_seq.items()):
            message = self._message_by_seq(seq)
            if self._expiry(message) == "expired":
                continue  # past its Message Expiry Interval it goes nowhere [MQTT-3.3.2-5]
            for share, members in self.shared5.recipients(seq5).items():
                subscription = session.shared.get(str(share))
                if session.client_id not in members or subscription is None:
                    continue
                qos = min(message.qos, subscription.granted or 0)
                ids = () if subscription.identifier is None else (subscription.identifier,)
                left = message.properties.message_expiry_interval
                if left is not None:  # less the time it waited [MQTT-3.3.2-6]
                    left = max(0, left - int(self.now - message.at))
                found.append(
                    Publish(
                        message.topic,
                        message.payload,
                        QoS(qos),
                        message.retain and subscription.retain_as_published,
                        False,
                        next(packet_ids) if qos else None,
                        attrs.evolve(
                            message.properties,
                            subscription_identifiers=ids,
                            message_expiry_interval=left,
                        )
                        if level5
                        else NO_PROPERTIES,
                    )
                )
        return found

    def _message_by_seq(self, seq: int) -> Message:
        raise NotImplementedError

    def _expiry(self, message: Message) -> str:
        raise NotImplementedError

    def _shared_acknowledged(self, session: Session, flow: Flow, packet: object) -> None:
        """The member's PUBACK or PUBREC for a group's message (0x80 or more discards
        it for every member [MQTT-4.8.2-6])."""
        delivery = flow.message
        if not isinstance(delivery, Delivery) or not delivery.channel.startswith("share:"):
            return
        if not isinstance(packet, (PubAck, PubRec)):
            return
        seq = self.shared_seq.get(delivery.message.seq)
        if seq is not None:
            self.shared5.acknowledged(session.client_id, seq, packet.reason_code)

    def _member_gone(self, session: Session, *, session_ended: bool) -> None:
        if not session.shared:
            return
        if session_ended:
            self.shared5.session_ended(session.client_id)
        else:
            self.shared5.connection_lost(session.client_id)

    def _member_back(self, session: Session) -> None:
        if session.shared:
            self.shared5.connect(session.client_id)

    def _seq_of(self, seq5: int) -> int:
        """The broker's number of the message ``shared5`` numbers ``seq5``."""
        return next(seq for seq, number in self.shared_seq.items() if number == seq5)

    def _member_blocked(self, client_id: str) -> bool:
        """Whether the member's connection may not be sent a QoS 1/2 message now: its
        send quota is zero (4.9) or its session is at the in-flight window."""
        member = self.sessions.get(client_id)
        if member is None or member.client is None:
            return False
        conn = self.connections.get(member.client)
        if conn is not None and conn.quota is not None and conn.quota.quota == 0:
            return True
        return member.flows.in_flight() >= self.max_inflight

    def _shared_obligations(self, client: str | None) -> list[Obligation]:
        """A group's owed message, named on the connection of its first eligible
        member (the server may pick any: the text says so, not the slot).

        A QoS 2 message whose member reconnected is owed to it again [MQTT-4.8.2-4],
        but as the re-send of the copy in flight in its session (DUP 1, the same
        Packet Identifier), which that session's QoS flow owes already
        [MQTT-4.4.0-1] and its PUBREC discharges: no new PUBLISH is owed for it, and
        one sent would be a second copy to the member (4.8)."""
        found = []
        for routing, refs in self.shared5.owed():
            if routing.resend_due is not None:
                continue
            members = sorted(routing.eligible)
            slots = [s.client for m in members if (s := self.sessions.get(m)) and s.client]
            if not slots or (client is not None and slots[0] != client):
                continue
            message = self._message_by_seq(self._seq_of(routing.seq))
            if self._expiry(message) != "held":
                continue  # it may have expired first, or must have (3.3.2.3.3)
            if any(self._member_blocked(m) for m in members):
                # The server may have chosen that member, and then it waits: at a send
                # quota of zero nothing is owed (4.9), nor behind the in-flight window.
                continue
            found.append(
                Obligation(
                    slots[0],
                    # The payload names the message: ``routing.seq`` counts the
                    # groups' messages only, not the publishers' (m1, m2...).
                    f"PUBLISH {message.topic!r} {message.payload!r} (group message "
                    f"{routing.seq}) to one member of {routing.share} ({', '.join(members)})",
                    refs,
                )
            )
        return found
