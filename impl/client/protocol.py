"""The sans-IO client core: MQTT 3.1, 3.1.1 and 5.0 client behaviour without sockets or clocks.

Theory of operation
-------------------
``ClientProtocol`` holds one client *session* across any number of network
connections. The shell tells it what happened (``connection_made``,
``receive_data``, ``connection_lost``, ``handle_timer``) and what the
application wants (``publish``, ``subscribe``, ``unsubscribe``,
``acknowledge``, ``disconnect``); every call takes ``now``, a number of
seconds on any monotonic clock. In return the core queues bytes to write
(``data_to_send``), events to report (``events``) and the next instant it
wants to be woken (``get_timer``). Nothing here reads a clock, sleeps or
touches a socket, so tests pump packets in and out and move time by hand.

Two tables drive it, in the manner of h11:

* ``RECEIVE_TABLE`` maps (connection state, received packet type) to the
  handler of that packet. A pair missing from the table is a protocol error
  and closes the connection: a PUBLISH before CONNACK [MQTT-3.2.0-1], a second
  CONNACK, a server-only packet.
* ``OUTBOUND_TABLE`` (``impl/flow.py``, shared with the broker) maps (state of one
  outgoing QoS 1/2 message, received
  acknowledgement) to the message's next state, ``None`` when its flow is
  complete. PUBACK for a QoS 2 message or PUBCOMP before PUBREC is a protocol
  error.

Session rules: with clean session 0, unacknowledged PUBLISH packets are sent
again with DUP=1 and PUBREL packets again, with their original packet ids,
after every reconnection [MQTT-4.4.0-1] [MQTT-3.3.1-1]. With clean session 1
the state of the previous connection is gone [MQTT-3.1.2-6]: messages that
were in flight fail with ``SessionDiscarded``; queued ones are sent. QoS 2
deliveries are recorded once acknowledged (PUBREC sent) until PUBREL, so a
re-sent PUBLISH with the same packet id is not delivered twice [MQTT-4.3.3-2].

MQTT 5.0 (``protocol_level`` 5) adds, on the same tables: properties on
CONNECT, PUBLISH, SUBSCRIBE and DISCONNECT; reason codes on every
acknowledgement, reported as values (a code of 0x80 or more fails the
operation with an error that carries it and the Reason String); the server's
limits from CONNACK (``mqtt5.ServerLimits``: Receive Maximum narrows the
window, Maximum QoS, Retain Available and Maximum Packet Size fail a publish
locally, Server Keep Alive replaces ours, an Assigned Client Identifier is
kept); topic aliases both ways; a server's DISCONNECT, whose reason reaches the
application; and AUTH exchanges handed to a pluggable ``Authenticator``. A
protocol error at 5.0 sends DISCONNECT with its reason code before closing
[MQTT-4.13.1-1].
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence

import attrs

from mqttref.impl.client import validation
from mqttref.impl.client.errors import (
    AuthenticationFailed,
    InvalidArgument,
    MQTTTimeout,
    NotSupportedByServer,
    PayloadTooLarge,
    ProtocolViolation,
    PublishRefused,
    ServerDisconnected,
    SessionDiscarded,
)
from mqttref.impl.client.events import (
    CloseConnection,
    Connected,
    ConnectRefused,
    Event,
    Message,
    MessageReceived,
    PublishCompleted,
    PublishFailed,
    Resubscribed,
    SubscribeCompleted,
    UnsubscribeCompleted,
)
from mqttref.impl.client.mqtt5 import OutboundAliases, ServerLimits
from mqttref.impl.client.options import ClientOptions
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ClientError, ProtocolError, ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    SUBACK_FAILURE,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttref.impl.flow import (
    FIRST_OUTBOUND_STATE,
    OUTBOUND_TABLE,
    ConnectionState,
    OutboundState,
)

RECEIVE_TABLE: dict[tuple[ConnectionState, PacketType], str] = {
    (ConnectionState.CONNECTING, PacketType.CONNACK): "_on_connack",
    (ConnectionState.CONNECTED, PacketType.PUBLISH): "_on_publish",
    (ConnectionState.CONNECTED, PacketType.PUBACK): "_on_outbound_ack",
    (ConnectionState.CONNECTED, PacketType.PUBREC): "_on_outbound_ack",
    (ConnectionState.CONNECTED, PacketType.PUBCOMP): "_on_outbound_ack",
    (ConnectionState.CONNECTED, PacketType.PUBREL): "_on_pubrel",
    (ConnectionState.CONNECTED, PacketType.SUBACK): "_on_suback",
    (ConnectionState.CONNECTED, PacketType.UNSUBACK): "_on_unsuback",
    (ConnectionState.CONNECTED, PacketType.PINGRESP): "_on_pingresp",
}
"""Which packet the client accepts in which connection state; anything else closes."""

RECEIVE_TABLE_5: dict[tuple[ConnectionState, PacketType], str] = {
    **RECEIVE_TABLE,
    # AUTH before CONNACK (the exchange) and after it (re-authentication) (4.12).
    (ConnectionState.CONNECTING, PacketType.AUTH): "_on_auth",
    (ConnectionState.CONNECTED, PacketType.AUTH): "_on_auth",
    # Never before CONNACK [MQTT-3.14.0-1].
    (ConnectionState.CONNECTED, PacketType.DISCONNECT): "_on_disconnect",
}
"""``RECEIVE_TABLE`` at MQTT 5.0, whose server may also send AUTH and DISCONNECT."""


@attrs.define
class ApplicationPublish:
    """One PUBLISH of the application, from ``publish`` until its flow completes: the
    application's request with its handle, walking the outbound flow of
    ``impl/flow.py`` that the broker's copies to subscribers walk too."""

    handle: int
    publish: Publish
    state: OutboundState | None = None
    """``None`` while queued: waiting for a connection or a slot in the window."""
    reason_code: int = 0
    """The 5.0 PUBREC's reason code (0x10: no matching subscribers), reported at PUBCOMP."""


class ClientProtocol:
    """One MQTT client session, driven by the shell; see the module docstring."""

    def __init__(
        self, options: ClientOptions, *, trace: Callable[[str, Packet], None] | None = None
    ) -> None:
        """``trace(direction, packet)`` sees every packet "sent" or "received", in order."""
        self.options = options
        self._trace = trace
        self.state = ConnectionState.CLOSED
        self.session_present = False
        self._now = 0.0
        self._outbox: list[Packet] = []
        self._events: list[Event] = []
        self._decoder = self._new_decoder()
        self._handles = itertools.count(1)
        self._next_packet_id = 1
        self._inflight: dict[int, ApplicationPublish] = {}
        """Packet id -> sent message awaiting its acknowledgement, in sending order."""
        self._queued: deque[ApplicationPublish] = deque()
        self._resends: deque[int] = deque()
        """Packet ids of a resumed session whose PUBLISH this connection still owes a
        re-send [MQTT-4.4.0-1], waiting for the server's Receive Maximum to allow it."""
        self._published_here: set[int] = set()
        """Packet ids PUBLISHed on this connection and not yet completed: what the server
        counts against its Receive Maximum, which starts again with each connection (4.9)."""
        self._requests: dict[int, Subscribe | Unsubscribe] = {}
        self._resubscribe_ids: set[int] = set()
        self._subscriptions: dict[str, tuple[Subscription, int | None]] = {}
        """Filters the broker granted (with their options and subscription
        identifier), for resubscribing when a session is lost."""
        self._inbound_qos2: set[int] = set()
        """QoS 2 packet ids we sent PUBREC for and await PUBREL on (method B, 4.3.3)."""
        self._unacknowledged: dict[int, QoS] = {}
        """QoS 1/2 deliveries of this connection handed out, not yet acknowledged."""
        self._connect_deadline: float | None = None
        self._last_sent = 0.0
        self._ping_sent_at: float | None = None
        self._reading_paused = False
        self._mqtt5 = options.protocol_level is ProtocolLevel.MQTT_5
        self._receive_table = RECEIVE_TABLE_5 if self._mqtt5 else RECEIVE_TABLE
        self._keep_alive = options.keep_alive
        """Ours, or the Server Keep Alive of CONNACK, which replaces it [MQTT-3.2.2-22]."""
        self.limits = ServerLimits()
        """The server's limits from the last CONNACK (none below 5.0)."""
        self.connack_properties: Properties = NO_PROPERTIES
        self.assigned_client_id: str | None = None
        """The Assigned Client Identifier of a 5.0 CONNACK, used from then on (3.2.2.3.7)."""
        self._aliases_out = OutboundAliases()
        self._aliases_in: dict[int, str] = {}

    # -- what the shell reads -------------------------------------------------

    def events(self) -> list[Event]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def packets_to_send(self) -> list[Packet]:
        """The packets to write since the last call, in order."""
        packets, self._outbox = self._outbox, []
        if self._trace is not None:
            for packet in packets:
                self._trace("sent", packet)
        return packets

    def data_to_send(self) -> bytes:
        """``packets_to_send`` encoded for the wire."""
        level = self.options.protocol_level
        return b"".join(encode(packet, level) for packet in self.packets_to_send())

    def get_timer(self) -> float | None:
        """The next instant ``handle_timer`` has work to do, or ``None``."""
        if self.state is ConnectionState.CONNECTING:
            return self._connect_deadline
        if self.state is not ConnectionState.CONNECTED or self._keep_alive == 0:
            return None
        if self._ping_sent_at is None:
            return self._last_sent + self._keep_alive
        if self._reading_paused:
            return None
        return self._ping_sent_at + self.options.ping_timeout

    @property
    def inflight_count(self) -> int:
        return len(self._inflight)

    @property
    def queued_count(self) -> int:
        return len(self._queued)

    @property
    def subscriptions(self) -> dict[str, QoS]:
        return {name: sub.qos for name, (sub, _) in self._subscriptions.items()}

    @property
    def keep_alive(self) -> int:
        """The keep alive in force: ours, or the server's at 5.0 [MQTT-3.2.2-22]."""
        return self._keep_alive

    @property
    def send_window(self) -> int:
        """QoS 1/2 PUBLISHes that may await acknowledgement at once: our ``max_inflight``,
        never above the server's Receive Maximum [MQTT-3.3.4-7]."""
        return min(self.options.max_inflight, self.limits.receive_maximum)

    # -- the network connection ----------------------------------------------

    def connection_made(self, now: float) -> None:
        """A network connection is open: send CONNECT [MQTT-3.1.0-1]."""
        self._now = now
        if self.state is not ConnectionState.CLOSED:
            raise ClientError(f"connection_made while {self.state.value}")
        self._decoder = self._new_decoder()
        if self.options.clean_session:
            self._discard_session()
        options = self.options
        self._keep_alive = options.keep_alive
        self.limits = ServerLimits()
        self._aliases_out = OutboundAliases()
        self._aliases_in = {}
        self._resends.clear()
        self._published_here.clear()
        self._send(
            Connect(
                protocol_level=options.protocol_level,
                client_id=self.assigned_client_id or options.client_id,
                clean_session=options.clean_session,  # Clean Start at 5.0 (3.1.2.4)
                keep_alive=options.keep_alive,
                will=options.will,
                username=options.username,
                password=options.password,
                properties=options.connect_properties(),
            )
        )
        self.state = ConnectionState.CONNECTING
        self._connect_deadline = now + options.connect_timeout

    def connection_lost(self, now: float) -> None:
        """The network connection is gone; the session stays for the next one."""
        self._now = now
        self.state = ConnectionState.CLOSED
        self._outbox.clear()
        self._unacknowledged.clear()
        self._resends.clear()
        self._published_here.clear()
        self._ping_sent_at = None
        self._connect_deadline = None
        self._reading_paused = False

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the broker; a decoding error closes after the whole packets before it."""
        self._now = now
        if self.state in (ConnectionState.CLOSED, ConnectionState.CLOSING):
            return
        try:
            packets = self._decoder.feed(data)
        except ProtocolError as exc:
            for packet in exc.packets:
                self.receive_packet(packet, now)  # type: ignore[arg-type]
            if self.state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED):
                self._violation(exc)
            return
        for packet in packets:
            self.receive_packet(packet, now)

    def receive_packet(self, packet: Packet, now: float) -> None:
        """One decoded packet from the broker, dispatched through ``RECEIVE_TABLE``."""
        self._now = now
        if self.state in (ConnectionState.CLOSED, ConnectionState.CLOSING):
            return
        if self._trace is not None:
            self._trace("received", packet)
        handler_name = self._receive_table.get((self.state, packet.packet_type))
        if handler_name is None:
            ref = "MQTT-3.2.0-1" if self.state is ConnectionState.CONNECTING else "MQTT-4.8.0-1"
            self._protocol_error(
                f"unexpected {packet.packet_type.name} while {self.state.value}", ref
            )
            return
        handler: Callable[[Packet], None] = getattr(self, handler_name)
        handler(packet)

    def handle_timer(self, now: float) -> None:
        """Time passed: CONNACK timeout, keep-alive PINGREQ, PINGRESP timeout."""
        self._now = now
        if self.state is ConnectionState.CONNECTING:
            if self._connect_deadline is not None and now >= self._connect_deadline:
                self._close(
                    MQTTTimeout(f"no CONNACK within {self.options.connect_timeout:g} seconds")
                )
            return
        if self.state is not ConnectionState.CONNECTED or self._keep_alive == 0:
            return
        if self._ping_sent_at is not None:
            expired = now >= self._ping_sent_at + self.options.ping_timeout
            if expired and not self._reading_paused:
                self._close(
                    MQTTTimeout(f"no PINGRESP within {self.options.ping_timeout:g} seconds")
                )
        elif now >= self._last_sent + self._keep_alive:
            # Never let Keep Alive pass without sending a packet [MQTT-3.1.2-23].
            self._send(PingReq())
            self._ping_sent_at = now

    def set_reading_paused(self, paused: bool, now: float) -> None:
        """The shell stopped (or resumed) reading because the application is behind.

        A PINGRESP cannot be read while paused, so its timeout restarts on resume.
        """
        self._now = now
        self._reading_paused = paused
        if not paused and self._ping_sent_at is not None:
            self._ping_sent_at = now

    # -- what the application asks -------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        now: float,
        *,
        properties: Properties = NO_PROPERTIES,
    ) -> int:
        """Queue or send a PUBLISH; returns the handle its completion event will name.

        Raises ``InvalidArgument`` for what cannot be sent at all, and, once a 5.0
        CONNACK told the server's limits, ``NotSupportedByServer`` or
        ``PayloadTooLarge`` for a message beyond them.
        """
        self._now = now
        level = validation.check_qos(qos)
        validation.check_topic_name(topic)
        validation.check_payload(topic, payload, level, self.options.max_packet_size)
        validation.check_publish_properties(
            properties, self.options.protocol_level, PacketType.PUBLISH
        )
        validation.check_utf8_payload(payload, properties)
        publish = Publish(
            topic=topic, payload=bytes(payload), qos=level, retain=retain, properties=properties
        )
        if self.state is ConnectionState.CONNECTED:
            error = self._beyond_limits(publish)
            if error is not None:
                raise error
        message = ApplicationPublish(handle=next(self._handles), publish=publish)
        self._queued.append(message)
        self._send_queued()
        return message.handle

    def subscribe(
        self,
        subscriptions: Sequence[tuple[str, int] | Subscription],
        now: float,
        *,
        subscription_identifier: int | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Send (or hold until connected) a SUBSCRIBE; returns its packet id.

        A ``Subscription`` carries the 5.0 options (no local, retain as published,
        retain handling); ``subscription_identifier`` comes back on every message
        the subscription matches (3.8.2.1.2).
        """
        self._now = now
        if not subscriptions:
            raise InvalidArgument("SUBSCRIBE needs at least one filter [MQTT-3.8.3-3]")
        level = self.options.protocol_level
        checked = []
        for item in subscriptions:
            sub = item if isinstance(item, Subscription) else Subscription(item[0], QoS(0))
            qos = validation.check_qos(item.qos if isinstance(item, Subscription) else item[1])
            validation.check_topic_filter(sub.topic_filter)
            validation.check_subscription_options(
                sub.topic_filter,
                level,
                no_local=sub.no_local,
                retain_as_published=sub.retain_as_published,
                retain_handling=sub.retain_handling,
            )
            checked.append(attrs.evolve(sub, qos=qos))
        validation.check_subscription_identifier(subscription_identifier)
        properties = Properties(
            subscription_identifiers=()
            if subscription_identifier is None
            else (subscription_identifier,),
            user_properties=tuple(user_properties),
        )
        validation.check_properties(properties, PacketType.SUBSCRIBE, level)
        return self._request(lambda pid: Subscribe(pid, tuple(checked), properties))

    def unsubscribe(
        self,
        topic_filters: Sequence[str],
        now: float,
        *,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Send (or hold until connected) an UNSUBSCRIBE; returns its packet id."""
        self._now = now
        if not topic_filters:
            raise InvalidArgument("UNSUBSCRIBE needs at least one filter [MQTT-3.10.3-2]")
        for topic_filter in topic_filters:
            validation.check_topic_filter(topic_filter)
        properties = Properties(user_properties=tuple(user_properties))
        validation.check_properties(properties, PacketType.UNSUBSCRIBE, self.options.protocol_level)
        return self._request(lambda pid: Unsubscribe(pid, tuple(topic_filters), properties))

    def acknowledge(self, message: Message, now: float) -> None:
        """The application has taken ``message``: now PUBACK or PUBREC it.

        Acknowledging only once the message is queued for the application
        means a crash before that point leaves the broker to deliver it again.
        """
        self._now = now
        packet_id = message.packet_id
        if packet_id is None or self._unacknowledged.pop(packet_id, None) is None:
            return
        if self.state is not ConnectionState.CONNECTED:
            return
        if message.qos is QoS.AT_LEAST_ONCE:
            self._send(PubAck(packet_id))  # [MQTT-4.3.2-2]
        else:
            self._inbound_qos2.add(packet_id)
            self._send(PubRec(packet_id))  # [MQTT-4.3.3-2]

    def disconnect(
        self,
        now: float,
        reason_code: int = ReasonCode.SUCCESS,
        *,
        session_expiry_interval: int | None = None,
        reason_string: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send DISCONNECT; the shell then closes the connection [MQTT-3.14.4-1].

        At 5.0 with a reason code: 0x00 discards the will [MQTT-3.14.4-3], 0x04
        asks the server to publish it (3.14.2.1); a Session Expiry Interval here
        replaces the one of CONNECT, but not a zero one (3.14.2.2.2: a Protocol
        Error; the rule has no statement id).
        """
        self._now = now
        properties = Properties(
            session_expiry_interval=session_expiry_interval,
            reason_string=reason_string,
            user_properties=tuple(user_properties),
        )
        if not self._mqtt5:
            if reason_code != 0 or not properties.is_empty():
                raise InvalidArgument("DISCONNECT reason codes and properties need MQTT 5.0")
        else:
            if reason_code not in _CLIENT_DISCONNECT_REASONS:
                raise InvalidArgument(f"a client cannot disconnect with reason 0x{reason_code:02X}")
            if session_expiry_interval and not self.options.session_expiry_interval:
                raise InvalidArgument(
                    "a session that expires on close (session expiry 0 in CONNECT) "
                    "cannot be given a session expiry on DISCONNECT (3.14.2.2.2)"
                )
            validation.check_properties(properties, PacketType.DISCONNECT, ProtocolLevel.MQTT_5)
        if self.state is ConnectionState.CONNECTED:
            self._send(Disconnect(reason_code, properties))
        self.state = ConnectionState.CLOSING

    def reauthenticate(self, now: float) -> None:
        """Start a 5.0 re-authentication: AUTH 0x19 with the authenticator's first data (4.12.1)."""
        self._now = now
        authenticator = self.options.authenticator
        if authenticator is None or not self._mqtt5:
            raise InvalidArgument("re-authentication needs MQTT 5.0 and an authenticator")
        if self.state is ConnectionState.CONNECTED:
            self._send(self._auth_packet(ReasonCode.REAUTHENTICATE, authenticator.initial_data()))

    # -- handlers, one per received packet type ------------------------------

    def _on_connack(self, packet: Packet) -> None:
        assert isinstance(packet, ConnAck)
        self._connect_deadline = None
        refused = packet.return_code >= 0x80 if self._mqtt5 else packet.return_code != 0
        if refused:
            # A refusing CONNACK has session present 0 and the server closes
            # [MQTT-3.2.2-4] [MQTT-3.2.2-6] (5.0: [MQTT-3.2.2-7]).
            self._events.append(
                ConnectRefused(packet.return_code, packet.properties, mqtt5=self._mqtt5)
            )
            self.state = ConnectionState.CLOSING
            return
        if packet.return_code != 0:
            self._protocol_error(
                f"CONNACK reason code 0x{packet.return_code:02X} is no success", "3.2.2.2"
            )
            return
        if packet.session_present and self.options.clean_session:
            self._protocol_error("session present with clean session 1", "MQTT-3.2.2-1")
            return
        if self._mqtt5 and not self._connack_5(packet.properties):
            return
        self.state = ConnectionState.CONNECTED
        self.session_present = packet.session_present
        if not packet.session_present:
            self._inbound_qos2.clear()
        self._events.append(Connected(packet.session_present, 0, packet.properties))
        if not packet.session_present and self.options.resubscribe and self._subscriptions:
            self._resubscribe()
        for request in self._requests.values():
            self._send(request)
        self._resend_inflight()
        self._send_queued()

    def _on_publish(self, packet: Packet) -> None:
        assert isinstance(packet, Publish)
        topic = packet.topic
        if self._mqtt5:
            resolved = self._inbound_topic(packet)
            if resolved is None:
                return
            topic = resolved
        packet_id = packet.packet_id
        if packet.qos is QoS.EXACTLY_ONCE and packet_id in self._inbound_qos2:
            # Already delivered and PUBREC'd: answer again, deliver nothing [MQTT-4.3.3-2].
            self._send(PubRec(packet_id))
            return
        if packet_id is not None:
            if packet_id in self._unacknowledged:
                return  # re-sent while the first copy is still with the application
            maximum = self.options.receive_maximum
            if maximum is not None and self._receiving >= maximum:
                self._protocol_error(
                    f"more than our Receive Maximum of {maximum} QoS 1/2 PUBLISHes unacknowledged",
                    "MQTT-3.3.4-9",
                    ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
                )
                return
            self._unacknowledged[packet_id] = packet.qos
        message = Message(
            topic=topic,
            payload=packet.payload,
            qos=packet.qos,
            retain=packet.retain,
            dup=packet.dup,
            packet_id=packet_id,
            properties=packet.properties,
        )
        self._events.append(MessageReceived(message))

    def _on_outbound_ack(self, packet: Packet) -> None:
        assert isinstance(packet, PubAck | PubRec | PubComp)
        packet_id = packet.packet_id
        message = self._inflight.get(packet_id)
        if message is None:
            if isinstance(packet, PubRec):
                # The broker holds a QoS 2 flow we forgot: release it so it can finish.
                self._send(PubRel(packet_id))
            return  # a late PUBACK/PUBCOMP of a flow already complete: nothing to do
        assert message.state is not None
        key = (message.state, packet.packet_type)
        if key not in OUTBOUND_TABLE:
            ref = "MQTT-4.3.2-1" if message.publish.qos == 1 else "MQTT-4.3.3-1"
            self._protocol_error(
                f"{packet.packet_type.name} for packet id {packet_id} while {message.state.value}",
                ref,
            )
            return
        target = OUTBOUND_TABLE[key]
        if packet.reason_code >= 0x80:
            # 5.0: the broker refused the message; a PUBREC >= 0x80 ends the flow
            # too, with no PUBREL (4.3.3), and frees its place in the window.
            del self._inflight[packet_id]
            error = PublishRefused(
                message.publish.topic, packet.reason_code, packet.properties.reason_string
            )
            self._events.append(PublishFailed(message.handle, error))
            self._send_queued()
        elif target is None:
            del self._inflight[packet_id]
            reason = packet.reason_code or message.reason_code
            self._events.append(PublishCompleted(message.handle, reason, packet.properties))
            self._send_queued()
        else:
            message.state = target
            message.reason_code = packet.reason_code
            self._send(PubRel(packet_id))  # [MQTT-4.3.3-1]

    def _on_pubrel(self, packet: Packet) -> None:
        assert isinstance(packet, PubRel)
        # PUBCOMP even for an id we do not know: the broker may be resuming [MQTT-4.3.3-2].
        self._inbound_qos2.discard(packet.packet_id)
        self._send(PubComp(packet.packet_id))

    def _on_suback(self, packet: Packet) -> None:
        assert isinstance(packet, SubAck)
        request = self._requests.get(packet.packet_id)
        if not isinstance(request, Subscribe):
            self._protocol_error(f"SUBACK for unknown packet id {packet.packet_id}", "MQTT-3.8.4-2")
            return
        if len(packet.return_codes) != len(request.subscriptions):
            self._protocol_error("SUBACK return codes do not match the filters", "MQTT-3.8.4-5")
            return
        del self._requests[packet.packet_id]
        identifiers = request.properties.subscription_identifiers
        identifier = identifiers[0] if identifiers else None
        for subscription, code in zip(request.subscriptions, packet.return_codes, strict=True):
            if code >= SUBACK_FAILURE:
                self._subscriptions.pop(subscription.topic_filter, None)
            else:
                granted = attrs.evolve(subscription, qos=QoS(min(code, 2)))
                self._subscriptions[subscription.topic_filter] = (granted, identifier)
        if packet.packet_id in self._resubscribe_ids:
            self._resubscribe_ids.discard(packet.packet_id)
            filters = tuple(s.topic_filter for s in request.subscriptions)
            self._events.append(Resubscribed(filters, packet.return_codes))
        else:
            self._events.append(
                SubscribeCompleted(packet.packet_id, packet.return_codes, packet.properties)
            )

    def _on_unsuback(self, packet: Packet) -> None:
        assert isinstance(packet, UnsubAck)
        request = self._requests.get(packet.packet_id)
        if not isinstance(request, Unsubscribe):
            self._protocol_error(
                f"UNSUBACK for unknown packet id {packet.packet_id}", "MQTT-3.10.4-4"
            )
            return
        if self._mqtt5 and len(packet.reason_codes) != len(request.topic_filters):
            self._protocol_error("UNSUBACK reason codes do not match the filters", "MQTT-3.11.3-1")
            return
        del self._requests[packet.packet_id]
        codes = packet.reason_codes or (0,) * len(request.topic_filters)
        for topic_filter, code in zip(request.topic_filters, codes, strict=True):
            if code < 0x80:
                self._subscriptions.pop(topic_filter, None)
        self._events.append(
            UnsubscribeCompleted(packet.packet_id, packet.reason_codes, packet.properties)
        )

    def _on_pingresp(self, packet: Packet) -> None:
        self._ping_sent_at = None

    def _on_disconnect(self, packet: Packet) -> None:
        """5.0: the server closes and says why (3.14); ``RECEIVE_TABLE`` below 5.0 has no row."""
        assert isinstance(packet, Disconnect)
        props = packet.properties
        self._close(
            ServerDisconnected(packet.reason_code, props.reason_string, props.server_reference)
        )

    def _on_auth(self, packet: Packet) -> None:
        """5.0 enhanced authentication (4.12): the authenticator answers each challenge."""
        assert isinstance(packet, Auth)
        authenticator = self.options.authenticator
        if authenticator is None:
            # Without an Authentication Method in CONNECT the server must not send AUTH.
            self._protocol_error("AUTH without an authentication method", "MQTT-3.15.0-1")
            return
        if packet.properties.authentication_method != authenticator.method:
            self._protocol_error("AUTH with another authentication method", "MQTT-4.12.0-5")
            return
        data = packet.properties.authentication_data
        try:
            if packet.reason_code == ReasonCode.CONTINUE_AUTHENTICATION:
                answer = authenticator.challenge(data)
                self._send(self._auth_packet(ReasonCode.CONTINUE_AUTHENTICATION, answer))
            elif packet.reason_code == 0 and self.state is ConnectionState.CONNECTED:
                authenticator.finish(data)  # a re-authentication succeeded (4.12.1)
            else:
                self._protocol_error(
                    f"AUTH reason 0x{packet.reason_code:02X} while {self.state.value}", "4.12"
                )
        except ClientError as exc:
            self._close_5(exc, ReasonCode.NOT_AUTHORIZED)
        except ProtocolError as exc:  # the method's own error (impl/auth's AuthError)
            self._close_5(AuthenticationFailed(str(exc)), ReasonCode.NOT_AUTHORIZED)

    # -- MQTT 5.0 helpers -----------------------------------------------------

    def _connack_5(self, properties: Properties) -> bool:
        """Take the limits and grants of a successful 5.0 CONNACK; False if it closed."""
        authenticator = self.options.authenticator
        if authenticator is not None:
            try:
                authenticator.finish(properties.authentication_data)
            except ClientError as exc:
                self._close_5(exc, ReasonCode.NOT_AUTHORIZED)
                return False
            except ProtocolError as exc:  # e.g. the server's SCRAM signature is wrong
                self._close_5(AuthenticationFailed(str(exc)), ReasonCode.NOT_AUTHORIZED)
                return False
        self.connack_properties = properties
        self.limits = ServerLimits.from_connack(properties)
        self._aliases_out = OutboundAliases(
            self.limits.topic_alias_maximum if self.options.auto_topic_alias else 0
        )
        if properties.server_keep_alive is not None:
            self._keep_alive = properties.server_keep_alive  # [MQTT-3.2.2-22]
        if properties.assigned_client_identifier is not None:
            self.assigned_client_id = properties.assigned_client_identifier
        return True

    def _inbound_topic(self, packet: Publish) -> str | None:
        """The topic of a 5.0 PUBLISH, through its topic alias (3.3.2.3.4); None if it closed."""
        alias = packet.properties.topic_alias
        if alias is None:
            return packet.topic
        if not 1 <= alias <= self.options.topic_alias_maximum:
            self._protocol_error(
                f"topic alias {alias} outside 1..{self.options.topic_alias_maximum}",
                "MQTT-3.3.2-9",
                ReasonCode.TOPIC_ALIAS_INVALID,
            )
            return None
        if packet.topic:
            self._aliases_in[alias] = packet.topic
            return packet.topic
        topic = self._aliases_in.get(alias)
        if topic is None:
            self._protocol_error(f"topic alias {alias} was never set", "3.3.4")
        return topic

    def _beyond_limits(self, publish: Publish) -> InvalidArgument | None:
        """Why the server's CONNACK forbids sending ``publish``, or None."""
        limits = self.limits
        if publish.qos > limits.maximum_qos:
            return NotSupportedByServer(
                f"the server's Maximum QoS is {int(limits.maximum_qos)}: a QoS "
                f"{int(publish.qos)} PUBLISH must not be sent [MQTT-3.2.2-11]",
                ReasonCode.QOS_NOT_SUPPORTED,
            )
        if publish.retain and not limits.retain_available:
            return NotSupportedByServer(
                "the server does not support retained messages [MQTT-3.2.2-14]",
                ReasonCode.RETAIN_NOT_SUPPORTED,
            )
        maximum = limits.maximum_packet_size
        if maximum is not None:
            # The largest this PUBLISH can be on the wire: topic in full, plus an alias.
            alias = 1 if self._aliases_out.maximum else None
            probe = attrs.evolve(
                publish,
                packet_id=1 if publish.qos else None,
                properties=attrs.evolve(publish.properties, topic_alias=alias),
            )
            size = len(encode(probe, ProtocolLevel.MQTT_5))
            if size > maximum:
                return PayloadTooLarge(
                    f"a PUBLISH of {size} bytes exceeds the server's Maximum Packet Size "
                    f"of {maximum} bytes [MQTT-3.1.2-24]"
                )
        return None

    def _auth_packet(self, reason_code: int, data: bytes | None) -> Auth:
        assert self.options.authenticator is not None
        return Auth(
            reason_code,
            Properties(
                authentication_method=self.options.authenticator.method,
                authentication_data=data,
            ),
        )

    @property
    def _receiving(self) -> int:
        """QoS 1/2 deliveries the server counts against our Receive Maximum (3.3.4)."""
        return len(self._unacknowledged) + len(self._inbound_qos2)

    # -- helpers --------------------------------------------------------------

    def _new_decoder(self) -> Decoder:
        return Decoder(
            role=Role.CLIENT,
            protocol_level=self.options.protocol_level,
            max_packet_size=self.options.max_packet_size + 5,
        )

    def _send(self, packet: Packet) -> None:
        self._outbox.append(packet)
        self._last_sent = self._now

    def _send_publish(self, publish: Publish) -> None:
        """A PUBLISH on the wire: at 5.0 through this connection's topic aliases."""
        if self._aliases_out.maximum:
            topic, alias = self._aliases_out.apply(publish.topic)
            if alias is not None:
                properties = attrs.evolve(publish.properties, topic_alias=alias)
                publish = attrs.evolve(publish, topic=topic, properties=properties)
        self._send(publish)

    def _close(self, error: ClientError) -> None:
        self._events.append(CloseConnection(error))
        self.state = ConnectionState.CLOSING

    def _close_5(self, error: ClientError, reason_code: int) -> None:
        """Close, telling a 5.0 server why first (3.14.2.1) [MQTT-4.13.1-1]."""
        if self._mqtt5 and self.state is ConnectionState.CONNECTED:
            self._send(Disconnect(reason_code))
        self._close(error)

    def _violation(self, error: ProtocolError) -> None:
        self._close_5(ProtocolViolation(error), error.reason_code)

    def _protocol_error(
        self, message: str, ref: str, reason_code: ReasonCode | None = None
    ) -> None:
        self._violation(ProtocolError(message, ref=ref, reason_code=reason_code))

    def _allocate_packet_id(self) -> int | None:
        """The next free non-zero packet id [MQTT-2.3.1-1], unique among flows in use."""
        for _ in range(validation.MAX_PACKET_ID):
            candidate = self._next_packet_id
            self._next_packet_id = candidate % validation.MAX_PACKET_ID + 1
            if candidate not in self._inflight and candidate not in self._requests:
                return candidate
        return None

    def _request(self, build: Callable[[int], Subscribe | Unsubscribe]) -> int:
        packet_id = self._allocate_packet_id()
        if packet_id is None:
            raise ClientError("all 65,535 packet identifiers are in use")
        request = build(packet_id)
        self._requests[packet_id] = request
        if self.state is ConnectionState.CONNECTED:
            self._send(request)
        return packet_id

    def _send_queued(self) -> None:
        """Send queued messages in order while connected and the window has room.

        A resumed session's re-sends go first: new messages wait behind them."""
        self._send_resends()
        if self._resends:
            return
        window = self.send_window
        while self.state is ConnectionState.CONNECTED and self._queued:
            message = self._queued[0]
            publish = message.publish
            if self._mqtt5:
                error = self._beyond_limits(publish)
                if error is not None:
                    self._queued.popleft()
                    self._events.append(PublishFailed(message.handle, error))
                    continue
            if publish.qos is QoS.AT_MOST_ONCE:
                self._queued.popleft()
                self._send_publish(publish)
                self._events.append(PublishCompleted(message.handle))
                continue
            if len(self._inflight) >= window:
                return
            packet_id = self._allocate_packet_id()
            if packet_id is None:
                return
            self._queued.popleft()
            message.publish = attrs.evolve(publish, packet_id=packet_id)
            message.state = FIRST_OUTBOUND_STATE[publish.qos]
            self._inflight[packet_id] = message
            self._published_here.add(packet_id)
            self._send_publish(message.publish)

    def _resend_inflight(self) -> None:
        """Resume the flows of a persistent session with their original ids [MQTT-4.4.0-1].

        PUBRELs go at once (no quota holds back a packet other than PUBLISH
        [MQTT-3.3.4-8]); the PUBLISHes go in their order [MQTT-4.6.0-1] as the new
        connection's send quota allows: a server may give a lower Receive Maximum than
        the unacknowledged messages the last connection held [MQTT-3.3.4-7].
        """
        for packet_id, message in self._inflight.items():
            if message.state is OutboundState.AWAITING_PUBCOMP:
                self._send(PubRel(packet_id))
            else:
                self._resends.append(packet_id)
                self._send_resends()  # with room, in the order the flows started

    def _send_resends(self) -> None:
        """Re-send owed PUBLISHes while this connection's send quota has room (4.9)."""
        self._published_here &= self._inflight.keys()
        while self._resends and self.state is ConnectionState.CONNECTED:
            packet_id = self._resends[0]
            message = self._inflight.get(packet_id)
            if message is None or message.state is OutboundState.AWAITING_PUBCOMP:
                self._resends.popleft()  # completed or moved on meanwhile
                continue
            if len(self._published_here) >= self.limits.receive_maximum:
                return
            self._resends.popleft()
            self._published_here.add(packet_id)
            self._send_publish(attrs.evolve(message.publish, dup=True))  # [MQTT-3.3.1-1]

    def _discard_session(self) -> None:
        """Clean session: the broker forgets every flow, so must we [MQTT-3.1.2-6]."""
        for message in self._inflight.values():
            error = SessionDiscarded(
                f"clean session discarded the unacknowledged QoS {message.publish.qos} "
                f"message to {message.publish.topic!r}; it may or may not have arrived"
            )
            self._events.append(PublishFailed(message.handle, error))
        self._inflight.clear()
        self._inbound_qos2.clear()

    def _resubscribe(self) -> None:
        """Subscribe again, one SUBSCRIBE per subscription identifier (it is per packet)."""
        if self._resubscribe_ids:
            return  # the last resubscription is still pending and will be sent again
        groups: dict[int | None, list[Subscription]] = {}
        for subscription, identifier in self._subscriptions.values():
            groups.setdefault(identifier, []).append(subscription)
        for identifier, subscriptions in groups.items():
            packet_id = self._allocate_packet_id()
            if packet_id is None:
                return
            properties = Properties(
                subscription_identifiers=() if identifier is None else (identifier,)
            )
            request = Subscribe(packet_id, tuple(subscriptions), properties)
            self._requests[packet_id] = request
            self._resubscribe_ids.add(packet_id)


_CLIENT_DISCONNECT_REASONS = frozenset(
    {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x96, 0x98, 0x99}
)
"""The reason codes a client may send on DISCONNECT (3.14.2.1, table 3-10)."""

__all__ = [
    "FIRST_OUTBOUND_STATE",
    "OUTBOUND_TABLE",
    "RECEIVE_TABLE",
    "RECEIVE_TABLE_5",
    "ApplicationPublish",
    "ClientOptions",
    "ClientProtocol",
    "ConnectionState",
    "OutboundState",
]
