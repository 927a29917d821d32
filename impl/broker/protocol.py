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
and choices, inbound topic aliases are resolved [MQTT-3.3.2-12], the
acknowledgement of a PUBLISH says whether anyone subscribed, and every close
the broker starts after CONNACK is a DISCONNECT with its reason code first
[MQTT-3.14.2-1] (0x8D keep alive, 0x8E taken over, 0x81/0x82/0x9x for the
client's errors, 0x8B shutting down).

``Connection`` is put together from parts, one per seam of the protocol, each
a module of its own; this one keeps the tables, the dispatch, the input and
output above and the handlers too small to move (acknowledgements,
SUBSCRIBE, UNSUBSCRIBE, PINGREQ):

- ``connection_base.ConnectionBase``: the state all parts share, and ``send``;
- ``closing.Closing``: ``close`` once, the will, keep alive, protocol
  violations, the client's DISCONNECT;
- ``handshake.Handshake``: CONNECT and CONNACK, and 5.0's AUTH exchange;
- ``inbound_publish.InboundPublish``: the client's PUBLISH, with 5.0's topic
  aliases, payload format and acknowledgements.

The parts add methods only; every method stays a method of ``Connection``,
where the tests (and ``HANDLERS``, by name) find it.
"""

from __future__ import annotations

import logging
from typing import Final

from mqttref.impl.broker.admission import generate_client_id
from mqttref.impl.broker.handshake import Handshake
from mqttref.impl.broker.inbound_publish import InboundPublish
from mqttref.impl.broker.limits import strings_problem
from mqttref.impl.codec.errors import LimitExceeded, ProtocolError, ReasonCode
from mqttref.impl.codec.packets import (
    Packet,
    PacketType,
    PingResp,
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


class Connection(Handshake, InboundPublish):
    """One client's network connection, from accept to close, without the network."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Connection {self.peer} {clip(self.client_id)} {self.state.value}>"

    def assign_client_id(self) -> str:
        """A unique Client Identifier for a CONNECT with none [MQTT-3.1.3-6], made by
        ``admission.generate_client_id`` as this module names it: the stateful tests
        replace ``protocol.generate_client_id`` to model a broker that assigns one
        identifier to every such client (tests/stateful/patch_faults.py)."""
        return generate_client_id()

    # Input ----------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> int:
        """Decode one read and handle its packets in order; a bad one closes. A
        batch that met the broker's memory mark then pauses this publisher. Returns
        how many well-formed packets the read held (``$SYS``'s messages/received)."""
        if self.state is ConnectionState.CLOSED:
            return 0
        self.last_activity = self._now = now
        memory = self.memory
        memory.tripped = False
        try:
            packets = self.decoder.feed(data)
        except ProtocolError as exc:
            packets = list(getattr(exc, "packets", []))
            self._handle_batch(packets, now)
            if not self.is_closed:  # the packets before the bad one may have closed it
                self.protocol_violation(exc)
        else:
            self._handle_batch(packets, now)
        if memory.tripped:
            self.end_of_batch(now)
        return len(packets)

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
    # Those of CONNECT and AUTH are the handshake's, PUBLISH's inbound_publish's,
    # DISCONNECT's closing's: HANDLERS names them all.

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
