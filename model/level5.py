"""MQTT 5.0 clients in the broker model, beside 3.1.1 ones on the same server.

Theory of operation: a connection knows its Protocol Level from its CONNECT.
A level-5 connection runs the same charts as a 3.1.1 one (connection, QoS
flows, routing), and this mixin puts the 5.0 components of ``model/v5`` where
5.0 says something else:

- the CONNACK's Reason Code is judged against ``reason_codes.connack_situations``
  (a set: any refusal the table allows, acceptance unless the will must be
  refused), and Session Present against ``Session5`` (Clean Start and the
  Session Expiry Interval) [MQTT-3.2.2-2] [MQTT-3.2.2-3];
- the session's lifetime is ``Session5``'s: it outlives the connection for the
  interval in force and ends with it at 0; while it may be expiring nothing is
  owed to it; once it must be gone the model's session record is emptied
  [MQTT-4.1.0-2]; under the 3.1.1 session chart a level-5 session is always a
  persistent one whose end this mixin decides;
- the will waits for ``Will5``: its Will Delay Interval or the session's end,
  whichever is first [MQTT-3.1.2-8], is cancelled by a resuming reconnection
  [MQTT-3.1.3-9], and DISCONNECT 0x00 alone discards it [MQTT-3.14.4-3];
- the server's DISCONNECT is judged by ``disconnect.check_code`` for the reason
  the model knows it has to close (a takeover is 0x8E [MQTT-3.1.4-3]); after it,
  the close alone is allowed and owed [MQTT-3.14.4-1] [MQTT-3.14.4-2].

The model's clock is ``TimePasses``: ``now`` moves the 5.0 timers (session
expiry, will delay), each with the broker's ``expiry_margin`` (the text gives
expiry no precision).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import attrs

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    Subscription,
)
from mqttref.model.chart import Transition
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import Violation
from mqttref.model.events import Observation
from mqttref.model.records import (
    PRIMARY,
    Accepted,
    Connection,
    Delivery,
    Expected,
    Message,
    RetainedSlot,
    Session,
)
from mqttref.model.session import SessionState
from mqttref.model.shared_routing import SharedRouting
from mqttref.model.topics import matches, topic_filter_problem
from mqttref.model.v5 import disconnect as disconnect5
from mqttref.model.v5 import reason_codes
from mqttref.model.v5.disconnect import Situation as Why
from mqttref.model.v5.flow_control import Acknowledgement, SendQuota
from mqttref.model.v5.reason_codes import PacketKind, Situation
from mqttref.model.v5.session import NEVER_EXPIRES, Session5, SessionState5
from mqttref.model.v5.topic_alias import TopicAliases
from mqttref.model.v5.will import WillState5

C, CE = ConnectionState, ConnectionEvent
MQTT_5 = 5
_LIVE = (SessionState.CLEAN_SESSION, SessionState.PERSISTENT_SESSION,
         SessionState.PERSISTENT_DISCONNECTED)

_CLOSE_SITUATIONS: dict[str, tuple[Why, ...]] = {
    "takeover": (Why.SESSION_TAKEN_OVER,),
    "keep-alive": (Why.KEEP_ALIVE_TIMEOUT,),
    str(CE.KEEP_ALIVE_EXPIRED): (Why.KEEP_ALIVE_TIMEOUT,),
    str(CE.CONNECT): (Why.SECOND_CONNECT,),
    "invalid topic filter": (Why.TOPIC_FILTER_INVALID, Why.PROTOCOL_ERROR, Why.MALFORMED_PACKET),
}
"""The model's close causes -> the DISCONNECT situations they are (3.14.2.1)."""

_ANY_ERROR = (Why.PROTOCOL_ERROR, Why.MALFORMED_PACKET)
"""A client's violation the model does not name: a Protocol Error or Malformed Packet."""

_OWN_REASONS = (
    Why.SERVER_BUSY,
    Why.SERVER_SHUTTING_DOWN,
    Why.ADMINISTRATIVE_ACTION,
    Why.USE_ANOTHER_SERVER,
    Why.SERVER_MOVED,
    Why.CONNECTION_RATE_EXCEEDED,
    Why.MAXIMUM_CONNECT_TIME,
    Why.MESSAGE_RATE_TOO_HIGH,
    Why.QUOTA_EXCEEDED,
    Why.NOT_AUTHORIZED,
    Why.IMPLEMENTATION_SPECIFIC,
)
"""Reasons of the server's own that 3.14.2.1 lets it end a connection for at any time
(4.13.2: it MAY send DISCONNECT and then closes)."""


_FORWARDED = (
    ("payload_format_indicator", "MQTT-3.3.2-4"),
    ("content_type", "MQTT-3.3.2-20"),
    ("response_topic", "MQTT-3.3.2-15"),
    ("correlation_data", "MQTT-3.3.2-16"),
    ("user_properties", "MQTT-3.3.2-17"),
)
"""Properties a subscriber gets unaltered, and the statement that says so."""

_GONE_WILL_REFS: dict[WillState5, list[str]] = {
    WillState5.STORED: ["MQTT-3.1.2-8"],
    WillState5.DELAYED: ["MQTT-3.1.2-8"],
    WillState5.DISCARDED: ["MQTT-3.14.4-3"],
    WillState5.CANCELLED: ["MQTT-3.1.3-9"],
}
"""Why an unpublished will may not be published now, by its ``Will5`` state."""


def forwarded(properties: Properties) -> Properties:
    """The properties of a published message (or will) that travel with it to every
    subscriber unaltered: Payload Format Indicator [MQTT-3.3.2-4], Message Expiry
    Interval (counted down, [MQTT-3.3.2-6]), Content Type [MQTT-3.3.2-20], Response
    Topic [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16], User Properties in
    order [MQTT-3.3.2-17] [MQTT-3.3.2-18]. Topic Alias and Subscription Identifiers
    belong to one hop, not to the message."""
    return Properties(
        payload_format_indicator=properties.payload_format_indicator,
        message_expiry_interval=properties.message_expiry_interval,
        content_type=properties.content_type,
        response_topic=properties.response_topic,
        correlation_data=properties.correlation_data,
        user_properties=properties.user_properties,
    )


def connect5_problem(packet: Connect) -> str | None:
    """A level-5 CONNECT property of a value the text calls a Protocol Error:
    Receive Maximum 0 (3.1.2.11.3), Maximum Packet Size 0 (3.1.2.11.4)."""
    if packet.properties.receive_maximum == 0:
        return "Receive Maximum 0"
    if packet.properties.maximum_packet_size == 0:
        return "Maximum Packet Size 0"
    return None


def suback_facts(request: Subscription, *, identified: bool) -> frozenset[Situation]:
    """What a SUBACK may answer one Topic Filter with (3.9.3): a grant up to the
    requested QoS [MQTT-3.8.4-7] or a refusal; 0x9E, 0xA1, 0xA2 only where the
    filter is shared, carries an identifier, or has wildcards. A malformed filter
    may only be refused (or the connection closed)."""
    topic_filter = request.topic_filter
    if topic_filter_problem(topic_filter):
        return frozenset({Situation.SUBSCRIBE_REFUSED})
    return reason_codes.suback_situations(
        requested_qos=int(request.qos),
        shared=topic_filter.startswith("$share/"),
        wildcard="+" in topic_filter or "#" in topic_filter,
        subscription_identifier=identified,
    )


def retained_wanted(retain_handling: int, *, existed: bool) -> bool:
    """Retain Handling: 0 sends the retained messages [MQTT-3.3.1-9] (again, on a
    replaced subscription [MQTT-3.8.4-4]), 1 only to a new subscription
    [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11]. 3.1.1 subscriptions are 0."""
    return retain_handling == 0 or (retain_handling == 1 and not existed)


def _variable_int_size(value: int) -> int:
    """Bytes of a Variable Byte Integer (1.5.5)."""
    size = 1
    while value >= 128:
        value //= 128
        size += 1
    return size


def publish_size(packet: Publish) -> int:
    """The encoded size of a 5.0 PUBLISH, fixed header included (3.3; 2.2.2 for the
    properties, each an identifier byte and its value), for the Maximum Packet
    Size rule [MQTT-3.1.2-24]. Written from the text, not the codec."""
    p = packet.properties
    text = [p.content_type, p.response_topic]
    properties = sum(1 + 2 + len(s.encode()) for s in text if s is not None)
    properties += 0 if p.correlation_data is None else 1 + 2 + len(p.correlation_data)
    properties += 0 if p.payload_format_indicator is None else 2
    properties += 0 if p.message_expiry_interval is None else 5
    properties += 0 if p.topic_alias is None else 3
    properties += sum(1 + _variable_int_size(i) for i in p.subscription_identifiers)
    properties += sum(
        1 + 2 + len(k.encode()) + 2 + len(v.encode()) for k, v in p.user_properties
    )
    remaining = 2 + len(packet.topic.encode()) + (2 if packet.qos > 0 else 0)
    remaining += _variable_int_size(properties) + properties + len(packet.payload)
    return 1 + _variable_int_size(remaining) + remaining


class Level5(SharedRouting):
    """Mixed into ``BrokerModel``: what differs for level-5 connections."""

    connections: dict[str, Connection]
    sessions: dict[str, Session]
    refs_hit: set[str]
    now: float
    expiry_margin: float
    delayed_wills: list[Connection]
    wills5: list[Connection]
    origins: dict[tuple[str, bytes], set[str]]
    expired: set[tuple[str, int]]
    message_seqs: dict[tuple[str, bytes], list[int]]
    retained: dict[str, RetainedSlot]

    def _fire_connection(
        self, conn: Connection, event: str, packet: Packet | None = None
    ) -> Transition:
        raise NotImplementedError

    def _reject(
        self, conn: Connection, message: str, refs: list[str] | tuple[str, ...],
        arrived: Observation,
    ) -> Violation:
        raise NotImplementedError

    def _will(self, conn: Connection, *, owed: bool) -> None:
        raise NotImplementedError

    def _allow_close(self, conn: Connection, reason: str) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- CONNECT

    def _connect5(self, conn: Connection, packet: Connect) -> frozenset[int]:
        """A level-5 CONNECT: the CONNACK codes it allows, and the session it may resume."""
        assert conn.session_key is not None
        will = packet.will
        conn.level = MQTT_5
        conn.connack_situations = reason_codes.connack_situations(
            client_id=packet.client_id,
            authentication_method=packet.properties.authentication_method is not None,
            will=will is not None,
            will_qos=int(will.qos) if will is not None else 0,
            will_retain=will.retain if will is not None else False,
        )
        session = self.sessions.get(conn.session_key)
        session5 = session.v5 if session is not None and session.v5 is not None else None
        conn.session5 = session5 or self._derive_session5(conn.session_key, session)
        conn.session5.connect(
            clean_start=packet.clean_session,
            session_expiry=packet.properties.session_expiry_interval or 0,
        )
        return reason_codes.allowed_in(PacketKind.CONNACK, conn.connack_situations)

    def _derive_session5(self, key: str, session: Session | None) -> Session5:
        """The 5.0 lifetime of a session a 3.1.1 connection made (or of none): a
        3.1.1 persistent session never expires, a clean one ends with its connection."""
        session5 = Session5(client=key, margin=self.expiry_margin, now=self.now)
        if session is None or session.state not in _LIVE:
            return session5
        if session.client is not None:
            session5.state = SessionState5.CONNECTED
            session5.expiry = session5.connect_expiry = 0 if session.clean else NEVER_EXPIRES
        else:
            session5.state = SessionState5.DISCONNECTED
            session5.expiry = session5.connect_expiry = NEVER_EXPIRES
            session5.closed_at = self.now
        return session5

    def _observe_connack5(self, conn: Connection, packet: ConnAck) -> None:
        """The CONNACK of a level-5 CONNECT: a Connect Reason Code the situation
        allows, then Session Present as the session's state allows."""
        assert conn.session5 is not None
        assert conn.connect is not None
        code = packet.return_code
        try:
            reason_codes.check(conn.client, PacketKind.CONNACK, conn.connack_situations, code)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None
        if code >= 0x80:
            if packet.session_present:
                raise self._reject(
                    conn, "Session Present with a refusal", ["MQTT-3.2.2-6"], packet
                )
            conn.session5.connack(code, False)
            self._fire_connection(conn, CE.CONNACK_REFUSED)
            return
        allowed = conn.session5.session_present_allowed()
        if packet.session_present not in allowed:
            clean_start = conn.connect.clean_session
            raise self._reject(
                conn,
                f"Session Present must be {' or '.join(str(int(v)) for v in sorted(allowed))}",
                ["MQTT-3.2.2-2"] if clean_start else ["MQTT-3.2.2-3"],
                packet,
            )
        conn.session5.connack(code, packet.session_present,
                              packet.properties.session_expiry_interval)
        conn.session_present = packet.session_present
        conn.client_aliases = TopicAliases.client_to_server(
            packet.properties.topic_alias_maximum, conn.client
        )
        self._fire_connection(conn, CE.CONNACK_ACCEPTED)
        if packet.properties.server_keep_alive is not None:
            conn.keep_alive = packet.properties.server_keep_alive  # 3.2.2.3.14

    def _started5(self, conn: Connection, session: Session) -> None:
        """The session chart resumed the session (or took it over): under 5.0 it
        starts empty after Clean Start 1 [MQTT-3.2.2-2] or when none existed
        [MQTT-3.2.2-3]; a resuming connection cancels a will still delayed
        [MQTT-3.1.3-9], a new session makes it due (the old session ended)."""
        assert conn.connect is not None
        session.v5 = conn.session5
        session.clean = False  # the 3.1.1 chart keeps it; Session5 decides its end
        resumed = conn.session_present
        if resumed:
            self._member_back(session)
        else:
            self._member_gone(session, session_ended=True)
            if session.subscriptions:  # else an earlier discard's reason stands
                clean_start = conn.connect.clean_session
                session.discard_refs = ("MQTT-3.1.2-4",) if clean_start else ("MQTT-3.1.2-6",)
            session.discard()
        for old in list(self.delayed_wills):
            if old.session_key != conn.session_key or old.will5 is None:
                continue
            if old.will5.state == WillState5.DELAYED:
                if resumed:
                    old.will5.reconnected()
                    old.will = None
                else:
                    old.will5.session_ended()
            self._will_timer(old)
        for other in self.connections.values():
            if (
                other is not conn
                and other.session_key == conn.session_key
                and other.open
                and other.will5 is not None
                and resumed
                and self._will_wait(other) > 0
            ):
                other.will = None  # the takeover resumes the session in time [MQTT-3.1.3-9]

    # -------------------------------------------------------------- the will

    def _will_wait(self, conn: Connection) -> int:
        """Seconds from the close to the will: the delay, or the session's end if sooner."""
        if conn.will5 is None:
            return 0
        session = self.sessions.get(conn.session_key or "")
        expiry = session.v5.expiry if session is not None and session.v5 is not None else 0
        return conn.will5.delay if expiry == NEVER_EXPIRES else min(conn.will5.delay, expiry)

    def _will_publishable(self, conn: Connection) -> bool:
        """Whether a level-5 will may go out now: it is due, or it would be the moment
        the connection closes and a close is possible (as under 3.1.1)."""
        will5 = conn.will5
        if will5 is None:
            return True
        if will5.state == WillState5.STORED:
            return self._will_wait(conn) == 0
        return will5.state in (WillState5.DUE, WillState5.PUBLISHED)

    def _will_closed(self, conn: Connection, reason_code: int | None = None) -> None:
        """The level-5 connection closed (``reason_code``: the client's DISCONNECT):
        the will's delay starts [MQTT-3.1.2-8]."""
        will5 = conn.will5
        if will5 is None or conn.will is None or will5.state != WillState5.STORED:
            return
        session = self.sessions.get(conn.session_key or "")
        expiry = session.v5.expiry if session is not None and session.v5 is not None else 0
        if reason_code is None:
            will5.connection_closed(session_expiry=expiry)
        else:
            will5.client_disconnect(reason_code, session_expiry=expiry)
        if conn not in self.delayed_wills:
            self.delayed_wills.append(conn)
        self._will_timer(conn)

    def _will_timer(self, conn: Connection) -> None:
        """A due will may be published; past its margin it is owed."""
        will5 = conn.will5
        assert will5 is not None
        if will5.state == WillState5.DUE:
            self._will(conn, owed=will5.overdue() or self._will_wait(conn) == 0)
        waiting = will5.state in (WillState5.STORED, WillState5.DELAYED, WillState5.DUE)
        if (conn.will_owed or not waiting) and conn in self.delayed_wills:
            self.delayed_wills.remove(conn)

    # ------------------------------------------------------ session lifetime

    def _closed5(self, conn: Connection, session: Session | None) -> None:
        """The level-5 connection closed without a valid DISCONNECT (either side)."""
        if session is not None and session.v5 is not None:
            session5 = session.v5
            if conn.close_cause == "takeover" or "takeover" in conn.may_close:
                if session5.takeover_due or (
                    session5.pending is not None and session5.state == SessionState5.CONNECTED
                ):
                    session5.taken_over_connection_closed(conn.disconnect_sent)
            elif session5.state == SessionState5.CONNECTED and conn.session5 is session5:
                session5.closed()
        self._will_closed(conn)

    def _sync_session5(self, session: Session) -> None:
        """Bring the session record in line with its 5.0 lifetime: while it may be
        expiring nothing is owed to it; once it must be gone it holds nothing
        [MQTT-4.1.0-2] and a later CONNECT finds no session."""
        session5 = session.v5
        if session5 is None or session.client is not None or session.state not in _LIVE:
            return
        if session5.state == SessionState5.NO_SESSION:
            self._member_gone(session, session_ended=True)
            session.discard_refs = ("MQTT-4.1.0-2",)
            session.discard()
            session.state = SessionState.START  # no session exists for this ClientID
            for conn in list(self.delayed_wills):
                if conn.session_key == session.client_id and conn.will5 is not None:
                    if conn.will5.state == WillState5.DELAYED:
                        conn.will5.session_ended()
                    self._will_timer(conn)
        elif session5.state == SessionState5.EXPIRING:
            for delivery in session.pending:
                delivery.required = delivery.required_on_release = False

    def _time_passes5(self, seconds: float) -> None:
        self.now += seconds
        for session in self.sessions.values():
            if session.v5 is not None:
                session.v5.time_passes(seconds)
                self._sync_session5(session)
            self._expire(session)
        for conn in list(self.delayed_wills):
            assert conn.will5 is not None
            conn.will5.time_passes(seconds)
            self._will_timer(conn)
        for conn in self.connections.values():
            if conn.will5 is not None and conn not in self.delayed_wills:
                conn.will5.now = self.now

    # ----------------------------------------------------- client DISCONNECT

    def _disconnect5_valid(self, conn: Connection, session: Session, packet: Disconnect) -> bool:
        """The client's DISCONNECT: a Session Expiry Interval replaces the one in force,
        unless the CONNECT's was 0: that is a Protocol Error, after which the server
        owes DISCONNECT 0x82 and the close [MQTT-4.13.1-1] (3.14.2.2.2)."""
        assert session.v5 is not None
        if session.v5.disconnect(packet.properties.session_expiry_interval):
            return True
        conn.disconnect_cause = str(Why.DISCONNECT_SESSION_EXPIRY)
        self._fire_connection(conn, CE.VIOLATION)
        self._sync_session5(session)
        return False

    def _disconnected5(
        self, conn: Connection, session: Session, packet: Disconnect, will: object
    ) -> None:
        """After a valid DISCONNECT: 0x00 discarded the will [MQTT-3.14.4-3], any other
        code keeps it for its delay [MQTT-3.1.2-8]; the session lives on or ends."""
        assert session.v5 is not None
        if packet.reason_code != 0x00 and will is not None:
            conn.will = conn.connect.will if conn.connect is not None else None
            self._will_closed(conn, packet.reason_code)
        elif conn.will5 is not None and conn.will5.state == WillState5.STORED:
            conn.will5.client_disconnect(0x00, session_expiry=session.v5.expiry)
        self._sync_session5(session)

    # ---------------------------------------------------- server DISCONNECT

    def _disconnect_situations(self, conn: Connection) -> tuple[Why, ...]:
        """Why the server may end ``conn`` now, in Table 3-10's terms (none: it may
        end it only for reasons of its own)."""
        causes = [conn.close_cause] if conn.state == C.CLOSE_DUE else []
        causes += conn.may_close
        found: list[Why] = []
        if conn.disconnect_cause:
            found.append(Why(conn.disconnect_cause))
        for cause in causes:
            if cause:
                found += _CLOSE_SITUATIONS.get(cause, _ANY_ERROR)
        return tuple(dict.fromkeys(found))

    def _observe_disconnect5(self, conn: Connection, packet: Disconnect) -> None:
        """The server's DISCONNECT: after an accepting CONNACK only [MQTT-3.14.0-1],
        with a code for the reason it closes [MQTT-3.14.2-1] (a takeover's is 0x8E
        [MQTT-3.1.4-3]); then only the close, which is owed [MQTT-3.14.4-2]."""
        if not conn.accepted or conn.state not in (C.CONNECTED, C.CLOSE_DUE):
            raise self._reject(
                conn, "DISCONNECT before an accepting CONNACK", ["MQTT-3.14.0-1"], packet
            )
        situations = self._disconnect_situations(conn) or _OWN_REASONS
        allowed = frozenset().union(*(disconnect5.allowed_codes(s) for s in situations))
        try:
            disconnect5.check_code(packet.reason_code, None, conn.client)
            if packet.reason_code not in allowed:
                disconnect5.check_code(packet.reason_code, situations[0], conn.client)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None
        conn.disconnect_sent = packet.reason_code
        self.refs_hit.add("MQTT-3.14.2-1")
        if conn.state == C.CONNECTED:
            self._allow_close(conn, f"DISCONNECT 0x{packet.reason_code:02X}")

    def _check_codes5(
        self, conn: Connection, kind: PacketKind, expected: Expected,
        codes: tuple[int, ...], packet: Observation,
    ) -> None:
        """A level-5 SUBACK or UNSUBACK: one Reason Code per Topic Filter, in order
        [MQTT-3.9.3-2] [MQTT-3.11.3-2], each one the filter's situation allows
        (``reason_codes.check`` names what a wrong one asserts)."""
        if len(codes) != len(expected.situations):
            ref = "MQTT-3.9.3-2" if kind == PacketKind.SUBACK else "MQTT-3.11.3-2"
            raise self._reject(conn, "one Reason Code per Topic Filter", [ref], packet)
        for code, facts in zip(codes, expected.situations, strict=True):
            try:
                reason_codes.check(
                    conn.client, kind, (Situation(str(f)) for f in facts), code
                )
            except Violation as error:
                raise self._reject(conn, error.detail, error.refs, packet) from None

    def _check_ack_code5(self, conn: Connection, session: Session, packet: Packet) -> None:
        """The Reason Code of a level-5 PUBACK, PUBREC, PUBREL or PUBCOMP from the
        server: success, 0x10 only with no matching subscribers, a refusal
        (3.4.2.1, 3.5.2.1); 0x92 only for a Packet Identifier it does not know
        (3.6.2.1, 3.7.2.1)."""
        code = getattr(packet, "reason_code", 0)
        packet_id = getattr(packet, "packet_id", 0)
        if isinstance(packet, (PubAck, PubRec)):
            flow = session.flows.incoming.get(packet_id)
            accepted = flow.message if flow is not None else None
            matched = not isinstance(accepted, Accepted) or bool(
                accepted.sessions or self._routed_to_groups(accepted.message)
            )
            facts = reason_codes.publish_ack_situations(matched=matched)
            kind = PacketKind.PUBACK if isinstance(packet, PubAck) else PacketKind.PUBREC
        else:
            flows = session.flows.outgoing if isinstance(packet, PubRel) else (
                session.flows.incoming)
            facts = reason_codes.packet_identifier_situations(known=packet_id in flows)
            kind = PacketKind.PUBREL if isinstance(packet, PubRel) else PacketKind.PUBCOMP
        try:
            reason_codes.check(conn.client, kind, facts, code)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None

    @staticmethod
    def _retract(accepted: object) -> None:
        """The server refused the client's PUBLISH (PUBACK or PUBREC 0x80 or above):
        it may not have forwarded it, so no copy of it is owed."""
        if isinstance(accepted, Accepted):
            for delivery in accepted.deliveries:
                delivery.required = delivery.required_on_release = False

    def _check_publish5(self, conn: Connection, delivery: Delivery, packet: Publish) -> None:
        """A PUBLISH to a level-5 client carries its message's properties unaltered and
        the Subscription Identifiers its copy owes (3.3.2.3, 3.3.4)."""
        sent, held = packet.properties, delivery.message.properties
        for name, ref in _FORWARDED:
            if getattr(sent, name) != getattr(held, name):
                reordered = name == "user_properties" and sorted(
                    sent.user_properties
                ) == sorted(held.user_properties)
                refs = ["MQTT-3.3.2-18"] if reordered else [ref]  # all there, reordered
                raise self._reject(conn, f"{name} altered in forwarding", refs, packet)
        expiry = held.message_expiry_interval
        left = sent.message_expiry_interval
        waited = max(0, int(self.now - delivery.message.at) - int(self.expiry_margin))
        if (expiry is None) != (left is None) or (
            expiry is not None and left is not None and left > expiry - waited
        ):
            raise self._reject(
                conn,
                f"Message Expiry Interval {left} for a message received with {expiry}",
                ["MQTT-3.3.2-6"],
                packet,
            )
        if frozenset(sent.subscription_identifiers) != delivery.identifiers:
            refs = (
                ["MQTT-3.3.4-5"]
                if delivery.channel != PRIMARY
                else ["MQTT-3.3.4-4"] if len(delivery.filters) > 1 else ["MQTT-3.3.4-3"]
            )
            raise self._reject(
                conn,
                f"Subscription Identifiers {sorted(sent.subscription_identifiers)}, owed"
                f" {sorted(delivery.identifiers)}",
                refs,
                packet,
            )

    def _attach5(self, conn: Connection) -> None:
        """The level-5 connection is accepted: its limits on what the server sends,
        fresh for each connection (4.9, [MQTT-3.3.2-7])."""
        assert conn.connect is not None
        properties = conn.connect.properties
        conn.quota = SendQuota.server_to_client(properties.receive_maximum, conn.client)
        conn.aliases = TopicAliases.server_to_client(properties.topic_alias_maximum, conn.client)
        conn.maximum_packet_size = properties.maximum_packet_size

    def _expiry(self, message: Message) -> str:
        """The message against its Message Expiry Interval on the model clock:
        ``held`` (owed as usual), ``expiring`` (past it, inside the margin: the
        server may have deleted it or not), ``expired`` (past the margin: it must
        be gone [MQTT-3.3.2-5]). Without an interval it never expires."""
        interval = message.properties.message_expiry_interval
        if interval is None:
            return "held"
        age = self.now - message.at
        if age > interval + self.expiry_margin:
            return "expired"
        return "expiring" if age >= interval else "held"

    def _expire(self, session: Session) -> None:
        """Queued copies whose message may have expired are no longer owed; once
        it must have expired they are gone, and a late one is named [MQTT-3.3.2-5]."""
        kept = []
        for delivery in session.pending:
            state = self._expiry(delivery.message)
            if state == "expired":
                self.expired.add((session.client_id, delivery.message.seq))
                continue
            if state == "expiring":
                delivery.required = delivery.required_on_release = False
            kept.append(delivery)
        session.pending[:] = kept

    def _reject_expired(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A PUBLISH carrying a message whose copy for this session had to be deleted
        when its Message Expiry Interval passed [MQTT-3.3.2-5]."""
        for seq in self.message_seqs.get((packet.topic, packet.payload), []):
            if (session.client_id, seq) in self.expired:
                raise self._reject(
                    conn, "a message delivered after it expired", ["MQTT-3.3.2-5"], packet
                )

    def _properties_for(self, conn: Connection, delivery: Delivery) -> Properties:
        """The properties a PUBLISH carrying ``delivery`` to ``conn`` has: none under
        3.1.1; at 5.0 the message's own, its Message Expiry Interval less the wait
        [MQTT-3.3.2-6], and the copy's Subscription Identifiers (3.3.4)."""
        if conn.level != MQTT_5:
            return NO_PROPERTIES
        held = delivery.message.properties
        left = held.message_expiry_interval
        if left is not None:
            left = max(0, left - int(self.now - delivery.message.at))
        return attrs.evolve(
            held,
            message_expiry_interval=left,
            subscription_identifiers=tuple(sorted(delivery.identifiers)),
        )

    def _client_alias5(self, conn: Connection, packet: Publish) -> Publish | None:
        """A level-5 client's PUBLISH read through its Topic Alias (3.3.2.3.4); None
        when it is a Protocol Error the server must close on (0x94 for an alias of 0
        or above the CONNACK's maximum, 0x82 for one alone that maps nothing)."""
        alias = packet.properties.topic_alias
        if conn.client_aliases is None or (alias is None and packet.topic):
            return packet
        resolved = conn.client_aliases.publish(packet.topic, alias)
        if resolved.topic is None:
            invalid = alias is not None and not 1 <= alias <= conn.client_aliases.maximum
            conn.disconnect_cause = str(
                Why.TOPIC_ALIAS_INVALID if invalid else Why.TOPIC_ALIAS_UNMAPPED
            )
            return None
        properties = attrs.evolve(packet.properties, topic_alias=None)
        return attrs.evolve(packet, topic=resolved.topic, properties=properties)

    def _too_large(self, session: Session, delivery: Delivery) -> bool:
        """Whether the PUBLISH carrying ``delivery`` exceeds the Maximum Packet Size of
        the level-5 connection attached to ``session``: the server discards it as if
        sent [MQTT-3.1.2-25], so it is allowed, never owed."""
        conn = self.connections.get(session.client or "")
        if conn is None or conn.maximum_packet_size is None:
            return False
        qos = max(delivery.allowed_qos)
        packet = Publish(
            delivery.message.topic,
            delivery.message.payload,
            QoS(qos),
            packet_id=1 if qos else None,
            properties=attrs.evolve(
                delivery.message.properties,
                subscription_identifiers=tuple(sorted(delivery.identifiers)),
            ),
        )
        return publish_size(packet) > conn.maximum_packet_size

    def _client_acknowledged(self, conn: Connection, packet: Packet) -> None:
        """The client's PUBACK, PUBREC or PUBCOMP gives the server quota back (4.9)."""
        assert conn.quota is not None
        kinds: dict[type, Acknowledgement] = {
            PubAck: "PUBACK", PubRec: "PUBREC", PubComp: "PUBCOMP"
        }
        kind = kinds.get(type(packet))
        if kind is not None:
            conn.quota.acknowledged(
                kind, getattr(packet, "packet_id", 0), getattr(packet, "reason_code", 0)
            )

    def _before_publish5(
        self, conn: Connection, session: Session, packet: Publish
    ) -> tuple[Publish, Callable[[], None]]:
        """A PUBLISH to a level-5 client, before it is matched to a delivery: its
        Topic Alias read on a copy of the client's map (a rejection changes
        nothing) [MQTT-3.3.2-8] [MQTT-3.3.2-11] [MQTT-3.1.2-27] [MQTT-3.3.2-3], its
        size against the client's Maximum Packet Size [MQTT-3.1.2-24], and the
        server's send quota [MQTT-3.3.4-9] [MQTT-4.9.0-2]. Returns the packet
        under its Topic Name and what to record once it is judged."""
        aliases = copy.deepcopy(conn.aliases)
        topic = packet.topic
        alias = packet.properties.topic_alias
        try:
            if aliases is not None:
                resolved = aliases.publish(packet.topic, alias)
                topic = resolved.topic if resolved.topic is not None else topic
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None
        limit = conn.maximum_packet_size
        size = publish_size(packet)
        if limit is not None and size > limit:
            raise self._reject(
                conn,
                f"a PUBLISH of {size} bytes to a client whose Maximum Packet Size is {limit}",
                ["MQTT-3.1.2-24"],
                packet,
            )
        quota = conn.quota
        unacknowledged = quota is not None and packet.packet_id in quota.unacknowledged
        if quota is not None and not unacknowledged:
            refusal = quota.refusal(int(packet.qos))
            if refusal is not None:
                raise self._reject(conn, refusal.detail, refusal.refs, packet)
        read = attrs.evolve(
            packet,
            topic=topic,
            properties=attrs.evolve(packet.properties, topic_alias=None),
        )

        def commit() -> None:
            conn.aliases = aliases
            if quota is not None:
                quota.publish(int(packet.qos), packet.packet_id)

        return read, commit

    def _reject_options5(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A PUBLISH nothing due explains that a subscription option forbade: the
        client's own message under No Local [MQTT-3.8.3-3], a retained message under
        Retain Handling 2 [MQTT-3.3.1-11] or 1 for a subscription that existed
        [MQTT-3.3.1-10], RETAIN against Retain As Published [MQTT-3.3.1-12/-13]."""
        matching = [s for f, s in session.subscriptions.items() if matches(f, packet.topic)]
        own = session.client_id in self.origins.get((packet.topic, packet.payload), set())
        if own and matching and all(s.no_local for s in matching):
            raise self._reject(conn, "the client's own message under No Local",
                               ["MQTT-3.8.3-3"], packet)
        stored = any(
            m.topic == packet.topic and m.payload == packet.payload
            for slot in self.retained.values()
            for m in slot.candidates()
        )
        in_group = any(
            matches(f.split("/", 2)[2], packet.topic) for f in session.shared if f.count("/") >= 2
        )
        if packet.retain and stored and in_group and not matching:
            raise self._reject(
                conn,
                "a retained message for a Shared Subscription (3.8.4: none is sent; no"
                " statement id says so)",
                [],
                packet,
            )
        if packet.retain and stored and matching:
            if all(s.retain_handling == 2 for s in matching):
                raise self._reject(conn, "a retained message under Retain Handling 2",
                                   ["MQTT-3.3.1-11"], packet)
            if all(s.retain_handling == 1 and s.replaced for s in matching):
                raise self._reject(
                    conn, "a retained message under Retain Handling 1 to an existing"
                    " subscription", ["MQTT-3.3.1-10"], packet)
        same = [d for d in session.pending
                if (d.message.topic, d.message.payload) == (packet.topic, packet.payload)
                and d.subscription is None and int(packet.qos) in d.allowed_qos]
        if same and all(d.retain != packet.retain for d in same):
            published_retained = any(d.message.retain for d in same)
            as_published = packet.retain == published_retained
            raise self._reject(
                conn, "RETAIN against the subscription's Retain As Published",
                ["MQTT-3.3.1-12"] if as_published else ["MQTT-3.3.1-13"], packet)

    def _reject_early_will(self, conn: Connection, packet: Publish) -> None:
        """A PUBLISH that nothing due explains and that carries a level-5 will never
        published: one still waiting for its Will Delay Interval (or the session's
        end) is early [MQTT-3.1.2-8]; one DISCONNECT 0x00 discarded [MQTT-3.14.4-3]
        or a resuming reconnection cancelled [MQTT-3.1.3-9] is gone."""
        for owner in self.wills5:
            will = owner.connect.will if owner.connect is not None else None
            will5 = owner.will5
            if (
                will is None
                or will5 is None
                or owner.will_published is not None
                or (will.topic, will.payload) != (packet.topic, packet.payload)
            ):
                continue
            refs = _GONE_WILL_REFS.get(WillState5(will5.state))
            if refs is not None:
                raise self._reject(conn, f"the will of {owner.client} ({will5.state})",
                                   refs, packet)

    def _after_disconnect(self, conn: Connection, observation: Observation) -> None:
        """Nothing but the close may follow the server's DISCONNECT [MQTT-3.14.4-1]."""
        raise self._reject(
            conn, "a packet after the server's DISCONNECT", ["MQTT-3.14.4-1"], observation
        )
