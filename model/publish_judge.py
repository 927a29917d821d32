"""Judging the PUBLISHes and QoS flow packets the server sends.

Theory of operation: a PUBLISH is identified by its content (topic and payload)
among the messages in flight and pending, never by its packet id, which is what
[MQTT-2.3.1-4] puts under test; its packet id and DUP flag are then judged against
the message it carries (``_misidentified``). A re-send (DUP=1 under the id of its
message in flight) is allowed any time at 3.1.1, and at 5.0 only when a session
resumes [MQTT-4.4.0-1]; the re-sends owed on reconnect come in order [MQTT-4.6.0-1].
A first send must match a pending delivery, respecting order per publisher, topic and
QoS; an allowed message a later one overtook is remembered, so that its late arrival
is named as out of order [MQTT-4.6.0-6] rather than as not due. The first PUBLISH
matching a delivery binds its packet id, so later PUBREL and the client's acks refer
to it. A PUBLISH nothing explains is rejected with the best reason
``PublishRejections`` finds. PUBACK, PUBREC, PUBREL and PUBCOMP go through the
session's QoS flows (and, at level 5, their Reason Codes through ``Level5``).
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
)
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import NoTransition, Violation
from mqttref.model.flows import Flow
from mqttref.model.level5_publish import MQTT_5
from mqttref.model.publish_rejections import PublishRejections
from mqttref.model.qos import SenderState
from mqttref.model.records import PRIMARY, Connection, Delivery, Session
from mqttref.model.topics import matches
from mqttref.model.v5 import forwarding
from mqttref.model.v5.numbering import (
    FLOW_PACKET_REFS_5,
    FORWARDED_5,
    NOT_DUE_5,
    PUBLISH_AFTER_PUBREL_5,
    flow_refs,
)

C, CE = ConnectionState, ConnectionEvent

_FLOW_PACKET_REFS: dict[type, list[str]] = {
    PubAck: ["MQTT-2.3.1-6", "MQTT-4.3.2-2"],  # the QoS 1 receiver's answer
    PubRec: ["MQTT-2.3.1-6", "MQTT-4.3.3-2"],  # the QoS 2 receiver's first answer
    PubRel: ["MQTT-2.3.1-6", "MQTT-4.3.3-1"],  # the QoS 2 sender's release
    PubComp: ["MQTT-4.3.3-2"],  # the QoS 2 receiver's last answer (2.3.1-6 names no PUBCOMP)
}
"""What a flow packet the server sends with no flow to answer breaks, by its type."""


class PublishJudge(PublishRejections):
    """Mixed into ``BrokerModel`` (through ``ObservationJudge``): the server's PUBLISH
    and QoS flow packets."""

    def _observe_publish(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A PUBLISH is identified by its content (topic and payload) among the
        messages in flight and pending for this session, then its packet id and DUP
        flag are judged against that message: the packet id cannot identify it,
        since keeping the id of a re-send is itself under test [MQTT-2.3.1-4]."""
        flow = session.flows.outgoing.get(packet.packet_id or 0) if packet.qos > 0 else None
        if flow is not None and packet.dup and self._carries(flow, packet):
            self._observe_resend(conn, session, flow, packet)
            return
        if conn.level == MQTT_5:
            try:  # DUP is judged below, against the message the content identifies
                forwarding.check_identity(conn.client, qos=int(packet.qos),
                                          packet_id=packet.packet_id, dup=packet.dup,
                                          retransmission=packet.dup)
            except Violation as error:
                raise self._reject(conn, error.detail, error.refs, packet) from None
        if (packet.qos == 0) != (packet.packet_id is None) or packet.packet_id == 0:
            raise self._reject(
                conn,
                "packet id present exactly when QoS > 0",
                ["MQTT-2.3.1-1", "MQTT-2.3.1-5"],
                packet,
            )
        if packet.dup or flow is not None:
            self._misidentified(conn, session, flow, packet)
        self._observe_first_send(conn, session, packet)

    @staticmethod
    def _carries(flow: Flow, packet: Publish) -> bool:
        """The flow's message has the packet's topic and payload."""
        delivery = flow.message
        return (
            isinstance(delivery, Delivery)
            and delivery.message.topic == packet.topic
            and delivery.message.payload == packet.payload
        )

    def _misidentified(
        self, conn: Connection, session: Session, flow: Flow | None, packet: Publish
    ) -> None:
        """A PUBLISH that is neither a re-send under its message's packet id with
        DUP=1 nor a first send under an unused id with DUP=0: raise naming what it
        breaks for the message its content identifies; return when the content
        identifies nothing in flight or pending (the caller judges it as not due).

        Each reading of the packet is listed with the statements it breaks: a re-send
        of a message in flight [MQTT-2.3.1-4] (its id; on reconnect [MQTT-4.4.0-1]),
        [MQTT-3.3.1-1] (its DUP flag), [MQTT-4.3.3-1] (a PUBLISH after PUBREL); or the
        first send of a pending message not in flight [MQTT-3.3.1-3] / [MQTT-3.3.1-2]
        (DUP=1 that is no re-send), [MQTT-4.3.2-1] / [MQTT-4.3.3-1] (an id still in
        use). The
        readings breaking the fewest statements win; when they tie, the content cannot
        tell the messages apart and their statements are all named.
        """
        readings: list[tuple[str, list[str]]] = []
        in_flight: set[int] = set()
        if packet.qos > 0:
            for other in sorted(session.flows.outgoing.values(), key=lambda f: f.order):
                if not self._carries(other, packet):
                    continue
                in_flight.add(other.message.message.seq)
                refs: list[str] = []
                if other is not flow:
                    refs.append("MQTT-2.3.1-4")
                    if other.state == SenderState.PUBLISH_RESEND_DUE:
                        refs.append("MQTT-4.4.0-1")
                if not packet.dup:
                    refs.append("MQTT-3.3.1-1")
                if other.state == SenderState.AWAITING_PUBCOMP:
                    refs.append(PUBLISH_AFTER_PUBREL_5 if conn.level == MQTT_5 else "MQTT-4.3.3-1")
                what = (
                    "a re-delivery must set DUP"
                    if other is flow
                    else "a re-send must keep the packet id of the message in flight"
                )
                readings.append((what, refs))
        # A pending copy of a message in flight (an extra copy for overlapping
        # subscriptions) is that same message, not a new one.
        if any(
            d.message.topic == packet.topic
            and d.message.payload == packet.payload
            and d.message.seq not in in_flight
            for d in session.pending
        ):
            refs = []
            if packet.dup:
                refs.append("MQTT-3.3.1-2" if packet.qos == 0 else "MQTT-3.3.1-3")
            if flow is not None:
                refs.append("MQTT-4.3.2-1" if packet.qos == 1 else "MQTT-4.3.3-1")
            what = (
                "DUP=1 on a PUBLISH that is no re-send"
                if flow is None
                else "a new message under a packet id still in use"
            )
            readings.append((what, refs))
        if not readings:
            return
        fewest = min(len(refs) for _, refs in readings)
        best = [(what, refs) for what, refs in readings if len(refs) == fewest]
        named: list[str] = []
        for _, refs in best:
            named += [r for r in refs if r not in named]
        message = " or ".join(dict.fromkeys(what for what, _ in best))
        raise self._reject(conn, message, sorted(named), packet)

    def _observe_first_send(self, conn: Connection, session: Session, packet: Publish) -> None:
        candidates = [
            d
            for d in session.pending
            if d.message.topic == packet.topic
            and d.message.payload == packet.payload
            and int(packet.qos) in d.allowed_qos
            and self._retain_fits(session, d, packet)
        ]
        ids = frozenset(packet.properties.subscription_identifiers)
        if not candidates:
            shared = self._observe_shared(conn, session, packet, must=True)
        elif conn.level == MQTT_5 and not any(
            d.identifiers == ids and d.required for d in candidates
        ):
            # Only a copy merely allowed, or one with other identifiers, is pending:
            # this may be the copy a group owes first.
            shared = self._observe_shared(conn, session, packet, must=False)
        else:
            shared = None
        if shared is not None:
            session.pending.append(shared)
            candidates = [shared]
        if not candidates:
            self._reject_overtaken(conn, session, packet)
            if conn.level == MQTT_5:
                # Before the discarded subscriptions: a copy a current subscription gave
                # and that expired is not "due only to" an earlier session's [MQTT-3.3.2-5].
                self._reject_expired(conn, session, packet)
            self._reject_discarded(conn, session, packet)
            if conn.level == MQTT_5 or any(s.no_local for s in session.subscriptions.values()):
                # No Local binds a level-5 subscription also after a 3.1.1 connection
                # resumed its session: the ClientID is the same [MQTT-3.8.3-3].
                self._reject_options5(conn, session, packet)
            self._reject_wrong_flags(conn, session, packet)
            subscribed = any(matches(f, packet.topic) for f in session.subscriptions)
            self._reject_stored_empty(conn, packet, subscribed=subscribed)
            self._reject_duplicate(conn, session, packet)
            self._reject_packet_id_in_qos0(conn, packet)
            self._reject_early_will(conn, packet)
            if conn.level == MQTT_5:
                self._reject_misrouted5(conn, session, packet)
            unsubscribed = any(matches(f, packet.topic) for f in session.unsubscribed)
            due = (list(NOT_DUE_5) if conn.level == MQTT_5 else
                   ["MQTT-4.5.0-1", "MQTT-3.3.5-1", "MQTT-3.8.4-6", "MQTT-3.3.1-9", "MQTT-3.3.1-8"])
            refs = (
                due
                if subscribed
                else ["MQTT-3.3.2-3", "MQTT-3.10.4-2"] if unsubscribed else ["MQTT-3.3.2-3"]
            )
            raise self._reject(conn, "no such message is due to this client", refs, packet)

        # Identical packets can stand for different deliveries (an extra copy of one
        # message, the required copy of the next): bind the one that keeps order,
        # preferring a required delivery, then the oldest.
        def earlier_than(d: Delivery) -> list[Delivery]:
            return [
                e
                for e in session.pending
                if e.order_key == d.order_key and e.message.seq < d.message.seq
            ]

        def overtaken(d: Delivery) -> bool:
            """A later message of the same key was already sent [MQTT-4.6.0-6]."""
            return session.last_sent.get(d.order_key, 0) > d.message.seq

        if conn.level == MQTT_5:
            # The copy whose properties and Subscription Identifiers the packet carries,
            # if any: messages of one topic and payload may differ only in those.
            candidates = [d for d in candidates if self._fits5(d, packet)] or candidates
        delivery = min(
            candidates,
            key=lambda d: (
                overtaken(d) or any(e.required for e in earlier_than(d)),
                not d.required,
                d.message.seq,
                d.channel != PRIMARY,  # the owed copy first; "$..." sorts before "*"
                d.channel,
            ),
        )
        if not (delivery.required or delivery.required_on_release):
            for other in candidates:
                if other is not delivery and other.required_on_release and not other.required:
                    # Two copies no packet can tell apart: an older one merely allowed
                    # (QoS 0 queued while the client was away, which the server may have
                    # dropped [MQTT-3.1.2-5]) and one of a QoS 2 message still awaiting
                    # its PUBREL, owed once released. This packet may have been either;
                    # read as the older one, the newer is no longer owed on release, since
                    # the server may have sent it already (Method B of 4.3.3).
                    other.required_on_release = False
        earlier = earlier_than(delivery)
        if overtaken(delivery) or any(d.required for d in earlier):
            if conn.level == MQTT_5:
                self._check_order5(conn, session, delivery, earlier, packet)
            raise self._reject(
                conn,
                "a message overtook an earlier one of the same publisher, topic and QoS",
                ["MQTT-4.6.0-6"],
                packet,
            )
        if conn.level == MQTT_5:
            self._check_publish5(conn, delivery, packet)
        for skipped in [*earlier, delivery]:
            session.pending.remove(skipped)
        self._one_copy_per_subscription(session, delivery, packet)
        if not delivery.retain:
            # Alternatives of one retained slot are no sequence; forwarded messages are.
            session.overtaken += earlier
        if packet.qos > 0:
            taken = session.flows.sent(packet, message=delivery)
            if taken is not None:
                self.refs_hit.update(flow_refs(taken[0].chart.name, taken[1], conn.level))
        self.refs_hit.update(
            FORWARDED_5 if conn.level == MQTT_5 else
            ("MQTT-4.5.0-1", "MQTT-3.3.1-9" if not packet.retain else "MQTT-3.3.1-8")
        )
        if not delivery.retain:
            session.last_sent[delivery.order_key] = delivery.message.seq
        self.delivered.append((session.client_id, session.generation, delivery, int(packet.qos)))

    @staticmethod
    def _retain_fits(session: Session, delivery: Delivery, packet: Publish) -> bool:
        """Whether the PUBLISH's RETAIN flag is one ``delivery`` may carry. The one copy
        sent for overlapping subscriptions (3.3.4) whose Retain As Published options
        differ, of a message published with RETAIN 1, may carry either: 0 is what
        [MQTT-3.3.1-12] asks for one subscription, 1 what [MQTT-3.3.1-13] asks for the
        other, and no statement says which a single copy follows. The options differ
        exactly when the per-subscription copies routed beside it differ in RETAIN."""
        if delivery.retain == packet.retain:
            return True
        if delivery.channel != PRIMARY or not delivery.message.retain:
            return False
        return any(
            e.message is delivery.message
            and e.channel in delivery.filters
            and e.retain == packet.retain
            for e in session.pending
        )

    def _one_copy_per_subscription(
        self, session: Session, delivery: Delivery, packet: Publish
    ) -> None:
        """A per-subscription copy of a message owed for overlapping subscriptions, at a
        QoS the one owed copy may have: the server sends a copy per matching subscription.
        3.3.4 (3.3.5 at 3.1.1) owes the message at the highest QoS of the matching
        subscriptions [MQTT-3.3.4-2] [MQTT-3.3.5-1] and allows "further copies of the
        message, one for each additional matching subscription"; a server sending several
        puts only its subscription's identifier in each [MQTT-3.3.4-5], while the single
        copy [MQTT-3.3.4-4] carries them all. A copy whose identifiers the single copy
        would not carry is then the one owed: the single copy is no longer due, and this
        copy stands for it in what must not be lost. (Where the identifiers are the same,
        nothing tells the two apart, and the packet is read as the single copy first.)"""
        if delivery.channel == PRIMARY:
            return
        single = next(
            (
                d
                for d in session.pending
                if d.channel == PRIMARY
                and d.message is delivery.message
                and delivery.channel in d.filters
                and int(packet.qos) in d.allowed_qos
                # identifiers the single copy would not carry: this PUBLISH cannot be it
                and d.identifiers != delivery.identifiers
            ),
            None,
        )
        if single is None:
            return
        session.pending.remove(single)
        single.required = single.required_on_release = False
        self.owed = [(c, g, delivery if d is single else d) for c, g, d in self.owed]

    def _observe_resend(
        self, conn: Connection, session: Session, flow: Flow, packet: Publish
    ) -> None:
        """DUP=1 with the packet id of the message in flight it repeats: the re-send
        owed on reconnect, in order [MQTT-4.6.0-1], or (3.1.1 only) a retry. 3.1.1
        leaves retries within a connection open; 5.0 allows a re-send only when the
        session resumes: "Clients and Servers MUST NOT resend messages at any other
        time" [MQTT-4.4.0-1]."""
        if conn.level == MQTT_5 and flow.state not in (
            SenderState.PUBLISH_RESEND_DUE,
            SenderState.AWAITING_PUBCOMP,  # no re-send at all after PUBREL: named below
        ):
            raise self._reject(
                conn, "a PUBLISH re-sent within the connection that sent it (5.0 re-sends"
                " only when a session resumes)", ["MQTT-4.4.0-1"], packet,
            )
        if flow.state == SenderState.PUBLISH_RESEND_DUE:
            first_due = min(
                (
                    f
                    for f in session.flows.outgoing.values()
                    if f.state == SenderState.PUBLISH_RESEND_DUE
                ),
                key=lambda f: f.order,
            )
            if first_due is not flow:
                raise self._reject(
                    conn, "re-sends must keep the original order", ["MQTT-4.6.0-1"], packet
                )
        try:
            taken = session.flows.sent(packet)
        except NoTransition as error:
            # After PUBREL the PUBLISH must not be re-sent at all [MQTT-4.3.3-1]; its DUP
            # flag is right. Another QoS under the message's id is no re-send of it.
            past_pubrel = flow.state == SenderState.AWAITING_PUBCOMP
            raise self._reject(
                conn,
                f"no re-send of PUBLISH allowed in state {error.state}",
                [PUBLISH_AFTER_PUBREL_5 if conn.level == MQTT_5 else "MQTT-4.3.3-1"]
                if past_pubrel else ["MQTT-4.3.3-1", "MQTT-3.3.1-1"],
                packet,
            ) from None
        if taken is not None:
            self.refs_hit.update(flow_refs(taken[0].chart.name, taken[1], conn.level))

    def _observe_flow_packet(self, conn: Connection, session: Session, packet: Packet) -> None:
        refusing = None
        if conn.level == MQTT_5:
            self._check_ack_code5(conn, session, packet)
            if isinstance(packet, (PubAck, PubRec)) and packet.reason_code >= 0x80:
                flow = session.flows.incoming.get(packet.packet_id)
                refusing = flow.message if flow is not None else None
        try:
            taken = session.flows.sent(packet)
        except NoTransition as error:
            raise self._reject(
                conn, f"no QoS flow allows this ({error.state})",
                list(FLOW_PACKET_REFS_5[type(packet).__name__.upper()] if conn.level == MQTT_5
                     else _FLOW_PACKET_REFS[type(packet)]),
                packet,
            ) from None
        if taken is not None:
            self.refs_hit.update(flow_refs(taken[0].chart.name, taken[1], conn.level))
        self._retract(refusing)
        if isinstance(packet, PubRel) and conn.quota is not None:
            conn.quota.released(packet.packet_id)
        if isinstance(packet, PubRec):
            code = packet.reason_code if conn.level == MQTT_5 else 0x00
            session.pubrecs.setdefault(packet.packet_id, []).append(code)
            if code >= 0x80:
                # The refusal ends the exchange: the next PUBLISH with this identifier
                # is a new Application Message [MQTT-4.3.3-9] (``qos2_receiver``).
                session.flows.incoming.pop(packet.packet_id, None)
        elif isinstance(packet, PubComp):
            session.pubrecs.pop(packet.packet_id, None)
