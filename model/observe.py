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

The module's classes, one mixin on the next: ``allowed.AllowedPackets`` (what
may come next, and the rejection naming it), ``publish_rejections.PublishRejections``
(why a PUBLISH nothing explains is wrong), ``publish_judge.PublishJudge`` (PUBLISH
and QoS flow packets), and here ``ObservationJudge``: the dispatch, the close, the
CONNACK and the owed answers (SUBACK, UNSUBACK, PINGRESP).

On a level-5 connection the 5.0 rule modules judge too: ``observe_frame`` reads each
frame's bytes before it is decoded (``v5.frames``); SUBACK and UNSUBACK go through
``v5.answers.Answers5``, the CONNACK through ``v5.connack.Connack5`` (kept on the
connection for its Maximum QoS and Keep Alive), the PUBCOMP of a client's QoS 2
message through ``v5.qos2_receiver.Qos2Receiver5``, and a PUBLISH's identity, Topic
Name and order through ``v5.forwarding``. Their violations are the model's, citing
their statements.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    ConnAck,
    Disconnect,
    Packet,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    UnsubAck,
)
from mqttref.model.allowed import AllowedPackets
from mqttref.model.chart import Transition
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import NoTransition, Violation
from mqttref.model.events import Closed, Observation
from mqttref.model.level5_publish import MQTT_5
from mqttref.model.publish_judge import PublishJudge
from mqttref.model.publish_rejections import PublishRejections
from mqttref.model.records import Connection, Expected, Session, Subscription
from mqttref.model.v5 import frames as frames5
from mqttref.model.v5.answers import Answers5, Request
from mqttref.model.v5.reason_codes import PacketKind, Situation

C, CE = ConnectionState, ConnectionEvent

_GRANTS: dict[str, int] = {
    Situation.GRANT_UP_TO_QOS_0: 0,
    Situation.GRANT_UP_TO_QOS_1: 1,
    Situation.GRANT_UP_TO_QOS_2: 2,
}
"""A level-5 SUBSCRIBE's grant situation -> its Requested QoS (the model's situations
are made with no Maximum QoS below 2)."""


class ObservationJudge(PublishJudge):
    """Mixed into ``BrokerModel``: ``observe`` and ``allowed`` (with ``Level5``'s
    judgements for level-5 connections)."""

    def _fire_connection(
        self, conn: Connection, event: str, packet: Packet | None = None
    ) -> Transition:
        raise NotImplementedError

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


__all__ = ["AllowedPackets", "ObservationJudge", "PublishJudge", "PublishRejections"]
