"""Level-5 PUBLISH and SUBSCRIBE in the broker model: what a 5.0 subscriber gets.

Theory of operation: the 3.1.1 routing (``messages``) decides which sessions a
message is owed to; this mixin judges what 5.0 adds to each copy and to the
answers around it: Reason Codes as allowed sets (``reason_codes``), the
message's properties forwarded unaltered (3.3.2.3), Subscription Identifiers
(3.3.4), the subscription options (No Local, Retain As Published, Retain
Handling), the client's limits (Receive Maximum as the server's ``SendQuota``,
Topic Alias Maximum with ``TopicAliases`` reading the server's aliases before a
PUBLISH is matched, Maximum Packet Size), and Message Expiry on the model clock.
"""


from __future__ import annotations

import copy
from collections.abc import Callable

import attrs

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
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
from mqttref.model.errors import Violation
from mqttref.model.events import Observation
from mqttref.model.records import (
    PRIMARY,
    Accepted,
    Connection,
    Delivery,
    Message,
    RetainedSlot,
    Session,
)
from mqttref.model.shared_routing import SharedRouting
from mqttref.model.topics import matches, topic_filter_problem
from mqttref.model.v5 import reason_codes
from mqttref.model.v5.disconnect import Situation as Why
from mqttref.model.v5.flow_control import Acknowledgement, SendQuota
from mqttref.model.v5.qos2_receiver import (
    PACKET_IDENTIFIER_NOT_FOUND,
    SUCCESS,
    Qos2Receiver5,
    Qos2ReceiverState5,
)
from mqttref.model.v5.reason_codes import PacketKind, Situation
from mqttref.model.v5.topic_alias import TopicAliases

MQTT_5 = 5
"""The Protocol Level of MQTT 5.0 (3.1.2.2)."""


_FORWARDED = (
    ("payload_format_indicator", "MQTT-3.3.2-4"),
    ("content_type", "MQTT-3.3.2-20"),
    ("response_topic", "MQTT-3.3.2-15"),
    ("correlation_data", "MQTT-3.3.2-16"),
    ("user_properties", "MQTT-3.3.2-17"),
)
"""Properties a subscriber gets unaltered, and the statement that says so."""

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


class Level5Publish(SharedRouting):
    """Mixed into ``BrokerModel`` (through ``Level5``): level-5 copies and answers."""

    connections: dict[str, Connection]
    sessions: dict[str, Session]
    now: float
    expiry_margin: float
    origins: dict[tuple[str, bytes], set[str]]
    expired: set[tuple[str, int]]
    message_seqs: dict[tuple[str, bytes], list[int]]
    retained: dict[str, RetainedSlot]

    def _reject(
        self, conn: Connection, message: str, refs: list[str] | tuple[str, ...],
        arrived: Observation,
    ) -> Violation:
        raise NotImplementedError

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
            if isinstance(accepted, Accepted) and matched and not self._routed_to_groups(
                accepted.message
            ) and not any(self._certainly_exists(c) for c in accepted.sessions):
                # Every matching session may have expired (inside the margin): the server
                # may know there are no matching subscribers, or not.
                facts |= reason_codes.publish_ack_situations(matched=False)
            kind = PacketKind.PUBACK if isinstance(packet, PubAck) else PacketKind.PUBREC
        elif isinstance(packet, PubComp) and code in (SUCCESS, PACKET_IDENTIFIER_NOT_FOUND):
            self._check_pubcomp5(conn, session, packet)
            return
        else:
            flows = session.flows.outgoing if isinstance(packet, PubRel) else (
                session.flows.incoming)
            facts = reason_codes.packet_identifier_situations(known=packet_id in flows)
            kind = PacketKind.PUBREL if isinstance(packet, PubRel) else PacketKind.PUBCOMP
        try:
            reason_codes.check(conn.client, kind, facts, code)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None

    def _check_pubcomp5(self, conn: Connection, session: Session, packet: PubComp) -> None:
        """A PUBCOMP 0x00 or 0x92 judged by ``qos2_receiver.Qos2Receiver5``: an exchange
        the server accepted (its last PUBREC below 0x80) is its own, so only 0x00
        [MQTT-4.3.3-11] (also after a refusal and a new PUBLISH [MQTT-4.3.3-9]); a
        PUBREL for no exchange (none, or one a refusing PUBREC ended) may get 0x00 or
        0x92 (3.7.2.1)."""
        codes = session.pubrecs.get(packet.packet_id, [])
        accepted = bool(codes) and codes[-1] < 0x80
        receiver = Qos2Receiver5(
            packet.packet_id, conn.client,
            state=Qos2ReceiverState5.PUBCOMP_DUE if accepted
            else Qos2ReceiverState5.UNKNOWN_RELEASE,
            refused=any(c >= 0x80 for c in codes),
        )
        try:
            receiver.pubcomp(packet.reason_code)
        except Violation as error:
            raise self._reject(conn, error.detail, error.refs, packet) from None

    def _certainly_exists(self, client_id: str) -> bool:
        """Whether the session of ``client_id`` exists now for certain: not a level-5
        session past its Session Expiry Interval, inside the margin [MQTT-4.1.0-2]."""
        session = self.sessions.get(client_id)
        if session is None:
            return False
        return session.v5 is None or False not in session.v5.exists()

    @staticmethod
    def _retract(accepted: object) -> None:
        """The server refused the client's PUBLISH (PUBACK or PUBREC 0x80 or above):
        it may not have forwarded it, so no copy of it is owed."""
        if isinstance(accepted, Accepted):
            for delivery in accepted.deliveries:
                delivery.required = delivery.required_on_release = False

    @staticmethod
    def _fits5(delivery: Delivery, packet: Publish) -> bool:
        """Whether ``packet`` carries this copy's forwarded properties and identifiers."""
        sent, held = packet.properties, delivery.message.properties
        return (
            frozenset(sent.subscription_identifiers) == delivery.identifiers
            and all(getattr(sent, name) == getattr(held, name) for name, _ in _FORWARDED)
            and (sent.message_expiry_interval is None) == (held.message_expiry_interval is None)
        )

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
        when it is an error the server must close on: a QoS above the Maximum QoS its
        CONNACK announced (0x9B QoS not supported, 3.3.1.2: the client broke
        [MQTT-3.2.2-11]), 0x94 for an alias of 0 or above the CONNACK's maximum, 0x82
        for one alone that maps nothing."""
        connack5 = conn.connack5
        if connack5 is not None and packet.qos > connack5.maximum_qos:
            conn.disconnect_cause = str(Why.QOS_NOT_SUPPORTED)
            return None
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
        stored = any(
            m.topic == packet.topic and m.payload == packet.payload
            for slot in self.retained.values()
            for m in slot.candidates()
        )
        in_group = any(
            matches(f.split("/", 2)[2], packet.topic) for f in session.shared if f.count("/") >= 2
        )
        forbidden: list[tuple[str, str]] = []
        if own and matching and all(s.no_local for s in matching):
            forbidden.append(("the client's own message under No Local", "MQTT-3.8.3-3"))
        if packet.retain and stored and matching:
            if all(s.retain_handling == 2 for s in matching):
                forbidden.append(("a retained message under Retain Handling 2", "MQTT-3.3.1-11"))
            elif all(s.retain_handling == 1 and s.replaced for s in matching):
                forbidden.append((
                    "a retained message under Retain Handling 1 to an existing subscription",
                    "MQTT-3.3.1-10",
                ))
        if forbidden:
            # The client's own retained message under No Local and a Retain Handling that
            # forbids it: either option alone forbids the copy, so the verdict names both
            # (a broker ignoring only one of them breaks that one; naming only No Local
            # blamed 3.8.3-3 on a broker that honours it and ignores Retain Handling).
            raise self._reject(conn, ", and ".join(why for why, _ in forbidden),
                               [sid for _, sid in forbidden], packet)
        if packet.retain and stored and in_group and not matching:
            raise self._reject(
                conn,
                "a retained message for a Shared Subscription (3.8.4: none is sent; no"
                " statement id says so)",
                [],
                packet,
            )
        same = [d for d in session.pending
                if (d.message.topic, d.message.payload) == (packet.topic, packet.payload)
                and d.subscription is None and int(packet.qos) in d.allowed_qos]
        if same and all(d.retain != packet.retain for d in same):
            published_retained = any(d.message.retain for d in same)
            as_published = packet.retain == published_retained
            raise self._reject(
                conn, "RETAIN against the subscription's Retain As Published",
                ["MQTT-3.3.1-12"] if as_published else ["MQTT-3.3.1-13"], packet)
