"""Faults of the broker's MQTT 5.0 behaviour, to prove the level-5 state machine can fail.

Like ``faults.py`` (whose ``Fault`` they reuse), each fault replaces or wraps one
method of the implementation for one hunt, so that the broker breaks one rule of
MQTT 5.0 the way a real broker could: Retain As Published ignored, a Subscription
Identifier lost or altered, Session Present wrong, a session dropped early, a
Topic Alias forgotten or sent where the client allowed none, DUP set on a first
delivery, a SUBACK granting more than asked or out of order, a CONNACK with
another packet's reason code, a shared message given to two members. They sit in
different parts: the session's delivery, options and frames, the registry's
SUBSCRIBE, the session table, the shared groups, the inbound PUBLISH and the
connection's terms and sends. Each declares ids of
oracle/statements-5.0.json (``breaks``, and its consequences in ``cascades``);
``test_faults_v5.py`` asserts that ``BrokerMachine5`` finds every one of ``FAULTS5``
with a verdict naming one of them, within the ``ci`` budget.
"""

from __future__ import annotations

from typing import Any

import attrs

from mqttref.impl.broker import closing, packet_size
from mqttref.impl.broker.protocol import Connection
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.shared import SharedGroups
from mqttref.impl.broker.shared import _message_of as shared_message_of
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import (
    ConnAck,
    Disconnect,
    Packet,
    ProtocolLevel,
    Publish,
    QoS,
    SubAck,
    Subscribe,
)
from mqttref.impl.flow import OutboundState
from mqttref.impl.message import Message
from tests.stateful.faults import Fault, Patcher

EVERY_SIZE = 268_435_460
"""Beyond the largest packet MQTT can encode: a Maximum Packet Size nothing exceeds."""


def _no_local_ignored(mp: Patcher) -> None:
    original = Session._by_options

    def by_options(self: Session, message: Message, qos: QoS, identifiers: tuple[int, ...],
                   options: dict[str, Any]) -> Any:
        stripped = {f: attrs.evolve(o, no_local=False) for f, o in options.items()}
        return original(self, message, qos, identifiers, stripped)

    mp.setattr(Session, "_by_options", by_options)


def _retain_as_published_ignored(mp: Patcher) -> None:
    original = Session._by_options

    def by_options(self: Session, message: Message, qos: QoS, identifiers: tuple[int, ...],
                   options: dict[str, Any]) -> Any:
        resolved = original(self, message, qos, identifiers, options)
        if resolved is None:
            return None
        qos, identifiers, _keep = resolved
        return qos, identifiers, False  # RETAIN always cleared on forwarding

    mp.setattr(Session, "_by_options", by_options)


def _subscription_identifier_missing(mp: Patcher) -> None:
    original = Session.deliver

    def deliver(self: Session, message: Message, qos: QoS, now: float, **options: Any) -> None:
        options.pop("identifiers", None)
        original(self, message, qos, now, **options)

    mp.setattr(Session, "deliver", deliver)


def _identifier_not_stored(mp: Patcher) -> None:
    original = Registry.on_subscribe

    def on_subscribe(self: Registry, session: Session, packet: Subscribe, now: float) -> None:
        # The SUBSCRIBE's Subscription Identifier read and thrown away.
        bare = attrs.evolve(packet.properties, subscription_identifiers=())
        original(self, session, attrs.evolve(packet, properties=bare), now)

    mp.setattr(Registry, "on_subscribe", on_subscribe)


def _retain_always_published(mp: Patcher) -> None:
    original = Session.deliver

    def deliver(self: Session, message: Message, qos: QoS, now: float, *,
                retain: bool = False, **options: Any) -> None:
        # As if every 5.0 subscription had Retain As Published.
        original(self, message, qos, now, retain=retain or (self.v5 and message.retain),
                 **options)

    mp.setattr(Session, "deliver", deliver)


def _present_despite_clean_start(mp: Patcher) -> None:
    original = SessionTable.open_session

    def open_session(self: SessionTable, connection: Any, client_id: str, connect: Any,
                     now: float) -> tuple[Session, bool]:
        known = client_id in self.sessions
        session, present = original(self, connection, client_id, connect, now)
        if connect.protocol_level is ProtocolLevel.MQTT_5 and known:
            # "The client id is known", whatever Clean Start said [MQTT-3.2.2-2] or
            # whether its session was kept or ended [MQTT-3.2.2-3].
            present = True
        return session, present

    mp.setattr(SessionTable, "open_session", open_session)


def _identifier_altered(mp: Patcher) -> None:
    original = Session.publish_frame

    def publish_frame(self: Session, out: Any, now: float, *, dup: bool = False
                      ) -> bytes | None:
        ids = out.properties.subscription_identifiers
        if ids:  # each identifier off by one on the wire
            properties = attrs.evolve(out.properties,
                                      subscription_identifiers=tuple(i + 1 for i in ids))
            out = out._replace(properties=properties)
        return original(self, out, now, dup=dup)

    mp.setattr(Session, "publish_frame", publish_frame)


def _dup_on_first_delivery(mp: Patcher) -> None:
    original = Session.publish_frame

    def publish_frame(self: Session, out: Any, now: float, *, dup: bool = False
                      ) -> bytes | None:
        return original(self, out, now, dup=dup or out.qos > QoS.AT_MOST_ONCE)

    mp.setattr(Session, "publish_frame", publish_frame)


def _higher_qos_granted5(mp: Patcher) -> None:
    original = Registry.subscribe

    def subscribe(self: Registry, session: Session, topic_filter: str, qos: QoS,
                  *options: Any) -> int:
        if session.v5:
            qos = QoS(min(int(qos) + 1, 2))
        return original(self, session, topic_filter, qos, *options)

    mp.setattr(Registry, "subscribe", subscribe)


def _suback_codes_reversed(mp: Patcher) -> None:
    original = Session.send

    def send(self: Session, packet: Packet) -> None:
        if self.v5 and isinstance(packet, SubAck):
            packet = attrs.evolve(packet, return_codes=packet.return_codes[::-1])
        original(self, packet)

    mp.setattr(Session, "send", send)


def _present_zero_on_resume(mp: Patcher) -> None:
    original = Connection.send

    def send(self: Connection, packet: Packet) -> None:
        if self.terms is not None and isinstance(packet, ConnAck) and packet.session_present:
            packet = attrs.evolve(packet, session_present=False)
        original(self, packet)

    mp.setattr(Connection, "send", send)


def _connack_code_not_connack(mp: Patcher) -> None:
    original = Connection.send

    def send(self: Connection, packet: Packet) -> None:
        if (self.terms is not None and isinstance(packet, ConnAck)
                and packet.return_code == ReasonCode.SUCCESS):
            packet = attrs.evolve(packet, return_code=0x01)  # Granted QoS 1: a SUBACK code
        original(self, packet)

    mp.setattr(Connection, "send", send)


def _retained_copy_without_identifier(mp: Patcher) -> None:
    original = Registry.send_retained

    def send_retained(self: Registry, *args: Any, **_identifier: Any) -> None:
        session, topic_filter, granted, now = args[:4]  # the identifier (5th) left out
        original(self, session, topic_filter, granted, now, None)

    mp.setattr(Registry, "send_retained", send_retained)


def _identifier_invented(mp: Patcher) -> None:
    original = Session.deliver

    def deliver(self: Session, message: Message, qos: QoS, now: float, *,
                identifiers: tuple[int, ...] = (), **options: Any) -> None:
        if self.v5 and not identifiers:
            identifiers = (7,)  # an identifier no SUBSCRIBE gave
        original(self, message, qos, now, identifiers=identifiers, **options)

    mp.setattr(Session, "deliver", deliver)


def _receive_maximum_exceeded(mp: Patcher) -> None:
    original = Session.attach

    def attach(self: Session, connection: Any, now: float) -> None:
        original(self, connection, now)
        self.window = self.config.max_inflight  # the client's Receive Maximum forgotten
        self.pump(now)

    mp.setattr(Session, "attach", attach)


def _expiry_interval_dropped(mp: Patcher) -> None:
    original = Session.publish_frame

    def publish_frame(self: Session, out: Any, now: float, *, dup: bool = False
                      ) -> bytes | None:
        if out.expires_at is None:
            return original(self, out, now, dup=dup)
        # The message still expires here, but its subscribers are not told when.
        properties = attrs.evolve(out.properties, message_expiry_interval=None)
        return original(self, out._replace(properties=properties, expires_at=None), now, dup=dup)

    mp.setattr(Session, "publish_frame", publish_frame)


def _expired_message_forwarded(mp: Patcher) -> None:
    original = Session.pump

    def pump(self: Session, now: float) -> None:
        queue = self._queue
        if queue:
            for index, (seq, out) in enumerate(queue):
                if out.expires_at is not None and out.expires_at <= now:
                    queue[index] = (seq, out._replace(expires_at=now + 1))  # never dropped
        original(self, now)

    mp.setattr(Session, "pump", pump)


def _session_dropped_before_expiry(mp: Patcher) -> None:
    original = SessionTable._disconnected

    def disconnected(self: SessionTable, client_id: str, at: float) -> None:
        original(self, client_id, at)
        if client_id in self.expiry_intervals:  # a 5.0 session with an interval above 0
            self.deadlines.set(client_id, at)  # expires the moment its connection closes

    mp.setattr(SessionTable, "_disconnected", disconnected)


def _session_kept_past_expiry(mp: Patcher) -> None:
    def expire(self: SessionTable, wall_now: float) -> None:
        return None

    def expired(self: SessionTable, session: Session) -> bool:
        return False

    mp.setattr(SessionTable, "expire", expire)
    mp.setattr(SessionTable, "_expired", expired)


def _will_before_delay(mp: Patcher) -> None:
    original = Connection.publish_will

    def publish_will(self: Connection, now: float) -> None:
        will = self.will
        if will is not None and will.properties.will_delay_interval:
            self.will = attrs.evolve(will, properties=attrs.evolve(
                will.properties, will_delay_interval=None))
        original(self, now)

    mp.setattr(Connection, "publish_will", publish_will)


def _will_despite_return(mp: Patcher) -> None:
    original = SessionTable.open_session

    def open_session(self: SessionTable, connection: Any, client_id: str, connect: Any,
                     now: float) -> tuple[Session, bool]:
        pending = self.delayed_wills.get(client_id)
        session, present = original(self, connection, client_id, connect, now)
        if pending is not None and present:
            self.delayed_wills[client_id] = pending  # the client came back: still sent
        return session, present

    mp.setattr(SessionTable, "open_session", open_session)


def _will_on_normal_disconnect(mp: Patcher) -> None:
    original = Connection.on_disconnect

    def on_disconnect(self: Connection, packet: Disconnect, now: float) -> None:
        if self.terms is not None and packet.reason_code == ReasonCode.SUCCESS:
            packet = attrs.evolve(packet, reason_code=0x04)  # as if it asked for its will
        original(self, packet, now)

    mp.setattr(Connection, "on_disconnect", on_disconnect)


def _inbound_alias_forgotten(mp: Patcher) -> None:
    original = Connection._resolve_alias

    def resolve_alias(self: Connection, packet: Publish, alias: int) -> Publish:
        if packet.topic:
            return packet  # the alias is not recorded: a later PUBLISH by it is refused
        return original(self, packet, alias)

    mp.setattr(Connection, "_resolve_alias", resolve_alias)


def _aliases_beyond_maximum(mp: Patcher) -> None:
    def topic_alias_maximum(self: Connection) -> int:
        return 0 if self.terms is None else 2  # whatever the client's CONNECT said

    mp.setattr(Connection, "topic_alias_maximum", property(topic_alias_maximum))


def _packet_size_ignored(mp: Patcher) -> None:
    original = Session.attach

    def attach(self: Session, connection: Any, now: float) -> None:
        original(self, connection, now)
        if self.v5:
            self.max_packet = EVERY_SIZE  # the client's Maximum Packet Size forgotten

    mp.setattr(Session, "attach", attach)


def _user_properties_reordered(mp: Patcher) -> None:
    original = Session.on_publish

    def on_publish(self: Session, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        user = packet.properties.user_properties  # only 5.0 has them
        if len(user) > 1:
            packet = attrs.evolve(packet, properties=attrs.evolve(
                packet.properties, user_properties=tuple(reversed(user))))
        return original(self, packet, now, defer_ack=defer_ack)

    mp.setattr(Session, "on_publish", on_publish)


def _retain_handling_ignored(mp: Patcher) -> None:
    original = Registry.on_subscribe

    def on_subscribe(self: Registry, session: Session, packet: Subscribe, now: float) -> None:
        every = tuple(attrs.evolve(s, retain_handling=0) for s in packet.subscriptions)
        original(self, session, attrs.evolve(packet, subscriptions=every), now)

    mp.setattr(Registry, "on_subscribe", on_subscribe)


def _expiry_in_server_disconnect(mp: Patcher) -> None:
    original = packet_size.fit  # what closing.py imported

    def fit(packet: Packet, maximum: int | None) -> bytes | None:
        if isinstance(packet, Disconnect):
            packet = attrs.evolve(packet, properties=attrs.evolve(
                packet.properties, session_expiry_interval=0))
        return original(packet, maximum)

    mp.setattr(closing, "fit", fit)


def _shared_qos2_handed_over(mp: Patcher) -> None:
    original = SharedGroups.hand_over

    def hand_over(self: SharedGroups, session: Session, now: float) -> int:
        # The ending member's unacknowledged QoS 2 copies go to another member too, as
        # its QoS 1 ones do: a message given to two members of the group.
        for entry in list(session.inflight.values()):
            out = entry.message
            group = self.groups.get(out.share or "")
            if group is None or entry.state is not OutboundState.AWAITING_PUBREC:
                continue
            member = group.pick(leaving=session.client_id)
            if member is not None:
                self.send(group, member, shared_message_of(out), now)
        return original(self, session, now)

    mp.setattr(SharedGroups, "hand_over", hand_over)


FAULTS5: tuple[Fault, ...] = (
    Fault("retain_as_published_ignored", "session options", ("MQTT-3.3.1-13",),
          _retain_as_published_ignored),
    Fault("subscription_identifier_missing", "session delivery", ("MQTT-3.3.4-3",),
          _subscription_identifier_missing, {
              "MQTT-3.3.4-4": "a single copy carries none of the matching identifiers",
              "MQTT-3.3.4-5": "each of several copies lacks its subscription's identifier",
          }),
    Fault("identifier_not_stored", "registry subscribe", ("MQTT-3.3.4-3",),
          _identifier_not_stored, {
              "MQTT-3.3.4-4": "a single copy carries none of the matching identifiers",
              "MQTT-3.3.4-5": "each of several copies lacks its subscription's identifier",
          }),
    Fault("retain_always_published", "session delivery", ("MQTT-3.3.1-12",),
          _retain_always_published),
    Fault("present_despite_clean_start", "session table", ("MQTT-3.2.2-2", "MQTT-3.2.2-3"),
          _present_despite_clean_start),
    Fault("session_dropped_before_expiry", "session table", ("MQTT-3.1.2-23",),
          _session_dropped_before_expiry,
          {"MQTT-3.2.2-3": "the resumed client is told there is no session"}),
    Fault("inbound_alias_forgotten", "inbound publish", ("MQTT-3.3.2-12",),
          _inbound_alias_forgotten, {
              "MQTT-3.14.2-1": "the valid alias is answered with a DISCONNECT whose reason"
                               " code does not describe what happened",
              "MQTT-4.13.2-1": "the connection is closed with an error where none is owed",
          }),
    Fault("aliases_beyond_maximum", "connection terms", ("MQTT-3.1.2-27",),
          _aliases_beyond_maximum,
          {"MQTT-3.3.2-11": "an alias above the client's Topic Alias Maximum",
           "MQTT-3.1.2-26": "an alias above the client's Topic Alias Maximum"}),
    Fault("identifier_altered", "session frames", ("MQTT-3.3.4-3",), _identifier_altered,
          {"MQTT-3.3.4-4": "the single copy carries identifiers of no subscription",
           "MQTT-3.3.4-5": "a copy carries another identifier than its subscription's"}),
    Fault("dup_on_first_delivery", "session frames",
          ("MQTT-3.3.1-3", "MQTT-4.3.2-2", "MQTT-4.3.3-2"), _dup_on_first_delivery,
          {"MQTT-3.3.1-1": "DUP 1 where the PUBLISH is no re-delivery"}),
    Fault("higher_qos_granted5", "registry subscribe", ("MQTT-3.8.4-7",),
          _higher_qos_granted5,
          {"MQTT-3.8.4-8": "messages go at the granted QoS, above the requested one",
           "MQTT-3.9.3-2": "the SUBACK code is no grant for the request"}),
    Fault("suback_codes_reversed", "session send", ("MQTT-3.9.3-1",), _suback_codes_reversed,
          {"MQTT-3.8.4-7": "each code then answers another request: not its grant",
           "MQTT-3.9.3-2": "a code may grant more than its own request asked"}),
    Fault("present_zero_on_resume", "connection send", ("MQTT-3.2.2-3",),
          _present_zero_on_resume),
    Fault("connack_code_not_connack", "connection send", ("MQTT-3.2.2-8",),
          _connack_code_not_connack,
          {"MQTT-3.14.0-1": "the codec refuses such a CONNACK, so the broker closes with"
                            " DISCONNECT where no accepting CONNACK went first"}),
    Fault("identifier_invented", "session delivery", ("MQTT-3.3.4-3",), _identifier_invented,
          {"MQTT-3.3.4-4": "the single copy carries an identifier of no subscription",
           "MQTT-3.3.4-5": "a copy carries an identifier its subscription does not have"}),
    Fault("no_local_ignored", "session options", ("MQTT-3.8.3-3",), _no_local_ignored),
    Fault("receive_maximum_exceeded", "session window", ("MQTT-3.3.4-9",),
          _receive_maximum_exceeded,
          {"MQTT-4.9.0-2": "the send quota is not kept, so it never stops sending at 0"}),
    Fault("expiry_interval_dropped", "session frames", ("MQTT-3.3.2-6",),
          _expiry_interval_dropped,
          {"MQTT-3.3.2-5": "the copy loses its expiry with its interval, so a message"
                           " that expired while queued is sent all the same"}),
    Fault("will_before_delay", "will", ("MQTT-3.1.2-8",), _will_before_delay,
          {"MQTT-3.1.3-9": "the will is out before the client could come back"}),
    Fault("shared_qos2_handed_over", "shared groups", ("MQTT-4.8.2-5",),
          _shared_qos2_handed_over),
    Fault("retained_copy_without_identifier", "registry retained", ("MQTT-3.3.4-3",),
          _retained_copy_without_identifier, {
              "MQTT-3.3.4-5": "the retained copy lacks its subscription's identifier",
          }),
    Fault("expired_message_forwarded", "session queue", ("MQTT-3.3.2-5",),
          _expired_message_forwarded,
          {"MQTT-3.3.2-6": "the expired message goes with an interval it no longer has"}),
    Fault("session_kept_past_expiry", "session table", ("MQTT-4.1.0-2",),
          _session_kept_past_expiry,
          {"MQTT-3.2.2-3": "the client is told its expired session is still there"}),
    Fault("will_despite_return", "session table wills", ("MQTT-3.1.3-9",),
          _will_despite_return),
    Fault("will_on_normal_disconnect", "disconnect", ("MQTT-3.14.4-3",),
          _will_on_normal_disconnect),
    Fault("packet_size_ignored", "session attach", ("MQTT-3.1.2-24",), _packet_size_ignored,
          {"MQTT-3.1.2-25": "the packet too large is sent instead of discarded"}),
    Fault("user_properties_reordered", "inbound session", ("MQTT-3.3.2-18",),
          _user_properties_reordered,
          {"MQTT-3.3.2-17": "the User Properties are forwarded altered"}),
    Fault("retain_handling_ignored", "registry", ("MQTT-3.3.1-11",), _retain_handling_ignored,
          {"MQTT-3.3.1-10": "Retain Handling 1 resends for an existing subscription"}),
    Fault("expiry_in_server_disconnect", "close", ("MQTT-3.14.2-2",),
          _expiry_in_server_disconnect),
)
"""The level-5 faults ``test_faults_v5`` proves the machine finds within its ``ci``
budget; ``hunt --level 5`` injects one by name. The last nine need a few actions in a
row (a retained message and a second SUBSCRIBE, a size-limited subscriber, a session
away past its intervals, a will's client back or gone normally): the stories of
``stories5``, ``stories5_messages``, ``stories5_properties`` and ``stories5_sessions``
line them up."""

__all__ = ["FAULTS5"]
