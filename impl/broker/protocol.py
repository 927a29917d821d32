"""The server's protocol core: one sans-IO object per network connection.

Theory of operation. A ``Connection`` is told what happened and when, and
says what to do; it has no socket, no event loop and no clock of its own, in
the manner of h11, h2 and aioquic:

- Input: ``receive(data, now)`` (bytes as they arrived), ``timer(now)`` (the
  deadline of ``get_timer`` has come), ``connection_lost(now)``, and from the
  edge ``writing_paused`` / ``writing_resumed(now)`` (back-pressure).
- Output: the bytes to write (``data_to_send``, announced through the edge's
  ``output_ready``), the next deadline (``get_timer``), and effects through
  the narrow ports of ``ports.py``: route this message, open or close this
  session, publish this will (``RouterPort``, ``SessionPort``), close the
  network connection (``Edge``). The store commit that must precede every
  acknowledgement is the edge's and the outbox's business, not the core's.

Every whole packet goes to ``handle_packet``, which looks up the handler of
(connection state, packet type) in ``HANDLERS``: a pair missing there is a
protocol error that closes the connection (CONNECT first [MQTT-3.1.0-1],
never twice [MQTT-3.1.0-2], nothing a client does not send [MQTT-4.8.0-1]);
while CONNECT's enhanced authentication runs, ``AUTHENTICATING`` takes its place
(AUTH or DISCONNECT only [MQTT-3.1.2-30]). Handlers pass the packet on to the
session or the router; they never wait. Every packet but PUBLISH is encoded by
``send``, within the client's Maximum Packet Size (``packet_size``).

The core is also its session's ``PacketSink`` (sessions of other clients
deliver into it) and inherits its own flow control from ``pressure.Valve``:
no client's slowness ever pauses this one.

MQTT 5.0 shares the table and the handlers; what differs is held in ``terms``
(``admission.Terms``, None below 5.0): the CONNACK states the broker's limits
and choices, inbound topic aliases are resolved here [MQTT-3.3.2-12], the
acknowledgement of a PUBLISH says whether anyone subscribed, and every close
the broker starts after CONNACK is a DISCONNECT with its reason code first
[MQTT-3.14.2-1] (0x8D keep alive, 0x8E taken over, 0x81/0x82/0x9x for the
client's errors, 0x8B shutting down).
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

from mqttref.impl.auth import ConnectionAuth, Continue, Step, Success
from mqttref.impl.broker.admission import (
    connect_reason,
    connect_return_code,
    connect_terms,
    generate_client_id,
)
from mqttref.impl.broker.closing import Closing
from mqttref.impl.broker.inbound_publish import InboundPublish
from mqttref.impl.broker.limits import strings_problem, topic_problem
from mqttref.impl.broker.packet_size import fit
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import (
    LimitExceeded,
    ProtocolError,
    ReasonCode,
)
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    ConnectReturnCode,
    Packet,
    PacketType,
    PingResp,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    Subscribe,
    Unsubscribe,
)
from mqttref.impl.flow import ConnectionState
from mqttref.impl.logtext import broker_log, clip

log = logging.getLogger("mqttref.broker")


_CONNACK_ACCEPTED: Final = {
    present: encode(ConnAck(present, ConnectReturnCode.ACCEPTED)) for present in (False, True)
}
"""CONNACK accepting a connection, by session present: the same four bytes every time."""


_C = ConnectionState
HANDLERS: Final[dict[tuple[ConnectionState, PacketType], str]] = {
    (_C.CONNECTING, PacketType.CONNECT): "on_connect",
    (_C.CONNECTED, PacketType.PUBLISH): "on_publish",
    (_C.CONNECTED, PacketType.PUBACK): "on_ack",
    (_C.CONNECTED, PacketType.PUBREC): "on_ack",
    (_C.CONNECTED, PacketType.PUBREL): "on_pubrel",
    (_C.CONNECTED, PacketType.PUBCOMP): "on_ack",
    (_C.CONNECTED, PacketType.SUBSCRIBE): "on_subscribe",
    (_C.CONNECTED, PacketType.UNSUBSCRIBE): "on_unsubscribe",
    (_C.CONNECTED, PacketType.PINGREQ): "on_pingreq",
    (_C.CONNECTED, PacketType.DISCONNECT): "on_disconnect",
    (_C.CONNECTING, PacketType.AUTH): "on_auth",
    (_C.CONNECTED, PacketType.AUTH): "on_auth",
}
"""(state, packet type) -> handler method. A missing pair closes the connection."""

AUTHENTICATING: Final[dict[PacketType, str]] = {
    PacketType.AUTH: "on_auth",
    PacketType.DISCONNECT: "on_disconnect_before_connack",
}
"""Packet type -> handler while CONNECT's enhanced authentication runs (CONNECTING with an
exchange under way): until CONNACK such a client sends nothing but AUTH or DISCONNECT
[MQTT-3.1.2-30]; anything else closes the connection."""


def unexpected(state: ConnectionState, packet_type: PacketType) -> ProtocolError:
    """The protocol error of a (state, packet type) pair ``HANDLERS`` does not have."""
    if state is ConnectionState.CONNECTING:
        return ProtocolError(f"{packet_type.name} before CONNECT", ref="MQTT-3.1.0-1")
    if packet_type is PacketType.CONNECT:
        return ProtocolError("a second CONNECT", ref="MQTT-3.1.0-2")
    return ProtocolError(f"{packet_type.name} is not a packet a client sends",
                         ref="MQTT-4.8.0-1")


class Connection(Closing, InboundPublish):
    """One client's network connection, from accept to close, without the network."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Connection {self.peer} {clip(self.client_id)} {self.state.value}>"

    # Input ----------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Decode one read and handle its packets in order; a bad one closes. A
        batch that met the broker's memory mark then pauses this publisher."""
        if self.state is ConnectionState.CLOSED:
            return
        self.last_activity = self._now = now
        memory = self.memory
        memory.tripped = False
        try:
            packets = self.decoder.feed(data)
        except ProtocolError as exc:
            self._handle_batch(list(getattr(exc, "packets", [])), now)
            if not self.is_closed:  # the packets before the bad one may have closed it
                self.protocol_violation(exc)
        else:
            self._handle_batch(packets, now)
        if memory.tripped:
            self.end_of_batch(now)

    def timer(self, now: float) -> None:
        """The deadline of ``get_timer`` may have come: keep alive, CONNECT timeout,
        or the end of a pause at the memory mark."""
        self._now = now
        self.wait_expired(now)
        if self.state is ConnectionState.CONNECTING:
            if now >= self.accepted_at + self.config.connect_timeout:
                self.keep_alive_expired(now, connect=True)
        elif (
            self.state is ConnectionState.CONNECTED
            and self.keep_alive_limit > 0
            and now >= self.last_activity + self.keep_alive_limit
        ):
            if self._self_paused:
                # We stopped reading it (it does not take our answers): its packets
                # wait in the network, so silence is ours, not its.
                self.last_activity = now
            else:
                self.keep_alive_expired(now, connect=False)

    def connection_lost(self, now: float) -> None:
        """The network connection is gone without DISCONNECT: the will goes out."""
        self._now = now
        self.close("the network connection was lost", publish_will=True, now=now, by_client=True)

    def writing_paused(self) -> None:
        """The edge's buffer passed ``write_buffer_limit``: the reader is slow, and
        what can wait waits in its session queue."""
        if self.state is ConnectionState.CONNECTED:
            self._writing_paused()

    def writing_resumed(self, now: float) -> None:
        """The reader caught up: it took what waited, so send it more."""
        if not self._congested:
            return
        self._now = now
        self._writing_resumed()
        session = self.session
        if session is not None and self.state is ConnectionState.CONNECTED:
            if session.behind_since is not None:
                session.behind_since = now  # it drains: not stalled
            session.pump(now)

    # Output ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """The bytes to write since the last call, in order.

        A session queue that stopped draining because a batch's worth of bytes
        waited here (``Valve.congested``) refills the next batch now: a long
        queue is encoded a bounded batch per write, not all in one go."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = None
        self._out_bytes = 0
        session = self.session
        if (
            session is not None
            and session.queued_bytes
            and self.state is ConnectionState.CONNECTED
            and not self._congested
        ):
            self._refill()
        return data

    def _refill(self) -> None:
        """Pump the session queue outside any read: a crash closes this connection only,
        as the supervisor would (the caller is the outbox, writing for every client)."""
        assert self.session is not None
        try:
            self.session.pump(self._now)
        except Exception:
            broker_log.error("connection crash", "%s crashed draining its queue; closed it",
                             self.who, exc_info=True)
            self.close("internal error", publish_will=True)

    def get_timer(self) -> float | None:
        """The next instant ``timer`` has work to do, or None."""
        if self.state is ConnectionState.CONNECTING:
            deadline: float | None = self.accepted_at + self.config.connect_timeout
        elif self.state is ConnectionState.CONNECTED and self.keep_alive_limit > 0:
            deadline = self.last_activity + self.keep_alive_limit
        else:
            deadline = None
        wait = self._wait_deadline
        if wait is not None and (deadline is None or wait < deadline):
            return wait
        return deadline

    def stalled(self, now: float) -> bool:
        """Whether its session has waited ``stall_timeout`` for it to take anything."""
        session = self.session
        return (self.state is ConnectionState.CONNECTED and session is not None
                and session.stalled(now))

    # Dispatch -------------------------------------------------------------------------

    def _handle_batch(self, packets: list[Packet], now: float) -> None:
        for packet in packets:
            if self.state is ConnectionState.CLOSED:
                return
            try:
                self.handle_packet(packet, now)
            except ProtocolError as exc:
                self.protocol_violation(exc)
                return
            if self._unsendable is not None:
                self._close_unsendable()
                return

    def handle_packet(self, packet: Packet, now: float) -> None:
        """Dispatch one packet by (state, type); a missing pair is a protocol error.
        CONNECTING under enhanced authentication has its own table, ``AUTHENTICATING``."""
        state = self.state
        if self._verbose:
            log.debug("%s -> %s", self.who, packet.packet_type.name)
        if state is ConnectionState.CONNECTING and self._auth is not None:
            name = AUTHENTICATING.get(packet.packet_type)
            if name is None:
                raise ProtocolError(f"{packet.packet_type.name} before CONNACK, during "
                                    "enhanced authentication", ref="MQTT-3.1.2-30")
        else:
            name = HANDLERS.get((state, packet.packet_type))
            if name is None:
                raise unexpected(state, packet.packet_type)
        getattr(self, name)(packet, now)

    # Handlers -------------------------------------------------------------------------

    def on_connect(self, packet: Connect, now: float) -> None:
        """Accept or refuse a CONNECT; on accept, attach the session after CONNACK.

        With ``reject_control_characters``, a string 1.5.3 discourages closes the
        connection first, without CONNACK (the MAY of 1.5.3)."""
        config = self.config
        if config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"CONNECT {problem}", ref="§1.5.3")
        connections = self.ports.connections
        if packet.protocol_level is ProtocolLevel.MQTT_5:
            self._on_connect_v5(packet, now)
            return
        code = connect_return_code(packet, config, open_connections=connections.connected + 1)
        if code is not ConnectReturnCode.ACCEPTED:
            log.debug("refusing CONNECT from %s (client id %s): %s",
                      self.peer, clip(packet.client_id), code.name)
            # A refused CONNECT has session present 0 [MQTT-3.2.2-4] and closes [MQTT-3.2.2-5].
            self.send(ConnAck(False, code))
            self.close(f"CONNECT refused with {code.name}", publish_will=False)
            return
        if packet.will is not None and (problem := topic_problem(packet.will.topic, config)):
            raise LimitExceeded(f"will topic with {problem}", ref="§4.7",
                                reason_code=ReasonCode.TOPIC_NAME_INVALID)
        connections.admit(self)
        self.protocol_level = packet.protocol_level
        self.client_id = client_id = packet.client_id or generate_client_id()
        self.will = packet.will
        self.state = ConnectionState.CONNECTED
        # Keep alive 0 keeps the shared 0.0, not a float of its own (24 bytes).
        self.keep_alive_limit = (
            packet.keep_alive * config.keep_alive_factor if packet.keep_alive else 0.0
        )
        self.accepted_at = now  # no longer needed as such: share last_activity's float
        session, present = self.ports.sessions.open_session(self, client_id, packet, now)
        self.session = session
        if self.protocol_level is ProtocolLevel.MQTT_3_1:
            present = False  # 3.1 has no session present flag
        self.send_frame(_CONNACK_ACCEPTED[present])  # the first packet [MQTT-3.2.0-1]
        if self._verbose:
            log.debug("%s connected (clean session %d, keep alive %d, session present %d)",
                      self.who, packet.clean_session, packet.keep_alive, present)
        session.attach(self, now)

    def _on_connect_v5(self, packet: Connect, now: float) -> None:
        """An MQTT 5.0 CONNECT: refused with its reason code in CONNACK, or accepted with
        the terms CONNACK states (3.2.2.3): limits, Assigned Client Identifier
        [MQTT-3.2.2-16], Server Keep Alive [MQTT-3.2.2-21], granted session expiry."""
        config = self.config
        connections = self.ports.connections
        self.protocol_level = ProtocolLevel.MQTT_5
        if self._auth is not None:
            raise ProtocolError("a second CONNECT", ref="MQTT-3.1.0-2")
        code = connect_reason(packet, config, open_connections=connections.connected + 1)
        if code is not ReasonCode.SUCCESS:
            self._refuse_v5(packet, code)
            return
        if packet.will is not None and (problem := topic_problem(packet.will.topic, config)):
            raise LimitExceeded(f"will topic with {problem}", ref="§4.7",
                                reason_code=ReasonCode.TOPIC_NAME_INVALID)
        props = packet.properties
        if props.authentication_data is not None and props.authentication_method is None:
            raise ProtocolError("Authentication Data without an Authentication Method",
                                ref="§3.1.2.11.10")
        if props.authentication_method is not None:
            auth = ConnectionAuth(self.ports.authenticators)
            self._auth = (auth, packet)
            step = auth.connect(props.authentication_method, packet.username,
                                props.authentication_data)
            assert step is not None
            self._auth_step(step, now)
            return
        self._accept_v5(packet, now)

    def _refuse_v5(self, packet: Connect, code: int, properties: Properties = NO_PROPERTIES
                   ) -> None:
        """CONNACK with ``code`` (session present 0 [MQTT-3.2.2-6]) and close; its Reason
        String goes if the CONNACK would exceed the client's Maximum Packet Size
        [MQTT-3.2.2-19], and a CONNACK that cannot fit at all is not sent."""
        log.debug("refusing CONNECT from %s (client id %s): 0x%02X",
                  self.peer, clip(packet.client_id), code)
        frame = fit(ConnAck(False, code, properties=properties),
                    packet.properties.maximum_packet_size)
        if frame is not None:
            self.send_frame(frame)
        self.close(f"CONNECT refused with 0x{code:02X}", publish_will=False)

    def on_auth(self, packet: Auth, now: float) -> None:
        """An AUTH packet (4.12): the next step of the exchange CONNECT began, or a
        re-authentication (0x19) once connected. Without a method in CONNECT it is a
        protocol error [MQTT-4.12.0-7] (``ConnectionAuth.auth`` raises it)."""
        if self._auth is None:
            raise ProtocolError("AUTH on a connection whose CONNECT named no method",
                                ref="MQTT-4.12.0-7")
        props = packet.properties
        step = self._auth[0].auth(packet.reason_code, props.authentication_method,
                                  props.authentication_data)
        self._auth_step(step, now)

    def _auth_step(self, step: Step, now: float) -> None:
        """Send what one step of the exchange says: AUTH 0x18 to go on; at the end
        CONNACK (accepted with the final data, or refused), or after a
        re-authentication AUTH 0x00, or DISCONNECT with the failure [MQTT-4.12.1-2]."""
        assert self._auth is not None
        auth, pending = self._auth
        method = auth.method
        if isinstance(step, Continue):
            self.send(Auth(ReasonCode.CONTINUE_AUTHENTICATION, Properties(
                authentication_method=method, authentication_data=step.data)))
        elif isinstance(step, Success):
            final = Properties(authentication_method=method, authentication_data=step.data)
            if pending is None:
                self.send(Auth(ReasonCode.SUCCESS, final))
            else:
                self._auth = (auth, None)
                self._accept_v5(pending, now, auth=final)
        elif pending is not None:
            reason = Properties(reason_string=step.reason or None)
            self._refuse_v5(pending, step.reason_code, reason)
        else:  # DISCONNECT has no 0x86 or 0x8C: a failed re-authentication is 0x87
            self.close(f"re-authentication failed: {step.reason}", publish_will=True,
                       reason_code=ReasonCode.NOT_AUTHORIZED)

    def _accept_v5(self, packet: Connect, now: float, *, auth: Properties | None = None
                   ) -> None:
        """Accept a 5.0 CONNECT (after its enhanced authentication, if any).

        A CONNACK that would exceed the client's Maximum Packet Size [MQTT-3.1.2-24]
        (its properties cannot be left out: each states a term of the connection) makes
        the CONNECT one the Server cannot accept: refused with 0x80, if that fits
        [MQTT-3.1.4-2], before any session is touched."""
        config = self.config
        assigned = None if packet.client_id else generate_client_id()
        terms = connect_terms(packet, config, assigned_id=assigned)
        if auth is not None:
            terms = attrs.evolve(terms, connack=attrs.evolve(
                terms.connack, authentication_method=auth.authentication_method,
                authentication_data=auth.authentication_data))
        if fit(ConnAck(False, ReasonCode.SUCCESS, properties=terms.connack),
               terms.maximum_packet_size) is None:
            broker_log.warning("packet too large", "refusing %s: its CONNACK exceeds the "
                               "client's Maximum Packet Size of %d", self.peer,
                               terms.maximum_packet_size)
            self._refuse_v5(packet, ReasonCode.UNSPECIFIED_ERROR)
            return
        self.ports.connections.admit(self)
        self.protocol_level = ProtocolLevel.MQTT_5
        self.client_id = client_id = packet.client_id or assigned or ""
        self.terms = terms
        self.will = packet.will
        self.state = ConnectionState.CONNECTED
        self.keep_alive_limit = (
            terms.keep_alive * config.keep_alive_factor if terms.keep_alive else 0.0
        )
        self.accepted_at = now
        session, present = self.ports.sessions.open_session(self, client_id, packet, now)
        self.session = session
        self.send(ConnAck(present, ReasonCode.SUCCESS, properties=terms.connack))
        if self._verbose:
            log.debug("%s connected at 5.0 (clean start %d, keep alive %d, session present %d)",
                      self.who, packet.clean_session, terms.keep_alive, present)
        session.attach(self, now)

    def on_ack(self, packet: PubAck | PubRec | PubComp, now: float) -> None:
        """PUBACK, PUBREC or PUBCOMP: the session's outbound flow moves on (4.3)."""
        assert self.session is not None
        self.session.on_ack(packet.packet_type, packet.packet_id, now, packet.reason_code)

    def on_pubrel(self, packet: PubRel, now: float) -> None:
        assert self.session is not None
        self.session.on_pubrel(packet.packet_id, now)

    def on_subscribe(self, packet: Subscribe, now: float) -> None:
        """Subscribe through the router, which refuses filters beyond the limits with
        0x80; with ``reject_control_characters`` a discouraged code point closes (1.5.3)."""
        if self.config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"SUBSCRIBE {problem}", ref="§1.5.3")
        if (self.terms is not None and packet.properties.subscription_identifiers
                and not self.config.subscription_identifiers):
            # CONNACK said Subscription Identifier Available 0 (3.2.2.3.12); otherwise
            # the router keeps the identifier with each of the packet's subscriptions.
            raise ProtocolError("a Subscription Identifier, which this broker does not support",
                                ref="§3.8.2.1.2",
                                reason_code=ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
        assert self.session is not None
        self.ports.router.on_subscribe(self.session, packet, now)

    def on_unsubscribe(self, packet: Unsubscribe, now: float) -> None:
        if self.config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"UNSUBSCRIBE {problem}", ref="§1.5.3")
        assert self.session is not None
        self.ports.router.on_unsubscribe(self.session, packet, now)

    def on_pingreq(self, packet: Packet, now: float) -> None:
        self.send(PingResp())  # [MQTT-3.12.4-1]
