"""Closing a connection: once, with DISCONNECT at 5.0, and the will where it is due.

Theory of operation. A connection ends in one of a few ways, and each of them
comes down to ``Closing.close``, which does it once (a second call does
nothing): the session is let go (``SessionPort.connection_closed``), the will
is published if the close calls for it, and the edge writes what waits and
closes. Who closes decides the rest:

- the client, cleanly (``on_disconnect``): the will is discarded
  [MQTT-3.14.4-3], unless a 5.0 DISCONNECT's reason code is not 0x00; during
  CONNECT's enhanced authentication nothing was accepted, so nothing is kept
  (``on_disconnect_before_connack``);
- the client, by going away (``protocol.Connection.connection_lost``), or by
  silence past keep alive (``keep_alive_expired``; [MQTT-3.1.2-24] at 3.1.1):
  the will goes out;
- the broker, for a broken rule (``protocol_violation``, [MQTT-4.8.0-1]) or a
  packet it cannot fit in the client's Maximum Packet Size
  (``_close_unsendable``): the will goes out, and at 5.0 after CONNACK the
  close is a DISCONNECT with its reason code first [MQTT-3.14.2-1], before
  CONNACK a CONNACK with the reason where it has one.

The will is published only once the connection is closed [MQTT-3.1.2-8]
(``publish_will``), so never on this connection, even to its own subscription.
"""

from __future__ import annotations

import logging

import attrs

from mqttref.impl.broker.connection_base import ConnectionBase
from mqttref.impl.broker.packet_size import fit
from mqttref.impl.broker.sys_topics import is_sys_topic
from mqttref.impl.codec.errors import LimitExceeded, ProtocolError, ReasonCode, UnsupportedProtocol
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    ConnectReturnCode,
    Disconnect,
    PacketType,
    Properties,
    ProtocolLevel,
)
from mqttref.impl.codec.reasons import VALID_REASONS
from mqttref.impl.flow import ConnectionState
from mqttref.impl.logtext import broker_log, clip, clip_text
from mqttref.impl.message import Message

log = logging.getLogger("mqttref.broker")


class Closing(ConnectionBase):
    """How a connection's protocol core closes: one ``close``, and the will.

    A part of ``protocol.Connection``, with no state of its own. Every close
    calls ``self.close`` and every will ``self.publish_will``, never a function
    aside, so that these methods are the one place each is decided: the stateful
    tests replace them (and ``keep_alive_expired``, ``on_disconnect``,
    ``protocol_violation``) on ``Connection`` to model brokers that get them wrong."""

    __slots__ = ()

    # Close once, and the will ------------------------------------------------------------

    def close(self, reason: str, *, publish_will: bool, now: float | None = None,
              reason_code: int | None = None, by_client: bool = False) -> None:
        """Close once: release the session, publish the will if asked, have the edge
        write what waits and close. ``now`` defaults to the last time the core was told.

        At MQTT 5.0, after CONNACK, a close the broker starts goes with DISCONNECT and
        ``reason_code`` [MQTT-3.14.2-1] (0x80 when the caller names none), with the
        reason as Reason String, which DISCONNECT may carry whatever Request Problem
        Information said [MQTT-3.1.2-29]. ``by_client``: the client closed (its
        DISCONNECT, or the network), so nothing more is sent."""
        if self.state is ConnectionState.CLOSED:
            return
        if now is None:
            now = self._now
        self._unsendable = None  # closing anyway: not a second time for that
        terms = self.terms
        if terms is not None and self.state is ConnectionState.CONNECTED and not by_client:
            code = ReasonCode.UNSPECIFIED_ERROR if reason_code is None else reason_code
            if code not in VALID_REASONS[PacketType.DISCONNECT]:
                code = ReasonCode.UNSPECIFIED_ERROR  # e.g. a CONNACK-only code [MQTT-3.14.2-1]
            # Without its Reason String if that does not fit [MQTT-3.14.2-3].
            frame = fit(Disconnect(code, Properties(reason_string=clip_text(reason, 200))),
                        terms.maximum_packet_size)
            if frame is not None:
                self.send_frame(frame)
        self.state = ConnectionState.CLOSED
        self.close_reason = reason
        if self._verbose:
            log.debug("closed %s: %s", self.who, clip_text(reason))
        if self.session is not None:
            self.ports.sessions.connection_closed(self, self.session, now)
        # The will goes out once the connection is closed [MQTT-3.1.2-8], so after the
        # session let go of it: never on this connection, even to its own subscription.
        if publish_will and self.will is not None:
            self.publish_will(now)
        self.will = None
        self.stop_waiting()
        self._edge.close_after_writing()  # takes what waits in data_to_send
        self._shut = True

    def publish_will(self, now: float) -> None:
        """Publish the will message, with its QoS and retain flag (3.1.2.5), and at 5.0
        its properties (3.1.3.2). A 5.0 Will Delay Interval hands it to the session
        table, which publishes it when the delay ends or the session does, whichever
        comes first, and never if the client comes back to the session first
        [MQTT-3.1.3-9]."""
        will = self.will
        assert will is not None
        if is_sys_topic(will.topic):
            # A will is the client's PUBLISH, and the $SYS tree is the broker's: accepted
            # at CONNECT and dropped here, as mosquitto 2.0 does.
            log.debug("dropped the will of %s: %s is the broker's $SYS tree", self.who,
                      clip(will.topic))
            return
        properties = will.properties
        delay = properties.will_delay_interval or 0
        expires_at = None
        if properties is not NO_PROPERTIES:
            if properties.message_expiry_interval is not None:
                # Its lifetime runs from publication (3.1.3.2.4): after the delay.
                expires_at = now + delay + properties.message_expiry_interval
            properties = attrs.evolve(properties, will_delay_interval=None)
            if properties == NO_PROPERTIES:
                properties = NO_PROPERTIES
        message = Message(will.topic, will.payload, will.qos, will.retain,
                          properties=properties, expires_at=expires_at)
        if delay and self.client_id is not None:
            self.ports.sessions.delay_will(self.client_id, message, now + delay, now)
            return
        log.debug("publishing the will of %s on %s", self.who, clip(will.topic))
        self.ports.router.publish(message, now)

    def keep_alive_expired(self, now: float, *, connect: bool) -> None:
        """Silence for too long: close, with the will after CONNECT [MQTT-3.1.2-24]."""
        if connect:
            broker_log.warning("connect timeout", "closing %s: no CONNECT within %.3g s",
                               self.who, self.config.connect_timeout)
            self.close("CONNECT timeout", publish_will=False, now=now)
        else:
            broker_log.warning("keep alive expired",
                               "closing %s: keep alive expired (%.3g s without a packet)",
                               self.who, self.keep_alive_limit)
            self.close("keep alive expired", publish_will=True, now=now,
                       reason_code=ReasonCode.KEEP_ALIVE_TIMEOUT)

    # Closes the broker starts ----------------------------------------------------------

    def protocol_violation(self, exc: ProtocolError) -> None:
        """Close for a broken rule: one log line, will published [MQTT-4.8.0-1]."""
        if isinstance(exc, UnsupportedProtocol) and self.state is ConnectionState.CONNECTING:
            # An unknown protocol level is answered with 0x01, then closed [MQTT-3.1.2-2].
            self.send(ConnAck(False, ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION))
        if (self.protocol_level is ProtocolLevel.MQTT_5
                and self.state is ConnectionState.CONNECTING):
            # A 5.0 CONNECT (or its AUTH exchange) broke a rule: CONNACK may say which
            # before the close (3.2.2.2), where CONNACK has that reason code.
            code = exc.reason_code
            allowed = VALID_REASONS[PacketType.CONNACK]
            self.send(ConnAck(False, code if code in allowed else ReasonCode.UNSPECIFIED_ERROR))
        kind = "refused" if isinstance(exc, LimitExceeded) else "protocol violation"
        broker_log.warning(kind, "closing %s: %s: %s", self.who, kind, clip_text(exc))
        self.close(f"{kind}: {exc.detail}", publish_will=True, reason_code=exc.reason_code)

    def _close_unsendable(self) -> None:
        """Close because a packet could not go out within the client's Maximum Packet
        Size even without its Reason String and User Properties (``packet_size``: the
        specification has no rule for a packet other than PUBLISH, and none can be left
        out). After CONNACK: DISCONNECT 0x95 Packet too large (3.14.2.1), which fits any
        client that took the CONNACK, and the will; before it, where no DISCONNECT may
        go [MQTT-3.14.0-1]: CONNACK 0x80 if that fits, no session and no will."""
        what, self._unsendable = self._unsendable, None
        if self.is_closed or what is None:
            return
        broker_log.warning("packet too large", "closing %s: %s", self.who, what)
        if self.state is ConnectionState.CONNECTING:
            frame = fit(ConnAck(False, ReasonCode.UNSPECIFIED_ERROR),
                        self.client_maximum_packet_size)
            if frame is not None:
                self.send_frame(frame)
            self.close(what, publish_will=False)
            return
        self.close(what, publish_will=True, reason_code=ReasonCode.PACKET_TOO_LARGE)

    # The client's DISCONNECT ------------------------------------------------------------

    def on_disconnect(self, packet: Disconnect, now: float) -> None:
        """A clean close: the will is discarded [MQTT-3.14.4-3], unless a 5.0 client says
        0x04 (or any reason but 0x00) to have it published. A 5.0 DISCONNECT may set a
        new Session Expiry Interval, but not from 0 to more (3.14.2.2.2; [MQTT-3.14.2-2] is
        the Server's not sending one). In the middle
        of a re-authentication it is the same: packets flow on under the previous
        authentication meanwhile (4.12.1), and the exchange simply ends with the connection."""
        terms = self.terms
        if terms is not None:
            interval = packet.properties.session_expiry_interval
            if interval is not None:
                if terms.session_expiry_interval == 0 and interval:
                    raise ProtocolError("DISCONNECT sets a Session Expiry Interval where "
                                        "CONNECT had 0", ref="§3.14.2.2.2")
                self.terms = terms = attrs.evolve(terms, session_expiry_interval=min(
                    interval, self.config.max_session_expiry_interval))
                assert self.session is not None
                assert self.client_id is not None
                self.ports.sessions.set_expiry(self.session, terms.expiry_seconds)
            if packet.reason_code != ReasonCode.SUCCESS:
                self.close(f"the client disconnected with 0x{packet.reason_code:02X}",
                           publish_will=True, by_client=True)
                return
        self.close("the client disconnected", publish_will=False, by_client=True)

    def on_disconnect_before_connack(self, packet: Disconnect, now: float) -> None:
        """DISCONNECT while enhanced authentication runs, between CONNECT and CONNACK: a
        client that named an Authentication Method may send AUTH or DISCONNECT before
        CONNACK [MQTT-3.1.2-30], and "can close the connection at any point in this
        process. It MAY send a DISCONNECT packet before doing so" (4.12). A clean close,
        then, not a protocol error: nothing is sent back (no DISCONNECT before a CONNACK
        [MQTT-3.14.0-1]), and whatever the reason code nothing is published or kept, as
        the CONNECT was never accepted: no session was opened, its will never stored.
        (``protocol.AUTHENTICATING`` routes it here only while an exchange is under way.)"""
        if self._verbose:
            log.debug("%s disconnected with 0x%02X during enhanced authentication",
                      self.who, packet.reason_code)
        self.close(f"the client disconnected with 0x{packet.reason_code:02X} before CONNACK, "
                   "during enhanced authentication", publish_will=False, by_client=True)
