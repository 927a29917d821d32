"""Faults made by monkeypatching the in-process broker: one realistic bug per entry.

The state machine hunts the faults of ``faults.py``; these further ones measure
the oracle (``power.py``) where neither those nor the wire faults of
``wire_faults.py`` reach: what a broker gets wrong in its sessions, wills,
retained messages, subscriptions and topic matching, bugs that no rewrite of
single frames can imitate. Each replaces or wraps one method of the
implementation (the product carries no fault switches) the way a real broker
has it wrong, and names the statements the bug breaks, chosen by the text of
the specification; ``CASCADES`` names those it breaks as a consequence, each
with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from mqttref.impl.broker import limits, matching
from mqttref.impl.broker import protocol as protocol_module
from mqttref.impl.broker import registry as registry_module
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.protocol import Connection
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import PacketSink, Session
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.topic import TopicServer
from mqttref.impl.codec.errors import ProtocolError, ReasonCode
from mqttref.impl.codec.packets import (
    SUBACK_FAILURE,
    Connect,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
)
from mqttref.impl.flow import ConnectionState
from mqttref.impl.message import Message
from tests.stateful.faults import Patcher

Inject = Callable[[Patcher], None]


# --- sessions ---------------------------------------------------------------------------


def _subscriptions_forgotten_on_resume(mp: Patcher) -> None:
    """A resumed persistent session keeps its queue but not its subscriptions (as if
    they belonged to the connection): session present 1, queued messages delivered,
    then nothing more."""
    original = SessionTable.open_session

    def open_session(self: SessionTable, connection: PacketSink, client_id: str,
                     connect: Connect, now: float) -> tuple[Session, bool]:
        session, present = original(self, connection, client_id, connect, now)
        if present:
            self.registry.remove_session(session)
        return session, present

    mp.setattr(SessionTable, "open_session", open_session)


def _session_discarded_on_violation_close(mp: Patcher) -> None:
    """A close for a protocol violation ends even a persistent session (mosquitto 2.0.11
    does so on a second CONNECT: docs/spec/findings.md, M6)."""
    original = SessionTable.connection_closed

    def connection_closed(self: SessionTable, connection: PacketSink, session: Session,
                          now: float) -> None:
        reason = getattr(connection, "close_reason", None) or ""
        if session.connection is connection and reason.startswith("protocol violation"):
            self.end_session(session)
            return
        original(self, connection, session, now)

    mp.setattr(SessionTable, "connection_closed", connection_closed)


def _inflight_dropped_offline(mp: Patcher) -> None:
    """Messages in flight (sent, not acknowledged) are kept with the connection, not the
    session: a persistent session that goes offline loses them."""
    original = Session.detach

    def detach(self: Session) -> None:
        if self.persistent:
            for packet_id in list(self.inflight):
                del self.inflight[packet_id]
                self.store.inflight_remove(self.client_id, packet_id)
        original(self)

    mp.setattr(Session, "detach", detach)


def _session_key_truncated(mp: Patcher) -> None:
    """Persistent sessions are stored under the first 12 characters of the client id
    (a fixed-width key column): two client ids sharing those share one session."""
    original = Connection.on_connect

    def on_connect(self: Connection, packet: Connect, now: float) -> None:
        if not packet.clean_session and len(packet.client_id) > 12:
            packet = attrs.evolve(packet, client_id=packet.client_id[:12])
        original(self, packet, now)

    mp.setattr(Connection, "on_connect", on_connect)


def _one_assigned_client_id(mp: Patcher) -> None:
    """Every client that sends an empty client id is assigned the same one, so a second
    such client takes the first one's session over."""
    mp.setattr(protocol_module, "generate_client_id", lambda: "mqttref-anonymous")


def _clean_session_ignored_on_takeover(mp: Patcher) -> None:
    """A takeover hands the connected session to the new connection as it is: clean
    session 1 is not processed when the client id is still connected (session present
    is computed from the flag alone, so it still says 0)."""
    original = SessionTable.open_session

    def open_session(self: SessionTable, connection: PacketSink, client_id: str,
                     connect: Connect, now: float) -> tuple[Session, bool]:
        existing = self.sessions.get(client_id)
        if connect.clean_session and existing is not None and existing.connection is not None:
            existing.connection.close("taken over", publish_will=True, now=now)
            if self.sessions.get(existing.client_id) is existing:
                return existing, False
        return original(self, connection, client_id, connect, now)

    mp.setattr(SessionTable, "open_session", open_session)


def _data_after_refused_connect(mp: Patcher) -> None:
    """The refusal of a CONNECT closes the connection only after the rest of the read
    has been handled: a PUBLISH that came with the CONNECT is routed."""

    def _handle_batch(self: Connection, packets: list[Any], now: float) -> None:
        for packet in packets:
            if self.state is ConnectionState.CLOSED:
                refused = (self.close_reason or "").startswith("CONNECT refused")
                if refused and isinstance(packet, Publish):
                    self.ports.router.publish(
                        Message(packet.topic, packet.payload, packet.qos, packet.retain), now)
                    continue
                return
            try:
                self.handle_packet(packet, now)
            except ProtocolError as exc:
                self.protocol_violation(exc)
                return

    mp.setattr(Connection, "_handle_batch", _handle_batch)


def _subscribe_replaces_all(mp: Patcher) -> None:
    """Each SUBSCRIBE is taken as the session's whole subscription set: the filters of
    earlier SUBSCRIBEs are dropped while the connection is open."""
    original = Registry.on_subscribe

    def on_subscribe(self: Registry, session: Session, packet: Subscribe, now: float) -> None:
        asked = {sub.topic_filter for sub in packet.subscriptions}
        for topic_filter in [f for f in session.subscriptions if f not in asked]:
            self.unsubscribe(session, topic_filter)
        original(self, session, packet, now)

    mp.setattr(Registry, "on_subscribe", on_subscribe)


# --- wills ------------------------------------------------------------------------------


def _will_published_twice(mp: Patcher) -> None:
    """The will is published when the connection closes and again when its socket is
    released: it is not removed once published."""
    original_close = Connection.close
    original_lost = Connection.connection_lost
    published: dict[int, Will] = {}

    def close(self: Connection, reason: str, *, publish_will: bool,
              now: float | None = None, **options: Any) -> None:
        will = self.will if publish_will and self.state is not ConnectionState.CLOSED else None
        original_close(self, reason, publish_will=publish_will, now=now, **options)
        if will is not None:
            published[id(self)] = will

    def connection_lost(self: Connection, now: float) -> None:
        original_lost(self, now)
        will = published.pop(id(self), None)
        if will is not None:
            self.ports.router.publish(
                Message(will.topic, will.payload, will.qos, will.retain), now)

    mp.setattr(Connection, "close", close)
    mp.setattr(Connection, "connection_lost", connection_lost)


def _will_remembered_by_client_id(mp: Patcher) -> None:
    """Wills are kept in a table by client id that a CONNECT with will flag 0 does not
    clear, and never removed: a later connection of that client id without a will
    publishes the old one when it ends."""
    original = Connection.on_connect
    wills: dict[str, Will] = {}

    def on_connect(self: Connection, packet: Connect, now: float) -> None:
        original(self, packet, now)
        if self.state is not ConnectionState.CONNECTED or self.client_id is None:
            return
        if packet.will is not None:
            wills[self.client_id] = packet.will
        elif self.client_id in wills:
            self.will = wills[self.client_id]

    mp.setattr(Connection, "on_connect", on_connect)


def _will_retain(value: bool) -> Inject:
    """Wills published with RETAIN ``value`` whatever the will retain flag says."""

    def inject(mp: Patcher) -> None:
        def publish_will(self: Connection, now: float) -> None:
            will = self.will
            assert will is not None
            self.ports.router.publish(Message(will.topic, will.payload, will.qos, value), now)

        mp.setattr(Connection, "publish_will", publish_will)

    return inject


def _will_after_disconnect(mp: Patcher) -> None:
    """DISCONNECT closes like a lost connection: the will is published."""

    def on_disconnect(self: Connection, packet: Any, now: float) -> None:
        self.close("the client disconnected", publish_will=True, now=now)

    mp.setattr(Connection, "on_disconnect", on_disconnect)


def _keep_alive_ignored(mp: Patcher) -> None:
    """No keep-alive timer after CONNECT: a silent client is never disconnected."""
    original = Connection.get_timer

    def get_timer(self: Connection) -> float | None:
        if self.state is ConnectionState.CONNECTED:
            return None
        return original(self)

    mp.setattr(Connection, "get_timer", get_timer)
    original_expired = Connection.keep_alive_expired

    def keep_alive_expired(self: Connection, now: float, *, connect: bool) -> None:
        if connect:
            original_expired(self, now, connect=connect)

    mp.setattr(Connection, "keep_alive_expired", keep_alive_expired)


# --- retained messages ------------------------------------------------------------------


def _retained_deleted_with_session(mp: Patcher) -> None:
    """Retained messages are filed under the session of the client that published them
    and deleted with it when that session ends."""
    original_publish = Connection.on_publish
    original_end = SessionTable.end_session
    retained_by: dict[str, set[str]] = {}

    def on_publish(self: Connection, packet: Publish, now: float) -> None:
        original_publish(self, packet, now)
        if packet.retain and packet.payload and self.client_id is not None:
            retained_by.setdefault(self.client_id, set()).add(packet.topic)

    def end_session(self: SessionTable, session: Session) -> None:
        for topic in sorted(retained_by.pop(session.client_id, set())):
            self.registry.topic_server(topic).set_retained(Message(topic, b"", QoS(0), True))
        original_end(self, session)

    mp.setattr(Connection, "on_publish", on_publish)
    mp.setattr(SessionTable, "end_session", end_session)


def _retained_qos12_not_stored(mp: Patcher) -> None:
    """Only QoS 0 retained messages are stored: a QoS 1 or 2 one is forwarded but not
    kept (an empty one still clears)."""
    original = TopicServer.set_retained

    def set_retained(self: TopicServer, message: Message) -> None:
        if message.payload and message.qos > QoS.AT_MOST_ONCE:
            return
        original(self, message)

    mp.setattr(TopicServer, "set_retained", set_retained)


def _qos0_retained_keeps_higher(mp: Patcher) -> None:
    """A QoS 0 retained message does not replace a retained QoS 1 or 2 one (the "more
    reliable" message is kept)."""
    original = TopicServer.set_retained

    def set_retained(self: TopicServer, message: Message) -> None:
        kept = self.retained
        if (message.payload and message.qos == QoS.AT_MOST_ONCE and kept is not None
                and kept.qos > QoS.AT_MOST_ONCE):
            return
        original(self, message)

    mp.setattr(TopicServer, "set_retained", set_retained)


def _last_value_cache(mp: Patcher) -> None:
    """The retained message is a last-value cache: a publish with RETAIN 0 to a topic that
    has a retained message replaces it."""
    original = TopicServer.publish

    def publish(self: TopicServer, message: Message, now: float) -> int:
        matched = original(self, message, now)
        if not message.retain and message.payload and self.retained is not None:
            self.set_retained(message)
        return matched

    mp.setattr(TopicServer, "publish", publish)


# --- subscriptions ----------------------------------------------------------------------


def _wildcard_refusal_forgets_hash(mp: Patcher) -> None:
    """Configured to refuse wildcard filters (``refuse_wildcard_subscriptions``), the
    broker tests only for '+': a filter with '#' is granted, and then, wildcards being
    off, looked up as a literal topic name, so that it matches nothing."""
    original_problem = limits.filter_problem
    original_subscribe = Registry.subscribe
    original_retained = Registry.send_retained

    def filter_problem(topic_filter: str, config: Config) -> str | None:
        problem = original_problem(topic_filter, config)
        if problem is None and "+" in topic_filter:
            return "a wildcard (refuse_wildcard_subscriptions)"
        return problem

    def subscribe(self: Registry, session: Session, topic_filter: str, qos: QoS,
                  *options: Any) -> int:
        if "#" in topic_filter and filter_problem(topic_filter, self.config) is None:
            return int(limits.granted_qos(qos, self.config))  # a literal name: never matches
        return original_subscribe(self, session, topic_filter, qos, *options)

    def send_retained(self: Registry, session: Session, topic_filter: str, granted: QoS,
                      now: float, *options: Any) -> None:
        if "#" not in topic_filter:
            original_retained(self, session, topic_filter, granted, now, *options)

    mp.setattr(registry_module, "filter_problem", filter_problem)
    mp.setattr(Registry, "subscribe", subscribe)
    mp.setattr(Registry, "send_retained", send_retained)


def _resubscribe_adds(mp: Patcher) -> None:
    """Subscriptions are a list: subscribing again to a filter adds a second
    subscription beside the first, and a matching message is delivered once for each."""
    original_subscribe = Registry.subscribe
    original_unsubscribe = Registry.unsubscribe
    original_publish = TopicServer.publish
    older: dict[str, list[tuple[str, QoS]]] = {}

    def subscribe(self: Registry, session: Session, topic_filter: str, qos: QoS,
                  *options: Any) -> int:
        before = session.subscriptions.get(topic_filter)
        code = original_subscribe(self, session, topic_filter, qos, *options)
        if before is not None and code != SUBACK_FAILURE:
            older.setdefault(session.client_id, []).append((topic_filter, before))
        return code

    def unsubscribe(self: Registry, session: Session, topic_filter: str) -> bool:
        kept = [s for s in older.get(session.client_id, []) if s[0] != topic_filter]
        older[session.client_id] = kept
        return original_unsubscribe(self, session, topic_filter)

    def publish(self: TopicServer, message: Message, now: float) -> int:
        matched = original_publish(self, message, now)
        for client_id, (session, _granted) in list(self.subscribers.items()):
            for topic_filter, qos in older.get(client_id, []):
                if matching.topic_matches(topic_filter, self.name):
                    session.deliver(message, min(message.qos, qos), now)
        return matched

    mp.setattr(Registry, "subscribe", subscribe)
    mp.setattr(Registry, "unsubscribe", unsubscribe)
    mp.setattr(TopicServer, "publish", publish)


def _subscribe_first_filter_only(mp: Patcher) -> None:
    """Of the filters of one SUBSCRIBE only the first is subscribed; the SUBACK still
    grants every one."""
    original = Registry.subscribe

    def on_subscribe(self: Registry, session: Session, packet: Subscribe, now: float) -> None:
        first, *rest = packet.subscriptions
        codes = [original(self, session, first.topic_filter, first.qos)]
        for sub in rest:
            if limits.filter_problem(sub.topic_filter, self.config) is not None:
                codes.append(SUBACK_FAILURE)
            else:
                codes.append(int(limits.granted_qos(sub.qos, self.config)))
        session.send(SubAck(packet.packet_id, tuple(codes)))
        if codes[0] != SUBACK_FAILURE:
            self.send_retained(session, first.topic_filter, QoS(codes[0]), now)

    mp.setattr(Registry, "on_subscribe", on_subscribe)


def _unsubscribe_by_matching(mp: Patcher) -> None:
    """UNSUBSCRIBE removes every subscription whose filter its filter matches as a topic
    name ('a/#' removes 'a/+' and 'a/b'), not only the identical one."""
    original = Registry.unsubscribe

    def unsubscribe(self: Registry, session: Session, topic_filter: str) -> bool:
        found = False
        for existing in list(session.subscriptions):
            if existing == topic_filter or matching.topic_matches(topic_filter, existing):
                found = original(self, session, existing) or found
        return found

    mp.setattr(Registry, "unsubscribe", unsubscribe)


def _unsubscribe_drops_inflight(mp: Patcher) -> None:
    """Unsubscribing purges the session's messages on the filter's topics, those in
    flight included: their deliveries are never completed."""
    original = Registry.unsubscribe

    def unsubscribe(self: Registry, session: Session, topic_filter: str) -> bool:
        removed = original(self, session, topic_filter)
        if removed:
            for packet_id, entry in list(session.inflight.items()):
                if matching.topic_matches(topic_filter, entry.message.topic):
                    del session.inflight[packet_id]
                    if session.persistent:
                        session.store.inflight_remove(session.client_id, packet_id)
        return removed

    mp.setattr(Registry, "unsubscribe", unsubscribe)


def _unsubscribe_first_filter_only(mp: Patcher) -> None:
    """Of the filters of one UNSUBSCRIBE only the first is removed. The UNSUBACK is as
    for a whole UNSUBSCRIBE: at 5.0 one Reason Code per filter, 0x00 for each the session
    subscribed to and 0x11 for the others (3.11.3), as if every one had been processed (a
    level-5 UNSUBACK without them is no UNSUBACK the codec can send)."""

    def on_unsubscribe(self: Registry, session: Session, packet: Unsubscribe,
                       now: float) -> None:
        first, *rest = packet.topic_filters
        codes = [ReasonCode.SUCCESS if self.unsubscribe(session, first)
                 else ReasonCode.NO_SUBSCRIPTION_EXISTED]
        codes += [ReasonCode.SUCCESS if f in session.subscriptions
                  else ReasonCode.NO_SUBSCRIPTION_EXISTED for f in rest]
        session.send(UnsubAck(packet.packet_id, tuple(codes)) if session.v5
                     else UnsubAck(packet.packet_id))

    mp.setattr(Registry, "on_unsubscribe", on_unsubscribe)


# --- delivery and matching --------------------------------------------------------------


def _first_subscriber_only(mp: Patcher) -> None:
    """The subscribers of a topic are treated as one shared group: each message goes to
    one of them (the first), not to every matching subscription. That one gets it as it
    would otherwise, with its Subscription Identifiers at 5.0 (only the other subscribers
    miss out)."""

    def publish(self: TopicServer, message: Message, now: float) -> int:
        if message.retain:
            self.set_retained(message)
        for client_id, (session, granted) in list(self.subscribers.items())[:1]:
            identifiers = () if self.identifiers is None else self.identifiers.get(client_id, ())
            session.deliver(message, min(message.qos, granted), now, identifiers=identifiers)
        return min(len(self.subscribers), 1)

    mp.setattr(TopicServer, "publish", publish)


def _case_insensitive_matching(mp: Patcher) -> None:
    """The subscription index folds case: 'Finance' matches 'finance' and 'FINANCE'."""
    original_add = matching.FilterTree.add
    original_remove = matching.FilterTree.remove
    original_match = matching.FilterTree.match
    original_matches = matching.topic_matches

    def add(self: matching.FilterTree, topic_filter: str, client_id: str, qos: QoS) -> None:
        original_add(self, topic_filter.casefold(), client_id, qos)

    def remove(self: matching.FilterTree, topic_filter: str, client_id: str) -> bool:
        return original_remove(self, topic_filter.casefold(), client_id)

    def match(self: matching.FilterTree, topic_name: str) -> dict[str, QoS]:
        return original_match(self, topic_name.casefold())

    def topic_matches(topic_filter: str, topic_name: str) -> bool:
        return original_matches(topic_filter.casefold(), topic_name.casefold())

    mp.setattr(matching.FilterTree, "add", add)
    mp.setattr(matching.FilterTree, "remove", remove)
    mp.setattr(matching.FilterTree, "match", match)
    mp.setattr(registry_module, "topic_matches", topic_matches)


PATCHED: dict[str, tuple[tuple[str, ...], Inject]] = {
    "subscriptions forgotten when a persistent session resumes": (
        ("MQTT-3.1.2-4", "MQTT-4.1.0-1"), _subscriptions_forgotten_on_resume),
    "persistent session discarded on a close for a protocol violation": (
        ("MQTT-3.1.2-4",), _session_discarded_on_violation_close),
    "unacknowledged messages dropped when a persistent session goes offline": (
        ("MQTT-4.1.0-1", "MQTT-4.4.0-1"), _inflight_dropped_offline),
    "retained messages deleted with the publisher's session": (
        ("MQTT-3.1.2-7",), _retained_deleted_with_session),
    "will published twice": (("MQTT-3.1.2-10",), _will_published_twice),
    "will remembered by client id": (("MQTT-3.1.2-12",), _will_remembered_by_client_id),
    "non-retained will published retained": (("MQTT-3.1.2-16",), _will_retain(True)),
    "retained will published non-retained": (("MQTT-3.1.2-17",), _will_retain(False)),
    "keep alive ignored": (("MQTT-3.1.2-24",), _keep_alive_ignored),
    "persistent sessions keyed by 12 characters of the client id": (
        ("MQTT-3.1.3-2",), _session_key_truncated),
    "one assigned client id for every empty client id": (
        ("MQTT-3.1.3-6",), _one_assigned_client_id),
    "clean session ignored on takeover": (
        ("MQTT-3.1.4-3", "MQTT-3.1.2-6"), _clean_session_ignored_on_takeover),
    "PUBLISH after a refused CONNECT routed": (("MQTT-3.1.4-5",), _data_after_refused_connect),
    "retained QoS 1 and 2 messages not stored": (
        ("MQTT-3.3.1-5",), _retained_qos12_not_stored),
    "QoS 0 retained message does not replace a QoS 1 one": (
        ("MQTT-3.3.1-7",), _qos0_retained_keeps_higher),
    "RETAIN 0 publish replaces the retained message": (("MQTT-3.3.1-12",), _last_value_cache),
    "wildcard refusal lets '#' through": (("MQTT-3.8.3-2",), _wildcard_refusal_forgets_hash),
    "subscribing again adds a second subscription": (("MQTT-3.8.4-3",), _resubscribe_adds),
    "only the first filter of a SUBSCRIBE subscribed": (
        ("MQTT-3.8.4-4",), _subscribe_first_filter_only),
    "UNSUBSCRIBE removes the filters its filter matches": (
        ("MQTT-3.10.4-1",), _unsubscribe_by_matching),
    "unsubscribing drops the deliveries in flight": (
        ("MQTT-3.10.4-3",), _unsubscribe_drops_inflight),
    "only the first filter of an UNSUBSCRIBE removed": (
        ("MQTT-3.10.4-6",), _unsubscribe_first_filter_only),
    "will published after DISCONNECT": (
        ("MQTT-3.14.4-3", "MQTT-3.1.2-10"), _will_after_disconnect),
    "each SUBSCRIBE replaces the session's subscriptions": (
        ("MQTT-4.1.0-2",), _subscribe_replaces_all),
    "message delivered to the first matching subscriber only": (
        ("MQTT-4.5.0-1",), _first_subscriber_only),
    "topic matching ignores case": (("MQTT-4.7.3-4",), _case_insensitive_matching),
}
"""Broker bugs made by monkeypatches: name -> (statements broken, inject)."""

CASCADES: dict[str, dict[str, str]] = {
    "subscriptions forgotten when a persistent session resumes": {
        "MQTT-3.1.4-3": "the processing of CleanSession 0 (3.1.2.4) resumes the session from"
        " its state; the subscriptions are left out",
        "MQTT-4.5.0-1": "a message matching a subscription the resumed session still has"
        " (granted, never unsubscribed) is added to no session",
    },
    "will remembered by client id": {
        "MQTT-3.1.2-10": "the will stays in the table once published (and after DISCONNECT):"
        " a later connection of the client id publishes it again",
    },
    "persistent sessions keyed by 12 characters of the client id": {
        "MQTT-3.1.2-4": "a client id without a session resumes the one stored under the same"
        " 12 characters instead of getting a new one",
        "MQTT-3.1.4-3": "CleanSession 0 is processed on another client id's session",
        "MQTT-3.2.2-3": "for a client id without a session, CONNACK says session present 1 from"
        " another client id's session",
        "MQTT-3.1.2-6": "clean session 1 (kept under the full client id) does not discard the"
        " persistent session stored under its first 12 characters, which a later clean"
        " session 0 of the client id resumes",
        "MQTT-3.1.4-2": "a clean session 1 CONNECT (full client id) does not take over the"
        " connection of a persistent session of the same client id (stored under the first"
        " 12 characters)",
    },
    "retained QoS 1 and 2 messages not stored": {
        "MQTT-3.3.1-6": "the QoS 1 or 2 message that must be retained is the topic's last"
        " retained message, and new subscriptions are not sent it",
        "MQTT-3.1.2-17": "a QoS 1 will with Will Retain 1 is not stored as a retained message",
    },
    "only the first filter of a SUBSCRIBE subscribed": {
        "MQTT-3.1.2-5": "QoS 1 and 2 messages matching a filter the SUBACK granted (but never"
        " subscribed) are not stored for the offline session",
        "MQTT-3.3.1-6": "a subscription the SUBACK granted but never made is not sent the"
        " retained messages of its topics",
        "MQTT-3.3.5-1": "of overlapping filters granted in one SUBSCRIBE only the first"
        " delivers, at its own QoS, not the highest",
        "MQTT-4.5.0-1": "messages matching the granted filters after the first are added to"
        " no session",
    },
    "wildcard refusal lets '#' through": {
        "MQTT-4.5.0-1": "a granted '#' filter matches nothing: the messages it matches are"
        " added to no session",
    },
    "each SUBSCRIBE replaces the session's subscriptions": {
        "MQTT-4.5.0-1": "a message matching the filter of an earlier SUBSCRIBE (dropped, never"
        " unsubscribed) is added to no session",
    },
    "topic matching ignores case": {
        "MQTT-3.3.2-3": "a message whose topic name differs from the filter only in case is"
        " delivered: its topic name does not match the subscription's filter by 4.7",
    },
}
"""Fault name -> statements it breaks as a consequence, each with the reason."""
