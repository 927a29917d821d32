"""The client's PUBLISH packets, as the server receives them.

Theory of operation. ``on_publish`` is the handler of PUBLISH in CONNECTED
(``protocol.HANDLERS``). It checks what the broker has limits on, hands the
packet to the session's inbound QoS flow (``Session.on_publish``, which keeps
QoS 2 packet ids awaiting PUBREL and answers duplicates), routes the message,
and acknowledges it; a PUBLISH it cannot take is a ``ProtocolError`` (or
``LimitExceeded``) that closes the connection (``closing``).

A PUBLISH to a topic the ACL does not let the client write (``Session.access``,
``security.py``) is routed to nobody: at 3.1.1, which cannot refuse one, it is still
acknowledged; at 5.0 its PUBACK or PUBREC says 0x87 Not authorized. So is a PUBLISH
into the broker's own ``$SYS`` tree (``sys_topics.is_sys_topic``), whatever the ACL:
mosquitto refuses those too, and the broker's status values stay its own.

At 3.1.1 a topic beyond the broker's limits is the only refusal there is. At
MQTT 5.0 (``terms`` set) the packet says more and so may the answer:

- inbound topic aliases are set or resolved here, for this connection only
  (3.3.2.3.4): every one from 1 to the Topic Alias Maximum CONNACK stated is
  accepted [MQTT-3.3.2-12];
- the limits CONNACK stated are enforced: Maximum QoS [MQTT-3.2.2-11] and
  Retain Available [MQTT-3.2.2-14], and a client sends no Subscription
  Identifier [MQTT-3.3.4-6];
- a payload that is not the UTF-8 its Payload Format Indicator says may be
  refused (``validate_payload_format``, 3.3.2.3.2);
- the acknowledgement says whether anyone subscribed (0x10 No matching
  subscribers), so the session defers it (``defer_ack``) and it is sent here
  once the message is routed: a plain PUBACK or PUBREC as a ready-made frame,
  0x10 by the session.
"""

from __future__ import annotations

import attrs

from mqttref.impl.broker.admission import payload_format_valid
from mqttref.impl.broker.connection_base import ConnectionBase
from mqttref.impl.broker.limits import topic_problem
from mqttref.impl.broker.sys_topics import SYS_ROOT, is_sys_topic
from mqttref.impl.codec.errors import LimitExceeded, ProtocolError, ReasonCode
from mqttref.impl.codec.frames import PUBACK, PUBREC, ack_frame
from mqttref.impl.codec.packets import NO_PROPERTIES, PubAck, Publish, PubRec, QoS
from mqttref.impl.logtext import broker_log, clip


class InboundPublish(ConnectionBase):
    """How a connection's protocol core takes the client's PUBLISH packets.

    A part of ``protocol.Connection``; its state (the topic aliases, the last
    topic found within the limits) is declared with the rest in
    ``ConnectionBase``. ``on_publish`` is the one entry, which the stateful
    tests wrap on ``Connection``."""

    __slots__ = ()

    def on_publish(self, packet: Publish, now: float) -> None:
        """Route an inbound PUBLISH; a topic beyond the broker's limits closes (3.1.1
        has no other way to refuse a PUBLISH). Any QoS is accepted, whatever
        ``max_qos``: that bounds only what SUBACK grants."""
        if self.terms is not None:
            self._on_publish_v5(packet, now)
            return
        topic = packet.topic
        if topic != self._checked_topic:  # a publisher tends to repeat its topic
            problem = topic_problem(topic, self.config)
            if problem is not None:
                raise LimitExceeded(f"PUBLISH topic with {problem}", ref="§4.7",
                                    reason_code=ReasonCode.TOPIC_NAME_INVALID)
            self._checked_topic = topic
        session = self.session
        assert session is not None
        message = session.on_publish(packet, now)
        if message is not None:
            access = session.access
            if ((access is not None and not access.may_write(topic))
                    or (topic.startswith(SYS_ROOT) and is_sys_topic(topic))):
                # 3.1.1 has no way to refuse a PUBLISH: acknowledged as usual, routed to
                # nobody, retained nowhere (mosquitto does the same).
                self._log_denied(topic)
                return
            # The session may hold level-5 subscriptions with No Local (a 3.1.1 connection
            # resumed it): its own messages must not come back to it [MQTT-3.8.3-3].
            message.origin = self.client_id
            self.ports.router.publish(message, now)

    def _on_publish_v5(self, packet: Publish, now: float) -> None:
        """An MQTT 5.0 PUBLISH: its topic alias resolved or set [MQTT-3.3.2-12], the
        broker's stated limits enforced (Maximum QoS [MQTT-3.2.2-11], Retain Available
        [MQTT-3.2.2-14]), routed, then acknowledged with 0x10 if nobody subscribed."""
        config = self.config
        properties = packet.properties
        topic = packet.topic
        if properties is not NO_PROPERTIES:
            if properties.subscription_identifiers:
                raise ProtocolError("a PUBLISH from a client with a Subscription Identifier",
                                    ref="MQTT-3.3.4-6")
            alias = properties.topic_alias
            if alias is not None:
                packet = self._resolve_alias(packet, alias)
                topic = packet.topic
        if not topic:
            raise ProtocolError("a PUBLISH with neither topic name nor topic alias",
                                ref="§3.3.2.3.4")
        if packet.qos > config.max_qos:
            raise ProtocolError(f"QoS {packet.qos} above the Maximum QoS of {config.max_qos}",
                                ref="MQTT-3.2.2-11", reason_code=ReasonCode.QOS_NOT_SUPPORTED)
        if packet.retain and not config.retain_available:
            raise ProtocolError("RETAIN 1 where Retain Available is 0", ref="MQTT-3.2.2-14",
                                reason_code=ReasonCode.RETAIN_NOT_SUPPORTED)
        if topic != self._checked_topic:
            problem = topic_problem(topic, config)
            if problem is not None:
                raise LimitExceeded(f"PUBLISH topic with {problem}", ref="§4.7",
                                    reason_code=ReasonCode.TOPIC_NAME_INVALID)
            self._checked_topic = topic
        session = self.session
        assert session is not None
        if (properties.payload_format_indicator == 1 and config.validate_payload_format
                and not payload_format_valid(properties, packet.payload)
                and not (packet.qos is QoS.EXACTLY_ONCE
                         and packet.packet_id in session.awaiting_rel)):  # a resend
            self._refuse_payload(packet)
            return
        access = session.access
        if (((access is not None and not access.may_write(topic))
                or (topic.startswith(SYS_ROOT) and is_sys_topic(topic)))
                and not (packet.qos is QoS.EXACTLY_ONCE
                         and packet.packet_id in session.awaiting_rel)):  # a resend
            self._refuse_unauthorized(packet)
            return
        message = session.on_publish(packet, now, defer_ack=True)
        if message is None:
            return  # a duplicate QoS 2 PUBLISH, answered already
        message.origin = self.client_id
        matched = self.ports.router.publish(message, now)
        if packet.qos:
            if matched:  # the four bytes of a plain PUBACK or PUBREC (reason 0x00)
                assert packet.packet_id is not None
                first = PUBACK if packet.qos is QoS.AT_LEAST_ONCE else PUBREC
                self.send_frame(ack_frame(first, packet.packet_id))
            else:
                session.acknowledge(packet, matched)

    def _resolve_alias(self, packet: Publish, alias: int) -> Publish:
        """The PUBLISH with its topic: a topic name with an alias sets the alias, an
        empty one takes the alias's topic (3.3.2.3.4, this connection's aliases only).
        Every alias from 1 to the Topic Alias Maximum CONNACK stated is accepted
        [MQTT-3.3.2-12]; 0 [MQTT-3.3.2-8], one above it [MQTT-3.3.2-9] or one never
        set is a protocol error."""
        maximum = self.config.topic_alias_maximum
        if not 0 < alias <= maximum:
            raise ProtocolError(f"topic alias {alias} outside 1-{maximum}",
                                ref="MQTT-3.3.2-9" if alias else "MQTT-3.3.2-8",
                                reason_code=ReasonCode.TOPIC_ALIAS_INVALID)
        aliases = self._aliases
        if aliases is None:
            aliases = self._aliases = {}
        if packet.topic:
            aliases[alias] = packet.topic
            return packet
        known = aliases.get(alias)
        if known is None:
            raise ProtocolError(f"topic alias {alias} was never set", ref="§3.3.2.3.4")
        return attrs.evolve(packet, topic=known)

    def _refuse_payload(self, packet: Publish) -> None:
        """A PUBLISH whose payload is not the UTF-8 its Payload Format Indicator 1 says,
        with ``validate_payload_format``: the receiver MAY answer PUBACK, PUBREC or
        DISCONNECT 0x99 (3.3.2.3.2). The message goes to nobody, retained or not; at
        QoS 1 and 2 the answer is the acknowledgement, and a PUBREC of 0x80 or more ends
        the exchange, so its packet id is not kept awaiting PUBREL [MQTT-4.3.3-9]; QoS 0
        has none, so the connection closes with DISCONNECT 0x99 (and the will)."""
        detail = "a payload that is not UTF-8 under Payload Format Indicator 1"
        if packet.qos is QoS.AT_MOST_ONCE:
            raise ProtocolError(detail, ref="§3.3.2.3.2",
                                reason_code=ReasonCode.PAYLOAD_FORMAT_INVALID)
        assert packet.packet_id is not None
        broker_log.info("payload format invalid", "%s: PUBLISH %d refused: %s", self.who,
                        packet.packet_id, detail)
        ack = PubAck if packet.qos is QoS.AT_LEAST_ONCE else PubRec
        self.send(ack(packet.packet_id, ReasonCode.PAYLOAD_FORMAT_INVALID))

    def _log_denied(self, topic: str) -> None:
        why = ("refused: the $SYS tree is the broker's" if is_sys_topic(topic)
               else "denied by the ACL")
        broker_log.info("publish denied", "%s: PUBLISH on %s %s", self.who, clip(topic), why)

    def _refuse_unauthorized(self, packet: Publish) -> None:
        """A 5.0 PUBLISH the ACL does not let this client write: PUBACK or PUBREC 0x87
        Not authorized (3.4.2.1, 3.5.2.1); a PUBREC of 0x80 or more ends the exchange,
        so its packet id is not kept awaiting PUBREL [MQTT-4.3.3-9]. At QoS 0 there is
        nothing to answer: it is dropped, as mosquitto does, and the client stays."""
        self._log_denied(packet.topic)
        if packet.qos is QoS.AT_MOST_ONCE:
            return
        assert packet.packet_id is not None
        ack = PubAck if packet.qos is QoS.AT_LEAST_ONCE else PubRec
        self.send(ack(packet.packet_id, ReasonCode.NOT_AUTHORIZED))
