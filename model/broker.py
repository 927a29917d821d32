"""The broker model: what an MQTT 3.1.1 and 5.0 server must, may and must not do.

Theory of operation. The harness tells the model what clients do
(``apply(event)``: open, send a packet, send garbage, drop the connection, let
time pass) and what the server did (``observe(client, observation)``: a packet
arrived at a client, or the server closed its connection). The model executes
the charts of ``connection``, ``session``, ``topic`` and the QoS flows: each
event or observation fires a chart event, and the row's action updates the
bookkeeping. An observation the charts have no row for, or that matches no
owed or allowed packet, raises ``Violation``. ``obligations()`` lists what the
server owes and has not sent; after quiescence each is a violation
(``check_quiescent``).

Where the specification leaves a choice, the model keeps a *set* of allowed
outcomes rather than guessing: CONNACK return codes and SUBACK codes are sets,
deliveries are *required* or merely *allowed* (QoS 0 to an offline client,
per-subscription extra copies, a QoS 2 message before its PUBREL, a will on
takeover), a server close is *due* or merely *allowed* (keep-alive between 1x
and 1.5x, a QoS 0 PUBLISH with DUP=1, an invalid topic filter), and a retained
slot may hold alternatives. Re-sends (DUP=1) of unacknowledged messages are
always allowed, so the timing of retries is free.

Packets on different connections have no order the server promises, so a
rejected observation leaves the model unchanged (a harness may hold it and
retry), and a takeover's will may be observed before the new CONNACK.

Layout: this module holds the chart engine and the client events;
``observe.py`` judges observations (PUBLISHes and QoS flow packets in
``publish_judge.py``, the reasons a PUBLISH is not due in ``publish_rejections.py``),
``allowed.py`` lists ``allowed`` ones; ``messages.py``
routes owned messages (retained slots, fan-out); ``verdicts.py`` lists
obligations and checks the invariants; ``records.py`` holds the bookkeeping;
``level5.py``, ``level5_publish.py`` and ``shared_routing.py`` put the 5.0
components of ``model/v5`` where a level-5 connection's rules differ.

Assumption about the harness: it waits for quiescence after each event and
observes everything that arrived before applying the next event, and it
sends nothing on a connection before that connection's CONNACK arrived.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from mqttref.model.chart import Transition
from mqttref.model.connection import CONNECTION, ConnectionEvent, ConnectionState
from mqttref.model.errors import NoTransition, UsageError
from mqttref.model.events import (
    ClientEvent,
    Drop,
    Open,
    SendMalformed,
    SendUnjudged,
    TimePasses,
    describe,
)
from mqttref.model.level5_publish import MQTT_5, forwarded, retained_wanted, suback_facts
from mqttref.model.messages import MessageRouting
from mqttref.model.observe import ObservationJudge
from mqttref.model.qos import ReceiverState
from mqttref.model.records import (
    Accepted,
    Connection,
    Delivery,
    Expected,
    Message,
    RetainedSlot,
    Session,
    Subscription,
)
from mqttref.model.session import SESSION, SessionEvent, SessionState
from mqttref.model.shared_routing import is_shared
from mqttref.model.topics import topic_filter_problem, topic_name_problem
from mqttref.model.v5 import reason_codes
from mqttref.model.v5.numbering import SUBACK_OWED_5, flow_refs, row_refs, session_refs
from mqttref.model.v5.reason_codes import PacketKind
from mqttref.model.v5.shared import SharedGroups5
from mqttref.model.v5.will import Will5
from mqttref.model.verdicts import Verdicts

C, CE = ConnectionState, ConnectionEvent
SS, SE = SessionState, SessionEvent
_CLIENT_ID_ALWAYS_ALLOWED = re.compile(r"[0-9a-zA-Z]{1,23}")
_LIVE_SESSION = (SS.CLEAN_SESSION, SS.PERSISTENT_SESSION, SS.PERSISTENT_DISCONNECTED)


@attrs.frozen
class _Ctx:
    """What a chart action works on."""

    conn: Connection | None = None
    session: Session | None = None
    packet: Packet | None = None

    @property
    def connection(self) -> Connection:
        if self.conn is None:
            raise UsageError("this action needs a connection")
        return self.conn


class BrokerModel(MessageRouting, ObservationJudge, Verdicts):
    """The model of one MQTT server and the 3.1.1 and 5.0 clients connected to it.

    ``max_inflight``: while a session has this many unacknowledged QoS 1/2
    deliveries, further deliveries are allowed but not owed (brokers bound
    their in-flight window; 3.1.1 does not fix one). ``keep_alive_grace``:
    seconds past 1.5 x keep-alive after which the keep-alive close is owed.
    ``refusals``: CONNACK return codes the server may answer to any CONNECT
    (say ``{5}`` for a broker that requires authorisation). ``expiry_margin``:
    seconds past a 5.0 timer (Session Expiry, Will Delay) during which its effect
    may or may not have happened; after it, the effect is owed.
    """

    def __init__(
        self,
        *,
        max_inflight: int = 16,
        keep_alive_grace: float = 1.0,
        refusals: frozenset[int] = frozenset(),
        expiry_margin: float = 1.0,
    ) -> None:
        self.max_inflight = max_inflight
        self.keep_alive_grace = keep_alive_grace
        self.refusals = refusals
        self.expiry_margin = expiry_margin
        self.now = 0.0
        """The model clock: the sum of ``TimePasses`` (5.0 timers run on it)."""
        self.delayed_wills: list[Connection] = []
        """Closed level-5 connections whose will waits for its delay (``Will5``)."""
        self.wills5: list[Connection] = []
        """Every accepted level-5 connection with a will, to name why one is not due."""
        self.connections: dict[str, Connection] = {}
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, RetainedSlot] = {}
        self.topic_states: dict[str, str] = {}
        self.refs_hit: set[str] = set()
        self.delivered: list[tuple[str, int, Delivery, int]] = []
        """First sends observed: (client id, session generation, delivery, QoS)."""
        self.owed: list[tuple[str, int, Delivery]] = []
        """Required QoS 1/2 deliveries (for the eventual-delivery invariant)."""
        self._seq = 0
        self._released_at: dict[int, int] = {}
        self._retained_changed: dict[str, int] = {}
        """Topic -> seq of the last message that certainly set or cleared its retained one."""
        """Message seq -> the newest seq accepted when its publication became certain."""
        self._assigned = 0
        self.published: dict[tuple[str, bytes], int] = {}
        """(topic, payload) -> the highest QoS of a message with that content the server
        took ownership of: what identifies a PUBLISH no session is owed."""
        self.shared5 = SharedGroups5()
        """The Shared Subscription groups of level-5 sessions (``shared_routing``)."""
        self.shared_seq: dict[int, int] = {}
        self.messages: dict[int, Message] = {}
        self.message_seqs: dict[tuple[str, bytes], list[int]] = {}
        """(topic, payload) -> the messages with that content, oldest first."""
        self.expired: set[tuple[str, int]] = set()
        """(client id, message seq): copies deleted when their message expired."""
        self.origins: dict[tuple[str, bytes], set[str]] = {}
        """(topic, payload) -> who published a message with that content (for No Local)."""
        self.emptied_retained: set[str] = set()
        """Topics a zero-byte RETAIN=1 message was published to (possibly): a server
        that stored it sends it to a new subscription [MQTT-3.3.1-10] [MQTT-3.3.1-11]."""

    # ----------------------------------------------------------- chart engine

    def _fire_connection(
        self, conn: Connection, event: str, packet: Packet | None = None
    ) -> Transition:
        def holds(guard: str) -> bool:
            return {
                "close_allowed": bool(conn.may_close),
                "was_accepted": conn.accepted,
                "never_accepted": not conn.accepted,
            }[guard]

        row = CONNECTION.fire(conn.state, event, holds)
        conn.state = row.target
        self.refs_hit.update(row_refs(row, conn.level))  # 5.0's numbers at level 5
        if row.target == C.CLOSE_DUE and not conn.close_cause:
            conn.close_cause = event
        if row.target == C.CLOSE_DUE and row.source != C.CLOSE_DUE:
            # The close is certain: so is the will, which may arrive before it.
            self._will(conn, owed=True)
        if row.action:
            self._connection_actions[row.action](_Ctx(conn, None, packet))
        return row

    def _fire_session(self, session: Session, event: str, ctx: _Ctx) -> Transition:
        def holds(guard: str) -> bool:
            return {"clean": session.clean, "persistent": not session.clean}[guard]

        row = SESSION.fire(session.state, event, holds)
        session.state = row.target
        level = ctx.conn.level if ctx.conn is not None else 5 if session.v5 is not None else 4
        self.refs_hit.update(session_refs(row.refs, level))  # 5.0's numbers at level 5
        if row.action:
            self._session_actions[row.action](attrs.evolve(ctx, session=session))
        return row

    @property
    def _connection_actions(self) -> dict[str, Callable[[_Ctx], None]]:
        return {
            "start_session": self._start_session,
            "publish_will": self._connection_ended,
            "discard_will": self._discard_will,
        }

    @property
    def _session_actions(self) -> dict[str, Callable[[_Ctx], None]]:
        return {
            "new_session": self._new_session,
            "resume_session": self._attach,
            "discard_session": self._new_session,
            "take_over_discarding": self._take_over_discarding,
            "take_over_resuming": self._take_over_resuming,
            "publish_will": _nothing,  # the connection's publish_will publishes it
            "end_clean_session": self._end_clean_session,
            "answer_ping": self._answer_ping,
            "accept_publish": self._accept_publish,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "deliver": _nothing,  # the caller appends the delivery
            "queue": _nothing,
        }

    # ------------------------------------------------------------ client events

    def apply(self, event: ClientEvent) -> None:
        """A client did something; the model updates what the server owes."""
        if isinstance(event, TimePasses):
            self._time_passes(event.seconds)
            self._time_passes5(event.seconds)
        elif isinstance(event, Open):
            self._open(event.client)
        elif isinstance(event, Drop):
            self._fire_connection(self._conn(event.client), CE.NETWORK_LOST)
        elif isinstance(event, SendMalformed):
            self._violation_by_client(self._conn(event.client))
        elif isinstance(event, SendUnjudged):
            conn = self._conn(event.client)
            if conn.state == C.CONNECTED:
                self._heard_from(conn)
        else:
            self._send(event.client, event.packet)

    def _open(self, client: str) -> Connection:
        old = self.connections.get(client)
        if old is not None and old.open:
            raise UsageError(f"client {client} already has an open connection")
        conn = Connection(client)
        self.connections[client] = conn
        return conn

    def _conn(self, client: str) -> Connection:
        conn = self.connections.get(client)
        if conn is None:
            raise UsageError(f"client {client} never opened a connection")
        return conn

    def _violation_by_client(self, conn: Connection) -> None:
        if conn.state == C.CLOSED:
            raise UsageError(f"client {conn.client}: the connection is closed")
        self._fire_connection(conn, CE.VIOLATION)

    def _send(self, client: str, packet: Packet) -> None:
        conn = self.connections.get(client)
        if isinstance(packet, Connect) and (conn is None or not conn.open):
            conn = self._open(client)
        if conn is None or not conn.open:
            raise UsageError(f"client {client} sends {describe(packet)} without a connection")
        if conn.state == C.AWAITING_CONNACK:
            raise UsageError(f"client {client} sends {describe(packet)} before its CONNACK arrived")
        if conn.state == C.CLOSE_DUE:
            # The server must not process anything more [MQTT-3.1.4-5] [MQTT-4.8.0-1].
            event = CE.CONNECT if isinstance(packet, Connect) else CE.CONTROL_PACKET
            self._fire_connection(conn, event)
            return
        if isinstance(packet, Connect):
            self._receive_connect(conn, packet)
        elif conn.state == C.AWAITING_CONNECT:
            event = CE.DISCONNECT if isinstance(packet, Disconnect) else CE.CONTROL_PACKET
            self._fire_connection(conn, event)
        else:
            self._heard_from(conn)
            self._receive_packet(conn, packet)

    @staticmethod
    def _heard_from(conn: Connection) -> None:
        """A control packet from the client restarts its keep alive [MQTT-3.1.2-23]."""
        conn.idle = 0.0
        conn.may_close = [r for r in conn.may_close if r != "keep-alive"]

    def _receive_connect(self, conn: Connection, packet: Connect) -> None:
        if conn.state != C.AWAITING_CONNECT:
            self._fire_connection(conn, CE.CONNECT)  # a second CONNECT [MQTT-3.1.0-2]
            return
        if packet.will is not None and topic_name_problem(packet.will.topic):
            self._fire_connection(conn, CE.VIOLATION)  # [MQTT-3.1.2-9] [MQTT-3.1.4-1]
            return
        conn.connect = packet
        if packet.client_id:
            conn.session_key = packet.client_id
        else:
            self._assigned += 1
            conn.session_key = f"<assigned #{self._assigned}>"
        if int(packet.protocol_level) == MQTT_5:
            conn.connack_codes = self._connect5(conn, packet)
        else:
            conn.connack_codes = self._connack_codes(conn, packet) | self.refusals
        session = self.sessions.get(conn.session_key)
        if session is not None and session.client is not None and session.client != conn.client:
            # A takeover is coming if the server accepts [MQTT-3.1.4-2]: the old
            # connection may close, and its will may go out, before the CONNACK.
            old = self.connections[session.client]
            old.will_optional = True
            self._allow_close(old, "takeover")
        self._fire_connection(conn, CE.CONNECT)

    def _connack_codes(self, conn: Connection, packet: Connect) -> frozenset[int]:
        level = int(packet.protocol_level)
        if level == 5:
            self._allow_close(conn, "unsupported protocol level")
            return frozenset({0x01})  # [MQTT-3.1.2-2]
        codes = {0x00} if level == 4 else {0x00, 0x01}
        if packet.client_id == "":
            # [MQTT-3.1.3-8]: persistent needs an id; [MQTT-3.1.3-6] may assign one.
            return frozenset({0x02}) if not packet.clean_session else frozenset({0x00, 0x02})
        if not _CLIENT_ID_ALWAYS_ALLOWED.fullmatch(packet.client_id):
            codes.add(0x02)  # [MQTT-3.1.3-5]: other ids MAY be allowed
        return frozenset(codes)

    def _receive_packet(self, conn: Connection, packet: Packet) -> None:
        session = self._attached_session(conn)
        if isinstance(packet, Disconnect):
            if conn.level == MQTT_5 and not self._disconnect5_valid(conn, session, packet):
                return
            will = conn.will
            self._fire_connection(conn, CE.DISCONNECT)
            self._fire_session(session, SE.DISCONNECT, _Ctx(conn))
            self._detach(session)
            if conn.level == MQTT_5:
                self._disconnected5(conn, session, packet, will)
            return
        if (
            isinstance(packet, (ConnAck, SubAck, UnsubAck, PingResp))
            or int(packet.packet_type) == 15
        ):
            self._fire_connection(conn, CE.VIOLATION)  # a server-only packet [MQTT-4.8.0-1]
            return
        if isinstance(packet, Publish) and conn.level == MQTT_5:
            read = self._client_alias5(conn, packet)
            if read is None:
                self._fire_connection(conn, CE.VIOLATION)  # [MQTT-4.13.1-1]
                return
            packet = read
        problem = self._packet_problem(packet)
        if problem:
            self._fire_connection(conn, CE.VIOLATION)
            return
        self._fire_connection(conn, CE.CONTROL_PACKET)
        ctx = _Ctx(conn, session, packet)
        if isinstance(packet, PingReq):
            self._fire_session(session, SE.PING, ctx)
        elif isinstance(packet, Publish):
            self._fire_session(session, SE.PUBLISH, ctx)
        elif isinstance(packet, Subscribe):
            self._fire_session(session, SE.SUBSCRIBE, ctx)
        elif isinstance(packet, Unsubscribe):
            self._fire_session(session, SE.UNSUBSCRIBE, ctx)
        else:
            self._receive_ack(conn, session, packet)

    @staticmethod
    def _packet_problem(packet: Packet) -> str | None:
        if isinstance(packet, Publish):
            if topic_name_problem(packet.topic):
                return "topic name"  # [MQTT-3.3.2-2] [MQTT-4.7.3-1]
            if packet.qos > 0 and not packet.packet_id:
                return "packet id"  # [MQTT-2.3.1-1]
        if isinstance(packet, Subscribe) and (not packet.packet_id or not packet.subscriptions):
            return "subscribe"  # [MQTT-2.3.1-1] [MQTT-3.8.3-3]
        if isinstance(packet, Unsubscribe) and (not packet.packet_id or not packet.topic_filters):
            return "unsubscribe"  # [MQTT-2.3.1-1] [MQTT-3.10.3-2]
        return None

    def _receive_ack(self, conn: Connection, session: Session, packet: Packet) -> None:
        if conn.quota is not None:
            self._client_acknowledged(conn, packet)
        try:
            taken = session.flows.received(packet)
        except NoTransition:
            # An acknowledgement for a packet id the server is not waiting on: the
            # specification names no server action; closing is allowed.
            self._allow_close(conn, "acknowledgement for an unknown packet id")
            return
        if taken is None:
            return
        flow, row = taken
        self.refs_hit.update(flow_refs(flow.chart.name, row, conn.level))
        self._shared_acknowledged(session, flow, packet)
        if row.action == "release_onward" and isinstance(flow.message, Accepted):
            self._release(flow.message)
            flow.message = None  # released once, even if the PUBREL comes again

    def _time_passes(self, seconds: float) -> None:
        if seconds < 0:
            raise UsageError("time only moves forward")
        for conn in self.connections.values():
            if conn.state != C.CONNECTED or conn.keep_alive == 0:
                continue
            conn.idle += seconds
            if conn.idle > conn.keep_alive and "keep-alive" not in conn.may_close:
                self._allow_close(conn, "keep-alive")
            if conn.idle >= 1.5 * conn.keep_alive + self.keep_alive_grace:
                conn.close_cause = "keep-alive"
                self._fire_connection(conn, CE.KEEP_ALIVE_EXPIRED)

    # ---------------------------------------------------------- chart actions

    def _attached_session(self, conn: Connection) -> Session:
        if conn.session_key is None or conn.session_key not in self.sessions:
            raise UsageError(f"client {conn.client} has no session")
        return self.sessions[conn.session_key]

    def _start_session(self, ctx: _Ctx) -> None:
        conn = ctx.connection
        assert conn.connect is not None
        assert conn.session_key is not None
        session = self.sessions.setdefault(conn.session_key, Session(conn.session_key))
        if conn.level == MQTT_5:
            # 5.0 sessions outlive their connection as Session5 says: the 3.1.1
            # chart's persistent session, emptied where 5.0 starts a new one.
            self._fire_session(session, SE.CONNECT_PERSISTENT, ctx)
            self._started5(conn, session)
            return
        if self._ends_with_takeover(conn, session):
            # The taken-over level-5 connection's close ended the session first.
            self._member_gone(session, session_ended=True)
            session.discard()
        session.v5 = None  # a 3.1.1 connection: 3.1.1's session rules from now on
        session.discard_refs = ("MQTT-3.1.2-6",)
        event = SE.CONNECT_CLEAN if conn.connect.clean_session else SE.CONNECT_PERSISTENT
        self._fire_session(session, event, ctx)
        # A level-5 connection's will still delayed: a 3.1.1 connection resuming the
        # session cancels it [MQTT-3.1.3-9], a clean one ends the session and makes it due.
        self._wills_on_return(conn, resumed=not conn.connect.clean_session)

    def _attach(self, ctx: _Ctx) -> None:
        conn, session = ctx.connection, ctx.session
        assert session is not None
        assert conn.connect is not None
        session.client = conn.client
        session.clean = conn.connect.clean_session and conn.level != MQTT_5
        conn.accepted = True
        conn.will = conn.connect.will
        conn.keep_alive = conn.connect.keep_alive
        if conn.level == MQTT_5:
            self._attach5(conn)
        if conn.level == MQTT_5 and conn.will is not None:
            delay = conn.will.properties.will_delay_interval or 0
            conn.will5 = Will5(delay, self.expiry_margin, conn.client, now=self.now)
            self.wills5.append(conn)

    def _new_session(self, ctx: _Ctx) -> None:
        assert ctx.session is not None
        self._member_gone(ctx.session, session_ended=True)  # it leaves its groups too
        ctx.session.discard()  # [MQTT-3.1.2-6]: nothing of an earlier session is reused
        self._attach(ctx)

    def _take_over(self, session: Session) -> None:
        old = self.connections.get(session.client or "")
        session.client = None
        if old is not None and old.open:
            old.will_optional = True
            old.close_cause = "takeover"
            self._fire_connection(old, CE.TAKEN_OVER)

    def _take_over_discarding(self, ctx: _Ctx) -> None:
        assert ctx.session is not None
        self._take_over(ctx.session)
        self._new_session(ctx)

    def _take_over_resuming(self, ctx: _Ctx) -> None:
        assert ctx.session is not None
        self._take_over(ctx.session)
        ctx.session.flows.connection_lost()
        self._attach(ctx)

    def _discard_will(self, ctx: _Ctx) -> None:
        ctx.connection.will = None  # [MQTT-3.14.4-3] [MQTT-3.1.2-10]

    def _end_clean_session(self, ctx: _Ctx) -> None:
        assert ctx.session is not None
        self._member_gone(ctx.session, session_ended=True)
        ctx.session.discard()
        ctx.session.client = None

    def _detach(self, session: Session) -> None:
        """The session's connection is gone; a persistent session lives on."""
        if session.client is None:
            return
        self._member_gone(session, session_ended=session.clean)
        session.client = None
        session.flows.connection_lost()
        for delivery in session.pending:
            if min(delivery.allowed_qos) == 0:
                # QoS 0 for an offline client may be dropped [MQTT-3.1.2-5], also when
                # it is a will released later (its close came after this one).
                delivery.required = False
                delivery.required_on_release = False

    def _connection_ended(self, ctx: _Ctx) -> None:
        """The network connection closed without DISCONNECT: the last will."""
        conn = ctx.connection
        will, optional = conn.will, conn.will_optional
        session = self.sessions.get(conn.session_key or "")
        if session is not None and session.client == conn.client:
            cause = {
                "keep-alive": SE.TIMEOUT,
                str(CE.KEEP_ALIVE_EXPIRED): SE.TIMEOUT,
                str(CE.NETWORK_LOST): SE.NETWORK_LOSS,
            }.get(conn.close_cause or self._close_reason(conn), SE.PROTOCOL_ERROR)
            self._fire_session(session, cause, ctx)
            self._fire_session(session, SE.WILL_PUBLISHED, ctx)
            self._detach(session)
        if conn.level == MQTT_5:
            self._closed5(conn, session)
            if session is not None:
                self._sync_session5(session)
            if conn in self.delayed_wills:
                return  # the will waits for its delay (Will5)
        if will is not None:
            self._will(conn, owed=not optional)  # [MQTT-3.1.2-8]
        conn.will = None

    def _allow_close(self, conn: Connection, reason: str) -> None:
        """The server may close ``conn`` now; if it does, its will goes out, and
        the will may reach other clients before the close is observed."""
        conn.may_close.append(reason)
        self._will(conn, owed=False)

    def _will(self, conn: Connection, *, owed: bool) -> None:
        """Publish the will as an allowed outcome (once), and make it owed when
        the close is certain (unless a takeover caused it: then it stays allowed)."""
        if conn.will is None or not conn.accepted or not self._will_publishable(conn):
            return
        if conn.will_published is None:
            session = self.sessions.get(conn.session_key or "")
            will = conn.will
            conn.will_published = self._accept_message(
                f"will:{session.client_id if session else conn.client}",
                will.topic,
                will.payload,
                int(will.qos),
                will.retain,
                required=False,
                release_later=True,
                properties=forwarded(will.properties),
            )
        if owed and not conn.will_optional and not conn.will_owed:
            conn.will_owed = True
            self._release(conn.will_published)

    @staticmethod
    def _close_reason(conn: Connection) -> str:
        return conn.may_close[0] if conn.may_close else str(CE.NETWORK_LOST)

    def _answer_ping(self, ctx: _Ctx) -> None:
        ctx.connection.expected.append(Expected("PINGRESP", None, ("MQTT-3.12.4-1",)))

    def _accept_publish(self, ctx: _Ctx) -> None:
        packet, session = ctx.packet, ctx.session
        assert isinstance(packet, Publish)
        assert session is not None
        origin = session.client_id
        if packet.qos == 0:
            if packet.dup:
                # DUP must be 0 at QoS 0 [MQTT-3.3.1-2]; no server action is named.
                self._allow_close(ctx.connection, "DUP=1 on QoS 0")
            self._accept_message(
                origin,
                packet.topic,
                packet.payload,
                0,
                packet.retain,
                required=not packet.dup,
                properties=forwarded(packet.properties),
            )
            return
        taken = session.flows.received(packet)
        assert taken is not None
        flow, row = taken
        self.refs_hit.update(flow_refs(flow.chart.name, row, ctx.connection.level))
        if row.action != "take_ownership":
            return  # a duplicate of a QoS 2 message: never passed on twice [MQTT-4.3.3-2]
        first = row.source in (ReceiverState.IDLE,)
        accepted = self._accept_message(
            origin,
            packet.topic,
            packet.payload,
            int(packet.qos),
            packet.retain,
            required=first and packet.qos == 1,
            release_later=packet.qos == 2,
            properties=forwarded(packet.properties),
        )
        flow.message = accepted  # QoS 2: released by PUBREL; at 5.0 an error code retracts

    def _subscribe(self, ctx: _Ctx) -> None:
        packet, session, conn = ctx.packet, ctx.session, ctx.connection
        assert isinstance(packet, Subscribe)
        assert session is not None
        codes: list[frozenset[int]] = []
        situations: list[frozenset[object]] = []
        made: list[Subscription | None] = []
        or_close = False
        identifiers = packet.properties.subscription_identifiers
        if conn.level == MQTT_5 and any(
            r.no_local and is_shared(r.topic_filter) for r in packet.subscriptions
        ):
            conn.disconnect_cause = "protocol_error"  # [MQTT-3.8.3-4]
            self._fire_connection(conn, CE.VIOLATION)
            return
        for request in packet.subscriptions:  # one after the other [MQTT-3.8.4-4]
            topic_filter, qos = request.topic_filter, int(request.qos)
            if conn.level == MQTT_5:
                facts = suback_facts(request, identified=bool(identifiers))
                situations.append(frozenset(facts))
                codes.append(reason_codes.allowed_in(PacketKind.SUBACK, facts))
            if topic_filter_problem(topic_filter):
                if conn.level != MQTT_5:
                    codes.append(frozenset({0x80}))
                made.append(None)
                or_close = True
                self._allow_close(conn, "invalid topic filter")
                continue
            if conn.level != MQTT_5:
                codes.append(frozenset(range(qos + 1)) | {0x80})  # [MQTT-3.8.4-6] [MQTT-3.9.3-2]
            existed = topic_filter in session.subscriptions
            subscription = Subscription(
                topic_filter,
                qos,
                no_local=request.no_local,
                retain_as_published=request.retain_as_published,
                identifier=identifiers[0] if identifiers else None,
                retain_handling=request.retain_handling,
                replaced=existed,
            )
            made.append(subscription)
            if conn.level == MQTT_5 and is_shared(topic_filter):
                session.shared[topic_filter] = subscription  # no retained message (3.8.4)
                continue
            session.subscriptions[topic_filter] = subscription  # replaces [MQTT-3.8.4-3]
            session.unsubscribed.pop(topic_filter, None)
            session.discarded.pop(topic_filter, None)  # now a live subscription again
            if retained_wanted(request.retain_handling, existed=existed):
                self._send_retained(session, subscription)
        conn.expected.append(
            Expected(
                "SUBACK",
                packet.packet_id,
                SUBACK_OWED_5 if conn.level == MQTT_5
                else ("MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-5"),
                tuple(codes),
                tuple(s.topic_filter for s in packet.subscriptions),
                or_close,
                tuple(made),
                tuple(situations),
            )
        )

    def _unsubscribe(self, ctx: _Ctx) -> None:
        packet, session = ctx.packet, ctx.session
        assert isinstance(packet, Unsubscribe)
        assert session is not None
        facts = [
            reason_codes.unsuback_situations(
                existed=f in session.subscriptions or f in session.shared
            )
            for f in packet.topic_filters
        ]
        for topic_filter in packet.topic_filters:
            if session.shared.pop(topic_filter, None) is not None:
                self.shared5.unsubscribe(session.client_id, topic_filter)
                continue
            # Compared character by character [MQTT-3.10.4-1]; no new messages after
            # [MQTT-3.10.4-2]; queued ones may still come, started ones must [MQTT-3.10.4-3].
            removed = session.subscriptions.pop(topic_filter, None)
            if removed is None:
                continue
            session.unsubscribed[topic_filter] = removed
            for delivery in session.pending:
                if topic_filter in delivery.filters:
                    delivery.filters = tuple(f for f in delivery.filters if f != topic_filter)
                    if not delivery.filters:
                        delivery.required = delivery.required_on_release = False
        level5 = ctx.connection.level == MQTT_5
        ctx.connection.expected.append(
            Expected(
                "UNSUBACK",
                packet.packet_id,
                ("MQTT-3.10.4-4", "MQTT-3.10.4-5"),
                tuple(reason_codes.allowed_in(PacketKind.UNSUBACK, f) for f in facts)
                if level5
                else (),
                packet.topic_filters if level5 else (),
                situations=tuple(frozenset(f) for f in facts) if level5 else (),
            )
        )

    def _session_takes_message(self, session: Session) -> bool:
        row = self._fire_session(session, SE.MESSAGE, _Ctx())
        return row.action == "deliver"


def _nothing(ctx: _Ctx) -> None:
    """An action whose effect the caller performs (kept for the drawing's label)."""
    del ctx
