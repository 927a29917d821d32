"""The sans-IO client core: MQTT 3.1/3.1.1 client behaviour without sockets or clocks.

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
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence

import attrs

from mqttref.impl.client import validation
from mqttref.impl.client.errors import (
    InvalidArgument,
    MQTTTimeout,
    ProtocolViolation,
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
from mqttref.impl.client.options import ClientOptions
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ClientError, ProtocolError
from mqttref.impl.codec.packets import (
    SUBACK_FAILURE,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
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


@attrs.define
class ApplicationPublish:
    """One PUBLISH of the application, from ``publish`` until its flow completes: the
    application's request with its handle, walking the outbound flow of
    ``impl/flow.py`` that the broker's copies to subscribers walk too."""

    handle: int
    publish: Publish
    state: OutboundState | None = None
    """``None`` while queued: waiting for a connection or a slot in the window."""


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
        self._requests: dict[int, Subscribe | Unsubscribe] = {}
        self._resubscribe_ids: set[int] = set()
        self._subscriptions: dict[str, QoS] = {}
        """Filters the broker granted, for resubscribing when a session is lost."""
        self._inbound_qos2: set[int] = set()
        """QoS 2 packet ids we sent PUBREC for and await PUBREL on (method B, 4.3.3)."""
        self._unacknowledged: dict[int, QoS] = {}
        """QoS 1/2 deliveries of this connection handed out, not yet acknowledged."""
        self._connect_deadline: float | None = None
        self._last_sent = 0.0
        self._ping_sent_at: float | None = None
        self._reading_paused = False

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
        if self.state is not ConnectionState.CONNECTED or self.options.keep_alive == 0:
            return None
        if self._ping_sent_at is None:
            return self._last_sent + self.options.keep_alive
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
        return dict(self._subscriptions)

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
        self._send(
            Connect(
                protocol_level=options.protocol_level,
                client_id=options.client_id,
                clean_session=options.clean_session,
                keep_alive=options.keep_alive,
                will=options.will,
                username=options.username,
                password=options.password,
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
            self._close(ProtocolViolation(exc))
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
        handler_name = RECEIVE_TABLE.get((self.state, packet.packet_type))
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
        if self.state is not ConnectionState.CONNECTED or self.options.keep_alive == 0:
            return
        if self._ping_sent_at is not None:
            expired = now >= self._ping_sent_at + self.options.ping_timeout
            if expired and not self._reading_paused:
                self._close(
                    MQTTTimeout(f"no PINGRESP within {self.options.ping_timeout:g} seconds")
                )
        elif now >= self._last_sent + self.options.keep_alive:
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

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, now: float) -> int:
        """Queue or send a PUBLISH; returns the handle its completion event will name."""
        self._now = now
        level = validation.check_qos(qos)
        validation.check_topic_name(topic)
        validation.check_payload(topic, payload, level, self.options.max_packet_size)
        publish = Publish(topic=topic, payload=bytes(payload), qos=level, retain=retain)
        message = ApplicationPublish(handle=next(self._handles), publish=publish)
        self._queued.append(message)
        self._send_queued()
        return message.handle

    def subscribe(self, subscriptions: Sequence[tuple[str, int]], now: float) -> int:
        """Send (or hold until connected) a SUBSCRIBE; returns its packet id."""
        self._now = now
        if not subscriptions:
            raise InvalidArgument("SUBSCRIBE needs at least one filter [MQTT-3.8.3-3]")
        checked = []
        for topic_filter, qos in subscriptions:
            validation.check_topic_filter(topic_filter)
            checked.append(Subscription(topic_filter, validation.check_qos(qos)))
        return self._request(lambda pid: Subscribe(pid, tuple(checked)))

    def unsubscribe(self, topic_filters: Sequence[str], now: float) -> int:
        """Send (or hold until connected) an UNSUBSCRIBE; returns its packet id."""
        self._now = now
        if not topic_filters:
            raise InvalidArgument("UNSUBSCRIBE needs at least one filter [MQTT-3.10.3-2]")
        for topic_filter in topic_filters:
            validation.check_topic_filter(topic_filter)
        return self._request(lambda pid: Unsubscribe(pid, tuple(topic_filters)))

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

    def disconnect(self, now: float) -> None:
        """Send DISCONNECT; the shell then closes the connection [MQTT-3.14.4-1]."""
        self._now = now
        if self.state is ConnectionState.CONNECTED:
            self._send(Disconnect())
        self.state = ConnectionState.CLOSING

    # -- handlers, one per received packet type ------------------------------

    def _on_connack(self, packet: Packet) -> None:
        assert isinstance(packet, ConnAck)
        self._connect_deadline = None
        if packet.return_code != 0:
            # A refusing CONNACK has session present 0 and the server closes [MQTT-3.2.2-4].
            self._events.append(ConnectRefused(packet.return_code))
            self.state = ConnectionState.CLOSING
            return
        if packet.session_present and self.options.clean_session:
            self._protocol_error("session present with clean session 1", "MQTT-3.2.2-1")
            return
        self.state = ConnectionState.CONNECTED
        self.session_present = packet.session_present
        if not packet.session_present:
            self._inbound_qos2.clear()
        self._events.append(Connected(packet.session_present))
        if not packet.session_present and self.options.resubscribe and self._subscriptions:
            self._resubscribe()
        for request in self._requests.values():
            self._send(request)
        self._resend_inflight()
        self._send_queued()

    def _on_publish(self, packet: Packet) -> None:
        assert isinstance(packet, Publish)
        packet_id = packet.packet_id
        if packet.qos is QoS.EXACTLY_ONCE and packet_id in self._inbound_qos2:
            # Already delivered and PUBREC'd: answer again, deliver nothing [MQTT-4.3.3-2].
            self._send(PubRec(packet_id))
            return
        if packet_id is not None:
            if packet_id in self._unacknowledged:
                return  # re-sent while the first copy is still with the application
            self._unacknowledged[packet_id] = packet.qos
        message = Message(
            topic=packet.topic,
            payload=packet.payload,
            qos=packet.qos,
            retain=packet.retain,
            dup=packet.dup,
            packet_id=packet_id,
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
        if target is None:
            del self._inflight[packet_id]
            self._events.append(PublishCompleted(message.handle))
            self._send_queued()
        else:
            message.state = target
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
        for subscription, code in zip(request.subscriptions, packet.return_codes, strict=True):
            if code == SUBACK_FAILURE:
                self._subscriptions.pop(subscription.topic_filter, None)
            else:
                self._subscriptions[subscription.topic_filter] = QoS(min(code, 2))
        if packet.packet_id in self._resubscribe_ids:
            self._resubscribe_ids.discard(packet.packet_id)
            filters = tuple(s.topic_filter for s in request.subscriptions)
            self._events.append(Resubscribed(filters, packet.return_codes))
        else:
            self._events.append(SubscribeCompleted(packet.packet_id, packet.return_codes))

    def _on_unsuback(self, packet: Packet) -> None:
        assert isinstance(packet, UnsubAck)
        request = self._requests.get(packet.packet_id)
        if not isinstance(request, Unsubscribe):
            self._protocol_error(
                f"UNSUBACK for unknown packet id {packet.packet_id}", "MQTT-3.10.4-4"
            )
            return
        del self._requests[packet.packet_id]
        for topic_filter in request.topic_filters:
            self._subscriptions.pop(topic_filter, None)
        self._events.append(UnsubscribeCompleted(packet.packet_id))

    def _on_pingresp(self, packet: Packet) -> None:
        self._ping_sent_at = None

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

    def _close(self, error: ClientError) -> None:
        self._events.append(CloseConnection(error))
        self.state = ConnectionState.CLOSING

    def _protocol_error(self, message: str, ref: str) -> None:
        self._close(ProtocolViolation(ProtocolError(message, ref=ref)))

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
        """Send queued messages in order while connected and the window has room."""
        while self.state is ConnectionState.CONNECTED and self._queued:
            message = self._queued[0]
            publish = message.publish
            if publish.qos is QoS.AT_MOST_ONCE:
                self._queued.popleft()
                self._send(publish)
                self._events.append(PublishCompleted(message.handle))
                continue
            if len(self._inflight) >= self.options.max_inflight:
                return
            packet_id = self._allocate_packet_id()
            if packet_id is None:
                return
            self._queued.popleft()
            message.publish = attrs.evolve(publish, packet_id=packet_id)
            message.state = FIRST_OUTBOUND_STATE[publish.qos]
            self._inflight[packet_id] = message
            self._send(message.publish)

    def _resend_inflight(self) -> None:
        """Resume the flows of a persistent session with their original ids [MQTT-4.4.0-1]."""
        for packet_id, message in self._inflight.items():
            if message.state is OutboundState.AWAITING_PUBCOMP:
                self._send(PubRel(packet_id))
            else:
                self._send(attrs.evolve(message.publish, dup=True))  # [MQTT-3.3.1-1]

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
        subscriptions = tuple(
            Subscription(topic_filter, qos) for topic_filter, qos in self._subscriptions.items()
        )
        if self._resubscribe_ids:
            return  # the last resubscription is still pending and will be sent again
        packet_id = self._allocate_packet_id()
        if packet_id is None:
            return
        request = Subscribe(packet_id, subscriptions)
        self._requests[packet_id] = request
        self._resubscribe_ids.add(packet_id)


__all__ = [
    "FIRST_OUTBOUND_STATE",
    "OUTBOUND_TABLE",
    "RECEIVE_TABLE",
    "ApplicationPublish",
    "ClientOptions",
    "ClientProtocol",
    "ConnectionState",
    "OutboundState",
]
