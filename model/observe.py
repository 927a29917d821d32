"""Judging what the server sent: the observation half of the broker model.

Theory of operation: every packet a client receives, and every close, is
checked against the connection chart (may the server send this now?), the
owed answers of the connection (SUBACK, UNSUBACK, PINGRESP with the right
packet id and allowed codes), the session's QoS flows (PUBACK, PUBREC,
PUBREL, PUBCOMP, re-sent PUBLISH) and the session's pending deliveries (a
first PUBLISH must match one, respecting order per publisher, topic and QoS;
an allowed message a later one overtook is remembered, so that its late
arrival is named as out of order [MQTT-4.6.0-6] rather than as not due).
A PUBLISH is identified by its content (topic and payload) among the messages
in flight and pending, never by its packet id, which is what [MQTT-2.3.1-4]
puts under test; its packet id and DUP flag are then judged against the
message it carries. Packet ids the server chooses are learned here: the first
PUBLISH matching a delivery binds its packet id, so later PUBREL and the
client's acks refer to it. ``allowed(client)`` lists concrete packets the server may send next (with
the lowest free packet id where the server chooses one).

On a level-5 connection the 5.0 rule modules judge too: ``observe_frame`` reads each
frame's bytes before it is decoded (``v5.frames``); SUBACK and UNSUBACK go through
``v5.answers.Answers5``, the CONNACK through ``v5.connack.Connack5`` (kept on the
connection for its Maximum QoS and Keep Alive), the PUBCOMP of a client's QoS 2
message through ``v5.qos2_receiver.Qos2Receiver5``, and a PUBLISH's identity, Topic
Name and order through ``v5.forwarding``. Their violations are the model's, citing
their statements.
"""

from __future__ import annotations

from collections.abc import Sequence

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Disconnect,
    Packet,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    UnsubAck,
)
from mqttref.model.chart import Transition
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import NoTransition, Violation
from mqttref.model.events import Closed, Observation, describe
from mqttref.model.flows import Flow
from mqttref.model.level5 import Level5
from mqttref.model.level5_publish import MQTT_5
from mqttref.model.qos import SenderState
from mqttref.model.records import PRIMARY, Connection, Delivery, Expected, Session, Subscription
from mqttref.model.session import SessionState
from mqttref.model.topics import matches
from mqttref.model.v5 import forwarding
from mqttref.model.v5 import frames as frames5
from mqttref.model.v5.answers import Answers5, Request
from mqttref.model.v5.connection_refs import renumbered
from mqttref.model.v5.reason_codes import PacketKind, Situation

C, CE = ConnectionState, ConnectionEvent


_FLOW_PACKET_REFS: dict[type, list[str]] = {
    PubAck: ["MQTT-2.3.1-6", "MQTT-4.3.2-2"],  # the QoS 1 receiver's answer
    PubRec: ["MQTT-2.3.1-6", "MQTT-4.3.3-2"],  # the QoS 2 receiver's first answer
    PubRel: ["MQTT-2.3.1-6", "MQTT-4.3.3-1"],  # the QoS 2 sender's release
    PubComp: ["MQTT-4.3.3-2"],  # the QoS 2 receiver's last answer (2.3.1-6 names no PUBCOMP)
}
"""What a flow packet the server sends with no flow to answer breaks, by its type."""


_GRANTS: dict[str, int] = {
    Situation.GRANT_UP_TO_QOS_0: 0,
    Situation.GRANT_UP_TO_QOS_1: 1,
    Situation.GRANT_UP_TO_QOS_2: 2,
}
"""A level-5 SUBSCRIBE's grant situation -> its Requested QoS (the model's situations
are made with no Maximum QoS below 2)."""


class ObservationJudge(Level5):
    """Mixed into ``BrokerModel``: ``observe`` and ``allowed`` (with ``Level5``'s
    judgements for level-5 connections)."""

    connections: dict[str, Connection]
    sessions: dict[str, Session]
    delivered: list[tuple[str, int, Delivery, int]]
    owed: list[tuple[str, int, Delivery]]
    refs_hit: set[str]
    max_inflight: int
    published: dict[tuple[str, bytes], int]
    emptied_retained: set[str]

    def _fire_connection(
        self, conn: Connection, event: str, packet: Packet | None = None
    ) -> Transition:
        raise NotImplementedError

    def _attached_session(self, conn: Connection) -> Session:
        raise NotImplementedError

    def _conn(self, client: str) -> Connection:
        raise NotImplementedError

    # ------------------------------------------------------------- verdicts

    def _reject(
        self, conn: Connection, message: str, refs: Sequence[str], arrived: Observation
    ) -> Violation:
        return Violation(
            conn.client,
            message,
            refs=renumbered(refs, conn.level),  # 5.0's numbers on a level-5 connection
            allowed=[describe(o) for o in self.allowed(conn.client)],
            arrived=describe(arrived),
        )

    def observe_frame(self, client: str, frame: bytes) -> None:
        """The bytes of one whole packet the server sent ``client``, before they are
        decoded and observed; raise ``Violation`` if the frame is malformed on a level-5
        connection. What a decoder forgets is judged here (``frames``): reserved flags
        [MQTT-2.1.3-1], Variable Byte Integers of minimal length [MQTT-1.5.5-1],
        well-formed UTF-8 [MQTT-1.5.4-1], CONNACK's reserved bits [MQTT-3.2.2-1], a
        Property Length left out [MQTT-2.2.2-1], wildcards in a Topic Name
        [MQTT-3.3.2-2]... A malformed frame is malformed whatever comes after it, so
        no later observation can explain it (unlike ``observe``'s rejections).
        Packet type 0 names no type, and a slot without a CONNECT no level: both are
        left to ``observe`` and the decoder."""
        conn = self.connections.get(client)
        if conn is not None and conn.level == MQTT_5 and frame[:1] and frame[0] >> 4:
            frames5.check_server_frame(client, frame)

    def observe(self, client: str, observation: Observation) -> None:
        """The server sent ``observation`` to ``client``; raise ``Violation`` if
        the specification does not allow it here.

        A rejected observation leaves the model as it was, so a harness may hold
        it and try again after observations on other connections (packets on
        different connections have no order the server promises).
        """
        conn = self._conn(client)
        if isinstance(observation, Closed):
            self._observe_close(conn, observation)
            return
        if conn.disconnect_sent is not None:
            self._after_disconnect(conn, observation)
        if isinstance(observation, Disconnect) and conn.level == MQTT_5:
            self._observe_disconnect5(conn, observation)
            return
        if conn.state == C.AWAITING_CONNACK:
            if not isinstance(observation, ConnAck):
                raise self._reject(
                    conn, "the first packet must be CONNACK", ["MQTT-3.2.0-1"], observation
                )
            if conn.level == MQTT_5:
                self._observe_connack5(conn, observation)
            else:
                self._observe_connack(conn, observation)
            return
        if conn.accepted and conn.state == C.CLOSED and self._late_answer(conn, observation):
            return
        if not conn.accepted or conn.state == C.CLOSED:
            raise self._reject(
                conn,
                "a packet on a connection that is not (or no longer) accepted",
                ["MQTT-3.2.0-1", "MQTT-3.1.4-5"],
                observation,
            )
        session = self._attached_session(conn) if conn.state == C.CONNECTED else None
        if session is None:
            session = self.sessions.get(conn.session_key or "")
        if session is None:
            raise self._reject(
                conn, "a packet after the session ended", ["MQTT-3.1.2-6"], observation
            )
        if isinstance(observation, Publish) and conn.level == MQTT_5:
            packet, commit = self._before_publish5(conn, session, observation)
            self._observe_publish(conn, session, packet)
            commit()
        elif isinstance(observation, Publish):
            self._observe_publish(conn, session, observation)
        elif isinstance(observation, (PubAck, PubRec, PubRel, PubComp)):
            self._observe_flow_packet(conn, session, observation)
        elif isinstance(observation, (SubAck, UnsubAck, PingResp)):
            self._observe_answer(conn, session, observation)
        else:
            raise self._reject(
                conn,
                "a packet type the server never sends in 3.1.1 here",
                ["MQTT-3.2.0-1"],
                observation,
            )

    @staticmethod
    def _late_answer(conn: Connection, observation: Observation) -> bool:
        """An answer the server owed when the client closed (DISCONNECT or a drop)
        may still be on its way: the server wrote it before reading the close."""
        kind = {SubAck: "SUBACK", UnsubAck: "UNSUBACK", PingResp: "PINGRESP"}.get(type(observation))
        packet_id = getattr(observation, "packet_id", None)
        for expected in conn.expected:
            if expected.kind == kind and expected.packet_id == packet_id:
                conn.expected.remove(expected)
                return True
        return False

    def _observe_close(self, conn: Connection, observation: Closed) -> None:
        try:
            self._fire_connection(conn, CE.SERVER_CLOSED)
        except NoTransition:
            refs = ["MQTT-4.8.0-1", "MQTT-3.1.2-24"]  # 3.1.1: no violation, no Keep Alive
            if conn.level == MQTT_5:
                self._reject_subscribe_closed5(conn, observation)
                refs = self._unexplained_close_refs5(conn)
            raise self._reject(
                conn,
                "the server closed a connection it had no reason to close",
                refs,
                observation,
            ) from None

    @staticmethod
    def _unexplained_close_refs5(conn: Connection) -> list[str]:
        """What a level-5 close the model knows no reason for breaks, in 5.0's numbers
        (3.1.1's 4.8.0-1 and 3.1.2-24 are other statements there, or none): an error
        close where none is owed [MQTT-4.13.2-1], and, with a Keep Alive in force, a
        Keep Alive close before one and a half times it (``connack``: [MQTT-3.1.2-22],
        [MQTT-3.2.2-22] when the Keep Alive is the client's)."""
        refs = ["MQTT-4.13.2-1"]
        connack5 = conn.connack5
        if connack5 is not None and connack5.keep_alive > 0:
            try:
                connack5.check_keep_alive_close(conn.idle)
            except Violation as error:
                refs += error.refs
        return refs

    def _reject_subscribe_closed5(self, conn: Connection, observation: Closed) -> None:
        """A close the model knows no reason for, with a SUBSCRIBE unanswered: a
        Requested QoS above the CONNACK's Maximum QoS is no reason either, the server
        MUST accept such a SUBSCRIBE [MQTT-3.2.2-10] (``connack.check_subscribe_closed``)."""
        if conn.connack5 is None:
            return
        requested = [
            _GRANTS[Situation(str(fact))]
            for expected in conn.expected
            if expected.kind == "SUBACK"
            for facts in expected.situations
            for fact in facts
            if str(fact) in _GRANTS
        ]
        try:
            conn.connack5.check_subscribe_closed(requested)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, observation) from None

    def _observe_connack(self, conn: Connection, packet: ConnAck) -> None:
        if packet.return_code not in conn.connack_codes:
            raise self._reject(
                conn,
                "CONNACK return code not allowed for this CONNECT",
                ["MQTT-3.1.4-4", "MQTT-3.2.2-4", "MQTT-3.1.3-8", "MQTT-3.1.2-2"],
                packet,
            )
        if packet.return_code != 0:
            if packet.session_present:
                raise self._reject(conn, "session present with a refusal", ["MQTT-3.2.2-4"], packet)
            self._fire_connection(conn, CE.CONNACK_REFUSED)
            return
        expected = self._session_present(conn)
        if packet.session_present != expected:
            raise self._reject(
                conn,
                f"session present must be {int(expected)}",
                ["MQTT-3.2.2-1"] if not expected else ["MQTT-3.2.2-2"],
                packet,
            )
        self._fire_connection(conn, CE.CONNACK_ACCEPTED)

    def _ends_with_takeover(self, conn: Connection, session: Session | None) -> bool:
        """Whether ``session`` is a level-5 session attached to another connection with
        a Session Expiry Interval of 0: the takeover closes that connection first
        [MQTT-3.1.4-2] (5.0: [MQTT-3.1.4-3]), and the session ends when its Network
        Connection closes (3.1.2.11.2), so the CONNECT taking over finds no session.
        (A level-5 CONNECT judges this in ``Session5``; this is for a 3.1.1 one.)"""
        if session is None or session.v5 is None or session.client in (None, conn.client):
            return False
        old = self.connections.get(session.client or "")
        return old is not None and old.level == MQTT_5 and session.v5.expiry == 0

    def _session_present(self, conn: Connection) -> bool:
        assert conn.connect is not None
        session = self.sessions.get(conn.session_key or "")
        return (
            not conn.connect.clean_session
            and not self._ends_with_takeover(conn, session)
            and session is not None
            and session.state
            in (SessionState.PERSISTENT_SESSION, SessionState.PERSISTENT_DISCONNECTED)
        )

    def _observe_answer(self, conn: Connection, session: Session, packet: Packet) -> None:
        kind = {SubAck: "SUBACK", UnsubAck: "UNSUBACK", PingResp: "PINGRESP"}[type(packet)]
        packet_id = getattr(packet, "packet_id", None)
        if conn.level == MQTT_5 and isinstance(packet, (SubAck, UnsubAck)):
            self._answered(conn, session, self._answer5(conn, packet), packet)
            return
        for expected in conn.expected:
            if expected.kind == kind and expected.packet_id == packet_id:
                break
        else:
            refs = {
                "SUBACK": "MQTT-3.8.4-2",
                "UNSUBACK": "MQTT-2.3.1-7",
                "PINGRESP": "MQTT-3.12.4-1",
            }
            raise self._reject(conn, f"an unexpected {kind}", [refs[kind], "MQTT-2.3.1-7"], packet)
        self._answered(conn, session, expected, packet)

    def _answered(
        self, conn: Connection, session: Session, expected: Expected, packet: Packet
    ) -> None:
        if isinstance(packet, SubAck):
            self._check_suback(conn, session, expected, packet)
        conn.expected.remove(expected)
        self.refs_hit.update(expected.refs)

    def _answer5(self, conn: Connection, packet: SubAck | UnsubAck) -> Expected:
        """A level-5 SUBACK or UNSUBACK judged by ``answers.Answers5``: it answers the
        oldest unanswered request with its Packet Identifier [MQTT-2.2.1-6]
        [MQTT-3.8.4-2] [MQTT-3.10.4-5], not one already answered [MQTT-3.8.4-5]
        [MQTT-3.10.4-6], with one Reason Code per Topic Filter [MQTT-3.9.3-2]
        [MQTT-3.11.3-2], in the request's order [MQTT-3.9.3-1] [MQTT-3.11.3-1], each one
        its filter's situations allow. Returns the answered request's ``Expected``;
        a rejection leaves the model as it was."""
        if isinstance(packet, SubAck):
            kind, codes = PacketKind.SUBACK, packet.return_codes
        else:
            kind, codes = PacketKind.UNSUBACK, packet.reason_codes
        owed = [e for e in conn.expected if e.kind == str(kind) and e.packet_id is not None]
        if conn.answers5 is None:
            conn.answers5 = Answers5(conn.client)
        conn.answers5.waiting = [
            Request(kind, e.packet_id, e.filters,
                    tuple(frozenset(Situation(str(f)) for f in facts) for facts in e.situations))
            for e in owed
            if e.packet_id is not None
        ]
        try:
            conn.answers5.answer(kind, packet.packet_id, codes)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None
        return next(e for e in owed if e.packet_id == packet.packet_id)

    def _check_suback(
        self, conn: Connection, session: Session, expected: Expected, packet: SubAck
    ) -> None:
        if len(packet.return_codes) != len(expected.codes):
            raise self._reject(conn, "one return code per topic filter", ["MQTT-3.8.4-5"], packet)
        answers = list(zip(packet.return_codes, expected.codes, expected.filters, strict=True))
        for code, allowed, topic_filter in answers:
            if code not in allowed:
                # A reserved code breaks 3.9.3-2; a grant above the request, 3.8.4-6.
                reserved = code not in (0x00, 0x01, 0x02, 0x80)
                raise self._reject(
                    conn,
                    f"return code 0x{code:02X} for {topic_filter!r} not allowed",
                    ["MQTT-3.9.3-2"] if reserved else ["MQTT-3.8.4-6"],
                    packet,
                )
        made = expected.subscriptions or tuple(
            session.subscriptions.get(f) for f in expected.filters
        )
        for code, subscription in zip(packet.return_codes, made, strict=True):
            if subscription is None or subscription.granted is not None:
                continue
            if code >= 0x80:  # 0x80, or a 5.0 refusal
                self._refused(session, subscription)
                continue
            subscription.granted = code
            if session.shared.get(subscription.topic_filter) is subscription:
                self._joined(session, subscription)
            for delivery in session.pending:
                if delivery.subscription is subscription:
                    delivery.allowed_qos = frozenset({min(delivery.message.qos, code)})

    @staticmethod
    def _refused(session: Session, subscription: Subscription) -> None:
        """A refused subscription (0x80) does not exist: nothing is owed for it."""
        current = session.subscriptions.get(subscription.topic_filter) is subscription
        if current:
            del session.subscriptions[subscription.topic_filter]
        if session.shared.get(subscription.topic_filter) is subscription:
            del session.shared[subscription.topic_filter]  # never joined its group
        kept = []
        for delivery in session.pending:
            if delivery.subscription is subscription:
                continue  # its retained message
            if current and subscription.topic_filter in delivery.filters:
                delivery.filters = tuple(
                    f for f in delivery.filters if f != subscription.topic_filter
                )
                if not delivery.filters:
                    continue
            kept.append(delivery)
        session.pending[:] = kept

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
                list(_FLOW_PACKET_REFS[type(packet)]),
                packet,
            ) from None
        if taken is not None:
            self.refs_hit.update(taken[1].refs)
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
                    refs.append("MQTT-4.3.3-1")
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
            self._reject_discarded(conn, session, packet)
            if conn.level == MQTT_5 or any(s.no_local for s in session.subscriptions.values()):
                # No Local binds a level-5 subscription also after a 3.1.1 connection
                # resumed its session: the ClientID is the same [MQTT-3.8.3-3].
                self._reject_options5(conn, session, packet)
            if conn.level == MQTT_5:
                self._reject_expired(conn, session, packet)
            self._reject_wrong_flags(conn, session, packet)
            subscribed = any(matches(f, packet.topic) for f in session.subscriptions)
            self._reject_stored_empty(conn, packet, subscribed=subscribed)
            self._reject_duplicate(conn, session, packet)
            self._reject_packet_id_in_qos0(conn, packet)
            self._reject_early_will(conn, packet)
            if conn.level == MQTT_5:
                self._reject_misrouted5(conn, session, packet)
            unsubscribed = any(matches(f, packet.topic) for f in session.unsubscribed)
            refs = (
                ["MQTT-4.5.0-1", "MQTT-3.3.5-1", "MQTT-3.8.4-6", "MQTT-3.3.1-9", "MQTT-3.3.1-8"]
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
                self.refs_hit.update(taken[1].refs)
        self.refs_hit.update(
            ("MQTT-4.5.0-1", "MQTT-3.3.1-9" if not packet.retain else "MQTT-3.3.1-8")
        )
        if not delivery.retain:
            session.last_sent[delivery.order_key] = delivery.message.seq
        self.delivered.append((session.client_id, session.generation, delivery, int(packet.qos)))

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

    def _assigned_id(self, conn: Connection, code: int) -> Properties:
        """The CONNACK's properties ``allowed`` offers: accepting a level-5 CONNECT with
        a zero-length ClientID, an Assigned Client Identifier no Session uses
        [MQTT-3.1.3-7] [MQTT-3.2.2-16]."""
        assert conn.connect is not None
        if conn.level != MQTT_5 or conn.connect.client_id or code >= 0x80:
            return NO_PROPERTIES
        n = 1
        while f"assigned-{n}" in self.sessions:
            n += 1
        return Properties(assigned_client_identifier=f"assigned-{n}")

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

    def _reject_misrouted5(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A PUBLISH to a level-5 client that nothing due explains, read by the rules of
        ``forwarding``: a message due under another Topic Name that this one is a
        normalized or U+FEFF-stripped form of [MQTT-4.7.3-4] [MQTT-1.5.4-3]; or a
        subscription that matches the Topic Name only for a server that lets a leading
        wildcard match ``$`` [MQTT-4.7.2-1] or normalizes [MQTT-4.7.3-4]."""
        for delivery in session.pending:
            published = delivery.message.topic
            if delivery.message.payload == packet.payload and forwarding.renamed(
                published, packet.topic
            ):
                try:
                    forwarding.check_topic(conn.client, published, packet.topic)
                except Violation as error:
                    raise self._reject(conn, error.detail, error.refs, packet) from None
        for topic_filter in session.subscriptions:
            if matches(topic_filter, packet.topic):
                continue
            try:
                forwarding.check_match(conn.client, topic_filter, packet.topic)
            except Violation as error:
                if error.refs != ("MQTT-3.3.2-3",):  # a reason of its own, not "not due"
                    raise self._reject(conn, error.detail, error.refs, packet) from None

    def _check_order5(
        self, conn: Connection, session: Session, delivery: Delivery,
        earlier: list[Delivery], packet: Publish,
    ) -> None:
        """A level-5 copy out of its publisher, Topic and QoS order, told by
        ``forwarding.OrderedTopics5``: on a Non-shared Subscription every Topic is an
        Ordered Topic [MQTT-4.6.0-6], whose messages go in the order received
        [MQTT-4.6.0-5]. (A group's copy, which that rule does not order, is left to
        the caller's own reading.)"""
        message = delivery.message
        ordered = forwarding.OrderedTopics5(conn.client)
        key = (message.origin, message.topic, message.qos)
        last = session.last_sent.get(delivery.order_key)
        shared = delivery.channel.startswith("share:")
        try:
            if last is not None:
                ordered.latest[key] = last
            ordered.forwarded(*key, message.seq, shared=shared)
            for owed in earlier:  # each still owed: it will come after this one
                if owed.required:
                    ordered.forwarded(*key, owed.message.seq, shared=shared)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None

    def _reject_overtaken(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A message that was allowed, and dropped when a later message of its
        publisher, topic and QoS was sent first, arrives after all: it is out of
        order [MQTT-4.6.0-6] (at 5.0 on a Non-shared Subscription also [MQTT-4.6.0-5],
        ``_check_order5``). (Never arriving is fine: it was only allowed.)"""
        late = [
            d for d in session.overtaken
            if d.message.topic == packet.topic
            and d.message.payload == packet.payload
            and int(packet.qos) in d.allowed_qos
            and d.retain == packet.retain
        ]
        if late:
            if conn.level == MQTT_5:
                self._check_order5(conn, session, late[0], [], packet)
            raise self._reject(
                conn,
                "a message overtook an earlier one of the same publisher, topic and QoS,"
                " which arrived after it",
                ["MQTT-4.6.0-6"],
                packet,
            )

    def _reject_stored_empty(self, conn: Connection, packet: Publish, *, subscribed: bool) -> None:
        """A zero-byte PUBLISH with RETAIN=1 that nothing pending explains, on a
        topic a zero-byte retained message was published to, reaching a matching
        subscription: the server stored that message and sent it as the retained one.
        It must have removed the retained message so that future subscribers get none
        [MQTT-3.3.1-10], and never store a zero-byte one [MQTT-3.3.1-11]."""
        if (
            packet.retain
            and not packet.payload
            and subscribed
            and packet.topic in self.emptied_retained
        ):
            raise self._reject(
                conn,
                "a zero-byte retained message was stored and sent to a new subscription",
                ["MQTT-3.3.1-10", "MQTT-3.3.1-11"],
                packet,
            )

    def _reject_packet_id_in_qos0(self, conn: Connection, packet: Publish) -> None:
        """A QoS 0 PUBLISH whose payload is a published one after two more bytes: a
        packet identifier, which a QoS 0 PUBLISH must not contain [MQTT-2.3.1-5] and
        which a receiver can only read as payload."""
        payload = packet.payload
        if packet.qos != 0 or len(payload) < 2 or (packet.topic, payload) in self.published:
            return
        if (packet.topic, payload[2:]) not in self.published:
            return
        raise self._reject(
            conn, "a packet identifier in a QoS 0 PUBLISH", ["MQTT-2.3.1-5"], packet
        )

    def _reject_duplicate(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A new QoS 2 PUBLISH (DUP=0) of a message published at QoS 2 that this session
        already got at QoS 2, with no copy of it still owed: a duplicate the server
        caused, which the QoS 2 flow rules out [MQTT-4.3.3-2]."""
        if packet.qos != 2 or packet.dup:
            return
        if not any(
            client_id == session.client_id
            and generation == session.generation
            and qos == 2
            and delivery.message.qos == 2
            and delivery.message.topic == packet.topic
            and delivery.message.payload == packet.payload
            for client_id, generation, delivery, qos in self.delivered
        ):
            return
        raise self._reject(
            conn,
            "a second delivery of a QoS 2 message this client already got",
            ["MQTT-4.3.3-2"],
            packet,
        )

    def _reject_discarded(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A message the server took ownership of that only a subscription discarded
        with an earlier session of this client id explains (RETAIN=0, a QoS that
        subscription and the message allow, no current subscription giving it): the
        server kept state it must discard [MQTT-3.1.2-6]. A pending copy differing
        only in RETAIN is a flag error instead."""
        published = self.published.get((packet.topic, packet.payload))
        if packet.retain or published is None or packet.qos > published:
            return
        stale = [
            s
            for f, s in session.discarded.items()
            if f not in session.subscriptions and matches(f, packet.topic)
        ]
        if not any(packet.qos <= max(s.possible_granted()) for s in stale):
            return
        if any(
            d.message.topic == packet.topic
            and d.message.payload == packet.payload
            and d.retain
            and int(packet.qos) in d.allowed_qos
            for d in session.pending
        ):
            return
        raise self._reject(
            conn,
            "this message is due only to a subscription the server discarded",
            list(session.discard_refs),
            packet,
        )

    def _reject_wrong_flags(self, conn: Connection, session: Session, packet: Publish) -> None:
        """The message is due, but not at this QoS or with this RETAIN flag: name the
        one statement that says which, not every statement a delivery depends on."""
        same = [
            d
            for d in session.pending
            if d.message.topic == packet.topic and d.message.payload == packet.payload
        ]
        if any(d.retain == packet.retain for d in same):
            overlapping = sum(1 for f in session.subscriptions if matches(f, packet.topic)) > 1
            raise self._reject(
                conn,
                "this message is due at another QoS",
                ["MQTT-3.3.5-1"] if overlapping else ["MQTT-3.8.4-6"],
                packet,
            )
        if any(int(packet.qos) in d.allowed_qos for d in same):
            raise self._reject(
                conn,
                "this message is due with the other RETAIN flag",
                ["MQTT-3.3.1-9"] if packet.retain else ["MQTT-3.3.1-8"],
                packet,
            )

    def _observe_resend(
        self, conn: Connection, session: Session, flow: Flow, packet: Publish
    ) -> None:
        """DUP=1 with the packet id of the message in flight it repeats: a retry
        (allowed any time) or the re-send owed on reconnect, in order [MQTT-4.6.0-1]."""
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
                ["MQTT-4.3.3-1"] if past_pubrel else ["MQTT-4.3.3-1", "MQTT-3.3.1-1"],
                packet,
            ) from None
        if taken is not None:
            self.refs_hit.update(taken[1].refs)

    # ------------------------------------------------------- allowed answers

    def allowed(self, client: str) -> list[Observation]:
        """Concrete observations the server may produce next for ``client``.

        Where the server picks a packet id, the lowest free one stands for
        "any free id"; retries (DUP=1 re-sends) are listed for every
        unacknowledged message.
        """
        conn = self._conn(client)
        found: list[Observation] = []
        if conn.state == C.AWAITING_CONNACK:
            if conn.level == MQTT_5 and conn.session5 is not None:
                present = max(conn.session5.session_present_allowed())
            else:
                present = self._session_present(conn)
            found += [
                ConnAck(present if rc == 0 else False, rc, self._assigned_id(conn, rc))
                for rc in sorted(conn.connack_codes)
            ]
        elif conn.disconnect_sent is not None:
            return [Closed()]
        elif conn.state == C.CONNECTED:
            found += self._allowed_connected(conn)
        if conn.state == C.CLOSE_DUE or (conn.open and conn.may_close):
            found.append(Closed())
        return found

    def _allowed_connected(self, conn: Connection) -> list[Observation]:
        session = self._attached_session(conn)
        found: list[Observation] = []
        for expected in conn.expected:
            if expected.kind == "SUBACK":
                assert expected.packet_id is not None
                codes = tuple(max((x for x in c if x < 0x80), default=0x80) for c in expected.codes)
                found.append(SubAck(expected.packet_id, codes))
            elif expected.kind == "UNSUBACK":
                assert expected.packet_id is not None
                found.append(UnsubAck(expected.packet_id, tuple(min(c) for c in expected.codes)))
            else:
                found.append(PingResp())
        for flow in session.flows.incoming.values():
            if flow.state == "puback_due":
                found.append(PubAck(flow.packet_id))
            elif flow.state == "pubrec_due":
                found.append(PubRec(flow.packet_id))
            elif flow.state == "pubcomp_due":
                found.append(PubComp(flow.packet_id))
        for flow in sorted(session.flows.outgoing.values(), key=lambda f: f.order):
            if flow.state in (SenderState.PUBREL_DUE, SenderState.AWAITING_PUBCOMP):
                found.append(PubRel(flow.packet_id))
            if flow.state == SenderState.PUBREL_DUE or not isinstance(flow.message, Delivery):
                continue
            if flow.state in (
                SenderState.PUBLISH_RESEND_DUE,
                SenderState.AWAITING_PUBACK,
                SenderState.AWAITING_PUBREC,
            ):
                message = flow.message.message
                qos = QoS.AT_LEAST_ONCE if flow.chart.name == "qos1_sender" else QoS.EXACTLY_ONCE
                found.append(
                    Publish(
                        message.topic,
                        message.payload,
                        qos,
                        flow.message.retain,
                        True,
                        flow.packet_id,
                        self._properties_for(conn, flow.message),
                    )
                )
        found += self._allowed_first_sends(session, conn)
        return found

    def _allowed_first_sends(self, session: Session, conn: Connection) -> list[Observation]:
        found: list[Observation] = []
        # Per ordering key, every delivery up to and including the first required
        # one may come next: an allowed one may be skipped, a required one not.
        reachable: list[Delivery] = []
        blocked: set[object] = set()
        for delivery in sorted(session.pending, key=lambda d: (d.message.seq, not d.required)):
            if delivery.order_key in blocked:
                continue
            if session.last_sent.get(delivery.order_key, 0) > delivery.message.seq:
                continue  # a later message of its key went first: it can no longer come
            reachable.append(delivery)
            if delivery.required:
                blocked.add(delivery.order_key)
        free = (pid for pid in range(1, 65536) if pid not in session.flows.outgoing)
        quota_left = conn.quota is None or conn.quota.quota > 0
        found += [
            p
            for p in self._allowed_shared(session, free, level5=conn.level == MQTT_5)
            if p.qos == 0 or quota_left
        ]
        for delivery in reachable:
            qos = max(delivery.allowed_qos) if quota_left else min(delivery.allowed_qos)
            if (qos > 0 and not quota_left) or self._too_large(session, delivery):
                continue  # 5.0: no quota [MQTT-3.3.4-9], or above the limit [MQTT-3.1.2-24]
            packet_id = next(free) if qos > 0 else None
            found.append(
                Publish(
                    delivery.message.topic,
                    delivery.message.payload,
                    QoS(qos),
                    delivery.retain,
                    False,
                    packet_id,
                    self._properties_for(conn, delivery),
                )
            )
        return found
