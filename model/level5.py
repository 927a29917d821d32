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

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Publish,
)
from mqttref.model.chart import Transition
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import Violation
from mqttref.model.events import Observation
from mqttref.model.level5_publish import MQTT_5, Level5Publish
from mqttref.model.records import (
    Connection,
    RetainedSlot,
    Session,
)
from mqttref.model.session import SessionState
from mqttref.model.v5 import disconnect as disconnect5
from mqttref.model.v5 import reason_codes
from mqttref.model.v5.connack import Connack5
from mqttref.model.v5.disconnect import Situation as Why
from mqttref.model.v5.reason_codes import PacketKind, Situation
from mqttref.model.v5.session import NEVER_EXPIRES, Session5, SessionState5
from mqttref.model.v5.topic_alias import TopicAliases
from mqttref.model.v5.will import WillState5

C, CE = ConnectionState, ConnectionEvent
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


_GONE_WILL_REFS: dict[WillState5, list[str]] = {
    WillState5.STORED: ["MQTT-3.1.2-8"],
    WillState5.DELAYED: ["MQTT-3.1.2-8"],
    WillState5.DISCARDED: ["MQTT-3.14.4-3"],
    WillState5.CANCELLED: ["MQTT-3.1.3-9"],
}
"""Why an unpublished will may not be published now, by its ``Will5`` state."""


def connect5_problem(packet: Connect) -> str | None:
    """A level-5 CONNECT property of a value the text calls a Protocol Error:
    Receive Maximum 0 (3.1.2.11.3), Maximum Packet Size 0 (3.1.2.11.4)."""
    if packet.properties.receive_maximum == 0:
        return "Receive Maximum 0"
    if packet.properties.maximum_packet_size == 0:
        return "Maximum Packet Size 0"
    return None


class Level5(Level5Publish):
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
        problem = connect5_problem(packet)
        if problem is not None:
            # A Protocol Error: CONNACK 0x82 then the close, or the close alone
            # [MQTT-4.13.1-1] [MQTT-3.2.2-7]; never an acceptance.
            conn.connack_situations = frozenset({Situation.CONNECT_PROTOCOL_ERROR})
            self._allow_close(conn, problem)
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
        allows; what its properties owe the CONNECT (``connack.Connack5``: no Response
        Information unrequested [MQTT-3.1.2-28]; accepting a zero-length ClientID, an
        Assigned Client Identifier no other Session holds [MQTT-3.1.3-6] [MQTT-3.1.3-7]
        [MQTT-3.2.2-16] and no Session to resume [MQTT-3.1.3-2]); then Session Present
        as the session's state allows. The assigned ClientID keys the Session from then
        on [MQTT-3.1.3-2] (until the CONNACK the model keys it ``<assigned #n>``)."""
        assert conn.session5 is not None
        assert conn.connect is not None
        code = packet.return_code
        try:
            reason_codes.check(conn.client, PacketKind.CONNACK, conn.connack_situations, code)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None
        connack5 = Connack5(conn.connect, conn.client, other_sessions=self._held_elsewhere(conn))
        try:
            connack5.connack(packet)
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
        if connack5.assigned is not None:
            conn.session_key = connack5.assigned
        conn.connack5 = connack5
        conn.session5.connack(code, packet.session_present,
                              packet.properties.session_expiry_interval)
        conn.session_present = packet.session_present
        conn.client_aliases = TopicAliases.client_to_server(
            packet.properties.topic_alias_maximum, conn.client
        )
        self._fire_connection(conn, CE.CONNACK_ACCEPTED)
        if packet.properties.server_keep_alive is not None:
            conn.keep_alive = packet.properties.server_keep_alive  # 3.2.2.3.14

    def _held_elsewhere(self, conn: Connection) -> frozenset[str]:
        """The ClientIDs of the Sessions the server certainly holds, but the one this
        CONNECT names: an Assigned Client Identifier must be none of them
        [MQTT-3.2.2-16]. A Session that may have expired (past its interval, inside the
        margin) is not certainly held."""
        return frozenset(
            key for key, other in self.sessions.items()
            if key != conn.session_key and other.state in _LIVE
            and (other.v5 is None or False not in other.v5.exists())
        )

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
        self._wills_on_return(conn, resumed=resumed)

    def _wills_on_return(self, conn: Connection, *, resumed: bool) -> None:
        """A connection of any level made to the session: a will still delayed, or one
        of a connection it takes over, is not sent when the session is resumed in time
        [MQTT-3.1.3-9]; a new session makes it due (the old session ended)."""
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
        if self._ended_by_takeover(conn):
            expiry = 0  # its session ended before this close: due at once [MQTT-3.1.2-8]
        if reason_code is None:
            will5.connection_closed(session_expiry=expiry)
        else:
            will5.client_disconnect(reason_code, session_expiry=expiry)
        if conn not in self.delayed_wills:
            self.delayed_wills.append(conn)
        self._will_timer(conn)

    def _ended_by_takeover(self, conn: Connection) -> bool:
        """Whether ``conn`` closes taken over by a connection already accepted that did
        not resume the session (Clean Start 1, or an old interval of 0): "the original
        Session is ended on the takeover" (3.1.4), so its will is due at once
        [MQTT-3.1.2-8]. A close observed before that CONNACK is ``_wills_on_return``'s."""
        if conn.close_cause != "takeover" and "takeover" not in conn.may_close:
            return False
        session = self.sessions.get(conn.session_key or "")
        new = self.connections.get(session.client or "") if session is not None else None
        if new is None or new is conn or not new.accepted or new.connect is None:
            return False
        if new.level == MQTT_5:
            return not new.session_present
        return new.connect.clean_session

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
            taken_over = conn.close_cause == "takeover" or "takeover" in conn.may_close
            if taken_over and (session5.takeover_due or (
                session5.pending is not None and session5.state == SessionState5.CONNECTED
            )):
                session5.taken_over_connection_closed(conn.disconnect_sent)
            elif session5.state == SessionState5.CONNECTED and conn.session5 is session5:
                # Also a takeover by a 3.1.1 CONNECT, which ``Session5`` does not see:
                # the session outlives the close by its interval, or ends (0).
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
        [MQTT-3.1.4-3]) and no Session Expiry Interval, which only the client may
        send [MQTT-3.14.2-2]; then only the close, which is owed [MQTT-3.14.4-2]."""
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
            disconnect5.check_server_disconnect_properties(
                conn.client, session_expiry_interval=packet.properties.session_expiry_interval
            )
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None
        conn.disconnect_sent = packet.reason_code
        self.refs_hit.add("MQTT-3.14.2-1")
        if conn.state == C.CONNECTED:
            self._allow_close(conn, f"DISCONNECT 0x{packet.reason_code:02X}")

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
