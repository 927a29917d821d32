"""Faults injected into the real broker, to prove the state machine can fail.

Each fault replaces or wraps one method of the implementation for one test
run (through ``monkeypatch``; the product code carries no fault switches) so
that the broker breaks one rule of the specification the way real brokers
have. They sit in different parts: the session's QoS flows and queue, the
topic server, the registry, the matching tries, the connection and the broker.
Each declares the statements it breaks (``breaks``, read off the fault and the
specification, and its consequences in ``cascades``); ``test_faults.py`` asserts
that the machine finds every one of them with a verdict naming one of those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from mqttref.impl.broker import matching
from mqttref.impl.broker.protocol import HANDLERS, Connection
from mqttref.impl.broker.registry import Registry
from mqttref.impl.broker.session import PacketSink, Session
from mqttref.impl.broker.sessions import SessionTable
from mqttref.impl.broker.topic import TopicServer
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import PacketType, Publish, QoS
from mqttref.impl.flow import ConnectionState, OutboundState
from mqttref.impl.message import Message


class Patcher(Protocol):
    """What ``pytest.MonkeyPatch`` offers (kept abstract: this module has no pytest)."""

    def setattr(self, target: Any, name: str, value: Any, raising: bool = ...) -> None: ...

    def setitem(self, dic: Any, name: Any, value: Any) -> None: ...


@attrs.frozen
class Fault:
    name: str
    part: str
    breaks: tuple[str, ...]
    """The normative statements (ids of oracle/statements-3.1.1.json) the broken
    broker violates directly. A hunt's finding counts only when the model's verdict
    names one of them (or of ``cascades``)."""
    inject: Callable[[Patcher], None]
    cascades: Mapping[str, str] = attrs.field(factory=dict)
    """Statements the broken broker also violates as a consequence: id -> why."""

    @property
    def declared(self) -> frozenset[str]:
        """Every statement the fault declares: what a finding must name one of."""
        return frozenset(self.breaks) | frozenset(self.cascades)


def _drop_puback(mp: Patcher) -> None:
    original = Session.on_publish

    def on_publish(self: Session, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        if packet.qos == QoS.AT_LEAST_ONCE:
            return Message(packet.topic, packet.payload, packet.qos, packet.retain)  # no PUBACK
        return original(self, packet, now, defer_ack=defer_ack)

    mp.setattr(Session, "on_publish", on_publish)


def _forget_dup(mp: Patcher) -> None:
    original = Session.resend

    def resend(self: Session, entry: Any, now: float) -> None:
        if entry.state is OutboundState.AWAITING_PUBCOMP:
            original(self, entry, now)
            return
        out = entry.message
        assert self.connection is not None
        self.connection.send(
            Publish(out.topic, out.payload, out.qos, out.retain, False, out.packet_id)
        )

    mp.setattr(Session, "resend", resend)


def _qos2_twice(mp: Patcher) -> None:
    original = TopicServer.publish

    def publish(self: TopicServer, message: Message, now: float) -> int:
        matched = original(self, message, now)
        if message.qos == QoS.EXACTLY_ONCE:
            for session, granted in list(self.subscribers.values()):
                if granted == QoS.EXACTLY_ONCE:
                    session.deliver(message, QoS.EXACTLY_ONCE, now)
        return matched

    mp.setattr(TopicServer, "publish", publish)


def _retain_kept_on_forward(mp: Patcher) -> None:
    original = Session.deliver

    def deliver(
        self: Session, message: Message, qos: QoS, now: float, *, retain: bool = False,
        **options: Any,
    ) -> None:
        original(self, message, qos, now, retain=retain or message.retain, **options)

    mp.setattr(Session, "deliver", deliver)


def _no_will_on_keep_alive(mp: Patcher) -> None:
    def keep_alive_expired(self: Connection, now: float, *, connect: bool) -> None:
        self.close("keep alive expired", publish_will=False, now=now)

    mp.setattr(Connection, "keep_alive_expired", keep_alive_expired)


def _lose_offline_queue(mp: Patcher) -> None:
    original = Session.attach

    def attach(self: Session, connection: Any, now: float) -> None:
        self.queue.clear()
        original(self, connection, now)

    mp.setattr(Session, "attach", attach)


def _queue_last_in_first_out(mp: Patcher) -> None:
    original = Session.pump

    def pump(self: Session, now: float) -> None:
        self.queue.reverse()
        try:
            original(self, now)
        finally:
            self.queue.reverse()

    mp.setattr(Session, "pump", pump)


def _grant_higher_qos(mp: Patcher) -> None:
    original = Registry.subscribe

    def subscribe(self: Registry, session: Session, topic_filter: str, qos: QoS,
                  *options: Any) -> int:
        return original(self, session, topic_filter, QoS(min(int(qos) + 1, 2)), *options)

    mp.setattr(Registry, "subscribe", subscribe)


def _wildcards_match_dollar_topics(mp: Patcher) -> None:
    original_match = matching.FilterTree.match

    def match(self: matching.FilterTree, topic_name: str) -> dict[str, QoS]:
        found = original_match(self, topic_name)
        if topic_name.startswith("$"):
            for client_id, qos in original_match(self, "_" + topic_name[1:]).items():
                found[client_id] = max(qos, found.get(client_id, QoS.AT_MOST_ONCE))
        return found

    original_subtree = matching.TopicTree._subtree

    def _subtree(start: Any, *, skip_dollar: bool) -> Any:
        return original_subtree(start, skip_dollar=False)

    mp.setattr(matching.FilterTree, "match", match)
    mp.setattr(matching.TopicTree, "_subtree", staticmethod(_subtree))


def _clean_session_subscriptions_left(mp: Patcher) -> None:
    mp.setattr(Registry, "remove_session", lambda self, session, now=0.0: None)


def _second_connect_ignored(mp: Patcher) -> None:
    mp.setattr(Connection, "on_second_connect", lambda self, packet, now: None, raising=False)
    mp.setitem(HANDLERS, (ConnectionState.CONNECTED, PacketType.CONNECT), "on_second_connect")


def _malformed_answered(mp: Patcher) -> None:
    original = Connection.protocol_violation

    def protocol_violation(self: Connection, exc: ProtocolError) -> None:
        if self.state is ConnectionState.CONNECTED:
            return  # carry on as if nothing happened
        original(self, exc)  # before CONNECT as ever (0x01 for an unknown level, close)

    mp.setattr(Connection, "protocol_violation", protocol_violation)


def _session_present_lost(mp: Patcher) -> None:
    original = SessionTable.open_session

    def open_session(
        self: SessionTable, connection: PacketSink, client_id: str, connect: Any, now: float
    ) -> tuple[Session, bool]:
        session, _present = original(self, connection, client_id, connect, now)
        return session, False

    mp.setattr(SessionTable, "open_session", open_session)


def _no_pingresp(mp: Patcher) -> None:
    mp.setattr(Connection, "on_pingreq", lambda self, packet, now: None)


def _unsubscribe_ignored(mp: Patcher) -> None:
    mp.setattr(Registry, "unsubscribe", lambda self, session, topic_filter: False)


def _retained_not_sent(mp: Patcher) -> None:
    mp.setattr(TopicServer, "send_retained",
               lambda self, session, granted, now, identifiers=(): None)


def _empty_retained_stored(mp: Patcher) -> None:
    def set_retained(self: TopicServer, message: Message) -> None:
        self.retained = Message(message.topic, message.payload, message.qos, True)
        self.store.set_retained(self.name, self.retained)

    mp.setattr(TopicServer, "set_retained", set_retained)


def _overlap_lowest_qos(mp: Patcher) -> None:
    def granted_on(self: Registry, session: Session, topic_name: str) -> QoS:
        matching_qos = [
            qos
            for topic_filter, qos in session.subscriptions.items()
            if matching.topic_matches(topic_filter, topic_name)
        ]
        return min(matching_qos, default=QoS.AT_MOST_ONCE)

    mp.setattr(Registry, "granted_on", granted_on)


def _no_pubcomp(mp: Patcher) -> None:
    def on_pubrel(self: Session, packet_id: int, now: float) -> None:
        self.awaiting_rel.discard(packet_id)

    mp.setattr(Session, "on_pubrel", on_pubrel)


def _takeover_keeps_old_connection(mp: Patcher) -> None:
    original = SessionTable.open_session

    def open_session(
        self: SessionTable, connection: PacketSink, client_id: str, connect: Any, now: float
    ) -> tuple[Session, bool]:
        existing = self.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            existing.connection = None  # forget the old connection instead of closing it
        return original(self, connection, client_id, connect, now)

    mp.setattr(SessionTable, "open_session", open_session)


def _late_connack(mp: Patcher) -> None:
    """CONNACK after the resumed session's first messages, not first [MQTT-3.2.0-1]."""
    original_on_connect = Connection.on_connect
    original_send_frame = Connection.send_frame
    held: dict[int, list[bytes]] = {}

    def send_frame(self: Connection, frame: bytes) -> None:
        frames = held.get(id(self))
        if frames is not None and not frames and frame[0] == 0x20:
            frames.append(frame)  # hold the CONNACK back
            return
        original_send_frame(self, frame)

    def on_connect(self: Connection, packet: Any, now: float) -> None:
        held[id(self)] = []
        try:
            original_on_connect(self, packet, now)
        finally:
            for frame in held.pop(id(self)):
                original_send_frame(self, frame)

    mp.setattr(Connection, "send_frame", send_frame)
    mp.setattr(Connection, "on_connect", on_connect)


FAULTS: tuple[Fault, ...] = (
    Fault(
        "drop a PUBACK",
        "session (QoS 1 receiver)",
        # No PUBACK for a QoS 1 PUBLISH: the QoS 1 receiver's answer, as Table 3.4 wants.
        breaks=("MQTT-4.3.2-2", "MQTT-3.3.4-1"),
        inject=_drop_puback,
    ),
    Fault(
        "forget DUP on redelivery",
        "session (resend)",
        breaks=("MQTT-3.3.1-1",),  # a re-delivery with DUP=0
        inject=_forget_dup,
    ),
    Fault(
        "deliver a QoS 2 message twice",
        "topic server",
        # The QoS 2 receiver must not cause duplicates to reach onward recipients; a
        # subscriber may get a duplicate only of a QoS 1 message granted at QoS 0.
        breaks=("MQTT-4.3.3-2", "MQTT-3.8.4-6"),
        inject=_qos2_twice,
    ),
    Fault(
        "keep RETAIN=1 on normal forwarding",
        "session (deliver)",
        breaks=("MQTT-3.3.1-9",),
        inject=_retain_kept_on_forward,
    ),
    Fault(
        "skip the will on keep-alive expiry",
        "connection (timers)",
        breaks=("MQTT-3.1.2-8",),  # the will is published on every close but DISCONNECT
        inject=_no_will_on_keep_alive,
        cascades={
            "MQTT-4.5.0-1": "a will that never comes cannot be told from one published and"
            " then lost on its way to the subscription: the model names both",
            "MQTT-3.3.1-6": "a will with RETAIN 1 that was never published is never"
            " retained, so a subscription made after the close misses it",
        },
    ),
    Fault(
        "lose the offline queue on reconnect",
        "session (attach)",
        # The QoS 1 and 2 messages stored for the disconnected session, and the session
        # state it resumes from, are dropped.
        breaks=("MQTT-3.1.2-5", "MQTT-3.1.2-4"),
        inject=_lose_offline_queue,
        cascades={
            "MQTT-4.5.0-1": "the messages the server took ownership of are gone from the"
            " matching session's state when its client resumes, so they are never delivered",
        },
    ),
    Fault(
        "reorder queued messages (last in, first out)",
        "session (queue)",
        # Same publisher, topic and QoS: sent to consumers in the order received
        # [MQTT-4.6.0-5], the order every topic has by default [MQTT-4.6.0-6].
        breaks=("MQTT-4.6.0-6", "MQTT-4.6.0-5"),
        inject=_queue_last_in_first_out,
    ),
    Fault(
        "grant a higher QoS than requested",
        "registry",
        # Granted above the request, and messages sent above it.
        breaks=("MQTT-3.8.4-6",),
        inject=_grant_higher_qos,
    ),
    Fault(
        "match wildcards against $ topics",
        "matching tries",
        # "#" and "+/..." match "$..." names: not the matching process of 4.7.
        breaks=("MQTT-4.7.2-1", "MQTT-3.3.2-3"),
        inject=_wildcards_match_dollar_topics,
    ),
    Fault(
        "leave a clean session's subscriptions behind",
        "registry (session end)",
        breaks=("MQTT-3.1.2-6",),  # a clean session's state is reused by the next one
        inject=_clean_session_subscriptions_left,
        cascades={
            "MQTT-3.3.2-3": "the subscriptions left behind send the next session messages"
            " whose topic matches none of that session's subscriptions",
            "MQTT-3.1.4-3": "the clean-session processing 3.1.4-3 requires on CONNECT is the"
            " discarding of 3.1.2.4 that the fault skips",
        },
    ),
    Fault(
        "ignore a second CONNECT",
        "connection (dispatch table)",
        # A second CONNECT is a protocol violation: the server must close the connection
        # (3.1.0-2 names it; the general rule of 4.8 adds nothing to judge).
        breaks=("MQTT-3.1.0-2",),
        inject=_second_connect_ignored,
    ),
    Fault(
        "answer a malformed packet instead of closing",
        "connection (errors)",
        # Every protocol violation on a connected connection, a second CONNECT included
        # (the broker handles it as one), leaves the connection open: the general rule
        # and each statement that names a malformation the server must close on.
        breaks=("MQTT-4.8.0-1", "MQTT-3.1.0-2", "MQTT-1.5.3-1", "MQTT-1.5.3-2",
                "MQTT-2.2.2-2", "MQTT-3.3.1-4", "MQTT-3.6.1-1", "MQTT-3.8.1-1",
                "MQTT-3.8.3-4", "MQTT-3.10.1-1", "MQTT-3.14.1-1"),
        inject=_malformed_answered,
    ),
    Fault(
        "session present 0 on a resumed session",
        "broker (sessions)",
        breaks=("MQTT-3.2.2-2",),
        inject=_session_present_lost,
    ),
    Fault(
        "no PINGRESP",
        "connection (handlers)",
        breaks=("MQTT-3.12.4-1",),
        inject=_no_pingresp,
    ),
    Fault(
        "UNSUBSCRIBE acknowledged but ignored",
        "registry (unsubscribe)",
        # The subscription is not deleted, and messages keep being added for it. The
        # registry drops an ending clean session's subscriptions through the same
        # ``unsubscribe``: those stay too, and serve the next session of the client id.
        breaks=("MQTT-3.10.4-1", "MQTT-3.10.4-2", "MQTT-3.1.2-6"),
        inject=_unsubscribe_ignored,
        cascades={
            "MQTT-3.1.4-3": "an ending clean session keeps its subscriptions, so the next"
            " CONNECT's clean-session processing is not done",
        },
    ),
    Fault(
        "no retained message on subscribe",
        "topic server (retained)",
        breaks=("MQTT-3.3.1-6",),
        inject=_retained_not_sent,
        cascades={
            "MQTT-3.3.1-5": "no client can tell a retained message not stored from one stored"
            " and never sent to new subscriptions",
            "MQTT-3.1.2-17": "a retained will is observed as retained only by a new"
            " subscription, which is never sent it",
        },
    ),
    Fault(
        "store an empty retained message",
        "topic server (retained)",
        # A zero-byte retained message is stored, and future subscribers receive it.
        breaks=("MQTT-3.3.1-11", "MQTT-3.3.1-10"),
        inject=_empty_retained_stored,
    ),
    Fault(
        "overlapping subscriptions deliver at the lowest QoS",
        "registry (granted QoS)",
        breaks=("MQTT-3.3.5-1",),  # the maximum QoS of all matching subscriptions
        inject=_overlap_lowest_qos,
    ),
    Fault(
        "PUBREL never completed",
        "session (QoS 2 receiver)",
        breaks=("MQTT-4.3.3-2",),  # the QoS 2 receiver answers PUBREL with PUBCOMP
        inject=_no_pubcomp,
    ),
    Fault(
        "takeover leaves the old connection open",
        "broker (takeover)",
        breaks=("MQTT-3.1.4-2",),  # the existing client must be disconnected
        inject=_takeover_keeps_old_connection,
    ),
    Fault(
        "CONNACK not first",
        "connection (CONNECT)",
        breaks=("MQTT-3.2.0-1",),
        inject=_late_connack,
        cascades={
            "MQTT-3.1.3-8": "the CONNACK held back is lost when a refusal closes the"
            " connection, so an empty id with clean session 0 gets no 0x02",
        },
    ),
)
