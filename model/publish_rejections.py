"""Why a PUBLISH that nothing pending explains is wrong: the rejections the broker
model tries, one reason each, before calling the message not due.

Theory of operation: a PUBLISH whose content matches no pending delivery is not
simply "not due" when something names its fault better: an allowed message arriving
after a later one overtook it (out of order [MQTT-4.6.0-6]; at level 5 told by
``v5.forwarding.OrderedTopics5``), a message due to a discarded subscription only
[MQTT-3.1.2-6], one due at another QoS or RETAIN flag, a zero-byte retained message
stored [MQTT-3.3.1-10] [MQTT-3.3.1-11], a QoS 2 message delivered twice
[MQTT-4.3.3-2], a packet identifier inside a QoS 0 PUBLISH [MQTT-2.3.1-5], a level-5
Topic Name or filter match ``v5.forwarding`` refuses. Each raises, or returns when it
does not apply.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    Publish,
)
from mqttref.model.allowed import AllowedPackets
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import Violation
from mqttref.model.level5_publish import MQTT_5
from mqttref.model.records import Connection, Delivery, Session
from mqttref.model.topics import matches
from mqttref.model.v5 import forwarding
from mqttref.model.v5.numbering import (
    EMPTY_RETAINED_STORED_5,
    QOS2_DUPLICATE_5,
    QOS_NOT_GRANTED_5,
    RETAIN_CLEARED_5,
    RETAIN_SET_5,
)

C, CE = ConnectionState, ConnectionEvent


class PublishRejections(AllowedPackets):
    """Mixed into ``BrokerModel`` (through ``ObservationJudge``): the named reasons a
    PUBLISH is not due."""

    def _reject_overtaken(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A message that was allowed, and dropped when a later message of its
        publisher, topic and QoS was sent first, arrives after all: it is out of
        order [MQTT-4.6.0-6] (at 5.0 on a Non-shared Subscription also [MQTT-4.6.0-5],
        ``_check_order5``). (Never arriving is fine: it was only allowed.)"""
        late = [
            d for d in session.overtaken
            if d.message.topic == packet.topic
            and d.message.payload == packet.payload
            and int(packet.qos) in d.allowed_qos
            and d.retain == packet.retain
        ]
        if late:
            if conn.level == MQTT_5:
                self._check_order5(conn, session, late[0], [], packet)
            raise self._reject(
                conn,
                "a message overtook an earlier one of the same publisher, topic and QoS,"
                " which arrived after it",
                ["MQTT-4.6.0-6"],
                packet,
            )

    def _check_order5(
        self, conn: Connection, session: Session, delivery: Delivery,
        earlier: list[Delivery], packet: Publish,
    ) -> None:
        """A level-5 copy out of its publisher, Topic and QoS order, told by
        ``forwarding.OrderedTopics5``: on a Non-shared Subscription every Topic is an
        Ordered Topic [MQTT-4.6.0-6], whose messages go in the order received
        [MQTT-4.6.0-5]. (A group's copy, which that rule does not order, is left to
        the caller's own reading.)"""
        message = delivery.message
        ordered = forwarding.OrderedTopics5(conn.client)
        key = (message.origin, message.topic, message.qos)
        last = session.last_sent.get(delivery.order_key)
        shared = delivery.channel.startswith("share:")
        try:
            if last is not None:
                ordered.latest[key] = last
            ordered.forwarded(*key, message.seq, shared=shared)
            for owed in earlier:  # each still owed: it will come after this one
                if owed.required:
                    ordered.forwarded(*key, owed.message.seq, shared=shared)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None

    def _reject_misrouted5(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A PUBLISH to a level-5 client that nothing due explains, read by the rules of
        ``forwarding``: a message due under another Topic Name that this one is a
        normalized or U+FEFF-stripped form of [MQTT-4.7.3-4] [MQTT-1.5.4-3]; or a
        subscription that matches the Topic Name only for a server that lets a leading
        wildcard match ``$`` [MQTT-4.7.2-1] or normalizes [MQTT-4.7.3-4]."""
        for delivery in session.pending:
            published = delivery.message.topic
            if delivery.message.payload == packet.payload and forwarding.renamed(
                published, packet.topic
            ):
                try:
                    forwarding.check_topic(conn.client, published, packet.topic)
                except Violation as error:
                    raise self._reject(conn, error.detail, error.refs, packet) from None
        for topic_filter in session.subscriptions:
            if matches(topic_filter, packet.topic):
                continue
            try:
                forwarding.check_match(conn.client, topic_filter, packet.topic)
            except Violation as error:
                if error.refs != ("MQTT-3.3.2-3",):  # a reason of its own, not "not due"
                    raise self._reject(conn, error.detail, error.refs, packet) from None

    def _reject_discarded(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A message the server took ownership of that only a subscription discarded
        with an earlier session of this client id explains (RETAIN=0, a QoS that
        subscription and the message allow, no current subscription giving it): the
        server kept state it must discard [MQTT-3.1.2-6]. A pending copy differing
        only in RETAIN is a flag error instead."""
        published = self.published.get((packet.topic, packet.payload))
        if packet.retain or published is None or packet.qos > published:
            return
        stale = [
            s
            for f, s in session.discarded.items()
            if f not in session.subscriptions and matches(f, packet.topic)
        ]
        if not any(packet.qos <= max(s.possible_granted()) for s in stale):
            return
        if any(
            d.message.topic == packet.topic
            and d.message.payload == packet.payload
            and d.retain
            and int(packet.qos) in d.allowed_qos
            for d in session.pending
        ):
            return
        raise self._reject(
            conn,
            "this message is due only to a subscription the server discarded",
            list(session.discard_refs),
            packet,
        )

    def _reject_wrong_flags(self, conn: Connection, session: Session, packet: Publish) -> None:
        """The message is due, but not at this QoS or with this RETAIN flag: name the
        one statement that says which, not every statement a delivery depends on."""
        same = [
            d
            for d in session.pending
            if d.message.topic == packet.topic and d.message.payload == packet.payload
        ]
        if any(d.retain == packet.retain for d in same):
            overlapping = sum(1 for f in session.subscriptions if matches(f, packet.topic)) > 1
            raise self._reject(
                conn,
                "this message is due at another QoS",
                ["MQTT-3.3.5-1"] if overlapping
                else list(QOS_NOT_GRANTED_5) if conn.level == MQTT_5 else ["MQTT-3.8.4-6"],
                packet,
            )
        if any(int(packet.qos) in d.allowed_qos for d in same):
            raise self._reject(
                conn,
                "this message is due with the other RETAIN flag",
                _retain_refs(conn, set_=packet.retain),
                packet,
            )

    def _reject_stored_empty(self, conn: Connection, packet: Publish, *, subscribed: bool) -> None:
        """A zero-byte PUBLISH with RETAIN=1 that nothing pending explains, on a
        topic a zero-byte retained message was published to, reaching a matching
        subscription: the server stored that message and sent it as the retained one.
        It must have removed the retained message so that future subscribers get none
        [MQTT-3.3.1-10], and never store a zero-byte one [MQTT-3.3.1-11]."""
        if (
            packet.retain
            and not packet.payload
            and subscribed
            and packet.topic in self.emptied_retained
        ):
            raise self._reject(
                conn,
                "a zero-byte retained message was stored and sent to a new subscription",
                list(EMPTY_RETAINED_STORED_5) if conn.level == MQTT_5
                else ["MQTT-3.3.1-10", "MQTT-3.3.1-11"],
                packet,
            )

    def _reject_duplicate(self, conn: Connection, session: Session, packet: Publish) -> None:
        """A new QoS 2 PUBLISH (DUP=0) of a message published at QoS 2 that this session
        already got at QoS 2, with no copy of it still owed: a duplicate the server
        caused, which the QoS 2 flow rules out [MQTT-4.3.3-2]."""
        if packet.qos != 2 or packet.dup:
            return
        if not any(
            client_id == session.client_id
            and generation == session.generation
            and qos == 2
            and delivery.message.qos == 2
            and delivery.message.topic == packet.topic
            and delivery.message.payload == packet.payload
            for client_id, generation, delivery, qos in self.delivered
        ):
            return
        raise self._reject(
            conn,
            "a second delivery of a QoS 2 message this client already got",
            list(QOS2_DUPLICATE_5) if conn.level == MQTT_5 else ["MQTT-4.3.3-2"],
            packet,
        )

    def _reject_packet_id_in_qos0(self, conn: Connection, packet: Publish) -> None:
        """A QoS 0 PUBLISH whose payload is a published one after two more bytes: a
        packet identifier, which a QoS 0 PUBLISH must not contain [MQTT-2.3.1-5] and
        which a receiver can only read as payload."""
        payload = packet.payload
        if packet.qos != 0 or len(payload) < 2 or (packet.topic, payload) in self.published:
            return
        if (packet.topic, payload[2:]) not in self.published:
            return
        raise self._reject(
            conn, "a packet identifier in a QoS 0 PUBLISH", ["MQTT-2.3.1-5"], packet
        )


def _retain_refs(conn: Connection, *, set_: bool) -> list[str]:
    """What a RETAIN flag other than the one due breaks, at the connection's level:
    3.1.1's [MQTT-3.3.1-9] (RETAIN 0 when forwarded) and [MQTT-3.3.1-8] (RETAIN 1 for a
    new subscription); 5.0's ``numbering.RETAIN_SET_5`` / ``RETAIN_CLEARED_5``."""
    if conn.level == MQTT_5:
        return list(RETAIN_SET_5 if set_ else RETAIN_CLEARED_5)
    return ["MQTT-3.3.1-9"] if set_ else ["MQTT-3.3.1-8"]
