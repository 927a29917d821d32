"""The session: one per client id, plain data and synchronous logic.

Theory of operation. A session holds what MQTT says outlives a network
connection (3.1.2.4): the client's subscriptions with their granted QoS, the
messages waiting to be sent (the queue), the QoS 1 and QoS 2 messages in
flight in both directions, and the connection it currently delivers to, if
any. It does no I/O: it hands packets to a ``PacketSink`` (the connection)
and takes the time as ``now``, so every flow can be driven by a unit test
with a recording sink and a made-up clock.

Outbound, a message at QoS 1 or 2 enters the in-flight window (at most
``max_inflight``) with a fresh packet id and walks the states of
``OutboundState``; beyond the window, or while the client is away or its
socket is congested, it waits in the queue (at most ``max_queued`` messages
and ``max_queued_bytes``, and within the broker-wide ``memory_high_water``;
the newest message is dropped beyond them, logged and counted: a slow client
costs only itself, see ``pressure.py``). A QoS 0 message
for an absent client is not kept, unless ``queue_qos0_messages`` puts it in the
queue of a persistent session (3.1.2.4 makes it optional). Inbound, QoS 2
packet ids live in ``awaiting_rel`` from PUBLISH to PUBREL so a duplicate is
acknowledged but not delivered again (4.3.3, method A).

A persistent session (clean session 0) tells the store every change, so a
broker with a disk store can give it back after a restart.

At MQTT 5.0 the connection sets the terms (3.2.2.3, read at ``attach``): the
in-flight window is at most the client's Receive Maximum [MQTT-3.3.4-9], a
PUBLISH carries the message's properties with the expiry interval that remains
(3.3.2.3.3), a packet larger than the client's Maximum Packet Size is not sent
but counted as sent and dropped [MQTT-3.1.2-25], an expired message leaves the
queue unsent [MQTT-3.3.2-5], and acknowledgements carry reason codes (0x10 no
matching subscribers, 0x92 packet identifier not found).

A 5.0 subscription also keeps options beside its QoS (``SubscriptionOptions``: No
Local, Retain As Published, its Subscription Identifier), here by filter; the
registry reads the identifiers from them. A topic server hands the session each
message with one QoS and one set of identifiers, those of all its filters matching
the topic, which is the one copy overlapping subscriptions give [MQTT-3.3.4-2,
MQTT-3.3.4-4]. The client's own message is the exception: a filter with No Local may
not forward it [MQTT-3.8.3-3], so ``deliver`` works that copy out again from the other
matching filters alone, and sends nothing when there are none.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Protocol

import attrs

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.matching import is_shared, topic_matches
from mqttref.impl.broker.pressure import Memory
from mqttref.impl.codec.errors import ProtocolError, ReasonCode
from mqttref.impl.codec.frames import PUBACK, PUBCOMP, PUBREC, PUBREL, ack_frame, publish_frame
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Packet,
    PacketType,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
)
from mqttref.impl.codec.properties import encode_properties
from mqttref.impl.flow import FIRST_OUTBOUND_STATE, OUTBOUND_TABLE, OutboundState
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message, OutboundMessage
from mqttref.impl.store.base import NO_OPTIONS, SessionRecord, Store, SubscriptionOptions

log = logging.getLogger("mqttref.broker")

MAX_PACKET_ID = 65_535

QUEUED_OVERHEAD = 120
"""Bytes a queued message costs beyond its topic and payload (its tuple, its object, the
deque slot), counted against ``max_queued_bytes`` so that empty messages count too."""


class PacketSink(Protocol):
    """Where a session's packets go: the connection, or a recorder in a unit test."""

    @property
    def v5(self) -> bool:
        """The client speaks MQTT 5.0: properties and reason codes."""
        ...

    @property
    def receive_maximum(self) -> int:
        """The client's Receive Maximum (65,535 below 5.0: no limit of its own)."""
        ...

    @property
    def maximum_packet_size(self) -> int:
        """The largest packet the client accepts (3.1.2.11.4)."""
        ...

    @property
    def topic_alias_maximum(self) -> int:
        """Topic aliases the broker may use towards the client (0: none)."""
        ...

    @property
    def congested(self) -> bool:
        """True while the peer reads slower than we write: hold back what can wait."""
        ...

    @property
    def overloaded(self) -> bool:
        """True while so much waits for the peer that QoS 0 messages must be dropped."""
        ...

    def send(self, packet: Packet) -> None: ...

    def send_frame(self, frame: bytes) -> None:
        """Send bytes that are already one encoded packet (a shared QoS 0 frame)."""
        ...

    def close(self, reason: str, *, publish_will: bool, now: float | None = None,
              reason_code: int | None = None) -> None:
        """End the network connection (a takeover closes the old one [MQTT-3.1.4-2]);
        ``reason_code`` goes in the DISCONNECT a 5.0 client is sent first."""
        ...


class MessageAccess(Protocol):
    """What the ACL lets one client do (``security.ClientAccess``): the session asks
    before it hands its client a message, its connection before it routes a PUBLISH,
    the registry before it grants a filter."""

    def may_read(self, topic: str) -> bool: ...

    def may_write(self, topic: str) -> bool: ...

    def may_subscribe(self, topic_filter: str) -> bool: ...


class SessionState(Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@attrs.define(slots=True)
class Inflight:
    """One outbound QoS 1/2 message between its PUBLISH and its last acknowledgement."""

    message: OutboundMessage
    state: OutboundState
    next_retry: float
    interval: float


def queued_size(outbound: OutboundMessage) -> int:
    """What a queued message counts against ``max_queued_bytes`` and ``memory_high_water``."""
    return len(outbound.payload) + len(outbound.topic) + QUEUED_OVERHEAD


def qos0_frame(message: Message) -> bytes:
    """The QoS 0, RETAIN=0 frame of a message, encoded once for all its subscribers."""
    frame = message.qos0_frame
    if frame is None:
        frame = message.qos0_frame = publish_frame(
            message.topic, message.payload, 0, False
        )
    return frame


_NO_OPTIONS_BY_FILTER: Mapping[str, SubscriptionOptions] = MappingProxyType({})


class Session:
    """One client's session (3.1.2.4), persistent or clean."""

    __slots__ = (
        "_aliases",
        "_awaiting_rel",
        "_next_packet_id",
        "_next_seq",
        "_options",
        "_queue",
        "access",
        "behind_since",
        "client_id",
        "config",
        "connection",
        "dropped",
        "inflight",
        "max_packet",
        "memory",
        "persistent",
        "queued_bytes",
        "state",
        "store",
        "subscriptions",
        "v5",
        "window",
    )

    def __init__(
        self, client_id: str, *, persistent: bool, config: Config, store: Store,
        memory: Memory | None = None,
    ) -> None:
        self.client_id = client_id
        self.persistent = persistent
        """Clean session 0: outlives its connection and is stored."""
        self.config = config
        self.store = store
        self.state = SessionState.DISCONNECTED
        self.connection: PacketSink | None = None
        self.subscriptions: dict[str, QoS] = {}
        """Topic filter -> granted QoS; kept in step by the registry."""
        self._queue: deque[tuple[int, OutboundMessage]] | None = None
        """See ``queue``; None until first used (an empty deque takes 760 bytes)."""
        self.inflight: dict[int, Inflight] = {}
        """Packet id -> outbound message, in the order first sent."""
        self._awaiting_rel: set[int] | None = None
        """See ``awaiting_rel``; None until first used (an empty set takes 216 bytes)."""
        self.memory = memory if memory is not None else Memory(config.memory_high_water)
        """The broker-wide count of queued bytes (the session table's, shared by all)."""
        self.queued_bytes = 0
        """Bytes of the messages in ``queue`` (``queued_size``), against ``max_queued_bytes``."""
        self.behind_since: float | None = None
        """Since when messages have waited in the queue of a connected client without it
        taking any (an acknowledgement or a drained socket restarts the clock)."""
        self.dropped = 0
        """Messages dropped by the queue limits or by an overloaded QoS 0 path."""
        self.v5 = False
        """The connection attached last speaks MQTT 5.0."""
        self._options: dict[str, SubscriptionOptions] | None = None
        """Filter -> what its 5.0 subscription asked for beyond the QoS, for the filters
        that asked for anything; None while none has (every 3.x session)."""
        self.window = config.max_inflight
        """QoS 1/2 messages in flight at most: ``max_inflight``, and at 5.0 at most the
        client's Receive Maximum."""
        self.max_packet = 0
        """The client's Maximum Packet Size at 5.0 (0 below: no limit but the codec's)."""
        self._aliases: dict[str, int] | None = None
        """Topic -> the alias this connection's client knows it by (``send_topic_aliases``),
        None when the broker gives it none; new with each connection [MQTT-3.3.2-7]."""
        self.access: MessageAccess | None = None
        """What the ACL lets the client attached last read (``security.ClientAccess``);
        None: everything (no ACL file, or no client has attached since a restart)."""
        self._next_packet_id = 1
        self._next_seq = 1
        if persistent:
            store.create_session(client_id)

    def __repr__(self) -> str:
        return f"<Session {clip(self.client_id)} {self.state.value}>"

    @property
    def awaiting_rel(self) -> set[int]:
        """Inbound QoS 2 packet ids delivered onwards and awaiting PUBREL."""
        if self._awaiting_rel is None:
            self._awaiting_rel = set()
        return self._awaiting_rel

    @awaiting_rel.setter
    def awaiting_rel(self, packet_ids: set[int]) -> None:
        self._awaiting_rel = packet_ids or None

    @property
    def queue(self) -> deque[tuple[int, OutboundMessage]]:
        """Messages waiting for the in-flight window or for the client, oldest first."""
        if self._queue is None:
            self._queue = deque()
        return self._queue

    @classmethod
    def restore(cls, record: SessionRecord, *, config: Config, store: Store,
                memory: Memory | None = None) -> Session:
        """A persistent session as the store kept it (after a broker restart)."""
        session = cls(record.client_id, persistent=True, config=config, store=store,
                      memory=memory)
        session.subscriptions = dict(record.subscriptions)
        for topic_filter, options in record.options.items():
            session.set_options(topic_filter, options)
        session._queue = deque(record.queue) if record.queue else None
        if record.queue:
            session._next_seq = record.queue[-1][0] + 1
            session.queued_bytes = sum(queued_size(out) for _seq, out in record.queue)
            session.memory.force(session.queued_bytes)
            session.memory.consumers.add(session)
        for item in record.inflight:
            session.inflight[item.packet_id] = Inflight(
                item.message, item.state, 0.0, config.retry_interval
            )
        session.awaiting_rel = set(record.awaiting_rel)
        return session

    # Connection lifecycle -------------------------------------------------------

    def attach(self, connection: PacketSink, now: float) -> None:
        """Deliver to a new connection: resend what is in flight, then the queue.

        Unacknowledged PUBLISH packets go again with DUP=1 and PUBRELs go again,
        in their original order [MQTT-4.4.0-1], as many as the client's Receive
        Maximum allows; the rest follow as acknowledgements make room [MQTT-3.3.4-9].
        """
        self.connection = connection
        self.state = SessionState.CONNECTED
        self.v5 = v5 = connection.v5
        self.window = min(self.config.max_inflight, connection.receive_maximum)
        self.max_packet = connection.maximum_packet_size if v5 else 0
        self._aliases = {} if v5 and connection.topic_alias_maximum else None
        sent = 0
        for entry in list(self.inflight.values()):
            if sent >= self.window:
                entry.next_retry = math.inf  # held back until an acknowledgement
                continue
            sent += 1
            entry.interval = self.config.retry_interval
            entry.next_retry = now + entry.interval
            self.resend(entry, now)
        self.pump(now)

    def _resend_held(self, now: float) -> None:
        """An acknowledgement made room: resend the oldest message ``attach`` held back."""
        for entry in self.inflight.values():
            if entry.next_retry == math.inf:
                entry.interval = self.config.retry_interval
                entry.next_retry = now + entry.interval
                self.resend(entry, now)  # may drop it (too large): the loop ends here
                return

    def detach(self) -> None:
        """The connection ended; a persistent session keeps everything for the next one."""
        self.connection = None
        self.state = SessionState.DISCONNECTED
        self.behind_since = None

    def discard(self) -> None:
        """The session ends for good (clean session, or replaced by a clean one)."""
        self.detach()
        self._release_queue()
        self._queue = None
        self.inflight.clear()
        self._awaiting_rel = None
        if self.persistent:
            self.store.delete_session(self.client_id)

    # Outbound ---------------------------------------------------------------------

    def send(self, packet: Packet) -> None:
        """Send a packet that is no message (SUBACK, UNSUBACK...) to the connection."""
        if self.connection is not None:
            self.connection.send(packet)

    def set_options(self, topic_filter: str, options: SubscriptionOptions) -> None:
        """Keep, replace [MQTT-3.8.4-3] or (``NO_OPTIONS``) forget a subscription's 5.0
        options: No Local, Retain As Published and its Subscription Identifier."""
        table = self._options
        if options != NO_OPTIONS:
            if table is None:
                table = self._options = {}
            table[topic_filter] = options
        elif table is not None:
            table.pop(topic_filter, None)
            if not table:
                self._options = None

    @property
    def options(self) -> Mapping[str, SubscriptionOptions]:
        """Filter -> its 5.0 options, for the filters that have any (read only)."""
        return _NO_OPTIONS_BY_FILTER if self._options is None else MappingProxyType(self._options)

    def _by_options(
        self, message: Message, qos: QoS, identifiers: tuple[int, ...],
        options: dict[str, SubscriptionOptions],
    ) -> tuple[QoS, tuple[int, ...], bool] | None:
        """What the 5.0 options make of the copy a topic server hands over: None to send
        nothing, else its QoS, its Subscription Identifiers and whether it keeps RETAIN.

        Another client's message goes as the topic server says, keeping RETAIN if a
        matching filter has Retain As Published [MQTT-3.3.1-12, MQTT-3.3.1-13]. The
        client's own message, when some filter has No Local, goes by ``_own_copy``."""
        if message.origin == self.client_id and any(o.no_local for o in options.values()):
            return self._own_copy(message, qos, options)
        topic = message.topic
        keep = message.retain and any(
            option.retain_as_published and topic_matches(topic_filter, topic)
            and self._ordinary(topic_filter)
            for topic_filter, option in options.items()
        )
        return qos, identifiers, keep

    def _own_copy(
        self, message: Message, qos: QoS, options: dict[str, SubscriptionOptions],
    ) -> tuple[QoS, tuple[int, ...], bool] | None:
        """The client's own message: a matching filter with No Local may not forward it
        [MQTT-3.8.3-3], so it adds nothing to the one copy the others send. That copy
        has the highest QoS of those others [MQTT-3.3.4-2] (``qos`` is already the lower
        of the message's and the highest of all), their identifiers [MQTT-3.3.4-4], and
        RETAIN if one of them has Retain As Published [MQTT-3.3.1-13]. No other filter:
        nothing is sent."""
        topic = message.topic
        best: QoS | None = None
        identifiers: list[int] = []
        keep = False
        for topic_filter, granted in self.subscriptions.items():
            option = options.get(topic_filter, NO_OPTIONS)
            if option.no_local or not topic_matches(topic_filter, topic) or not self._ordinary(
                    topic_filter):
                continue
            if best is None or granted > best:
                best = granted
            if option.identifier is not None:
                identifiers.append(option.identifier)
            keep = keep or option.retain_as_published
        if best is None:
            return None
        return min(qos, best), tuple(identifiers), message.retain and keep

    def _ordinary(self, topic_filter: str) -> bool:
        """Not a shared subscription's filter: those deliver through their group, with
        their member's own options (4.8.2, ``shared.py``)."""
        return not is_shared(topic_filter,
                             shared_subscriptions=self.config.shared_subscriptions)

    def deliver(self, message: Message, qos: QoS, now: float, *, retain: bool = False,
                identifiers: tuple[int, ...] = (), share: str | None = None) -> None:
        """Send one message at an already downgraded QoS, or queue it.

        ``retain`` is True only for a retained message sent because of a new
        subscription [MQTT-3.3.1-8]; normal forwarding clears it [MQTT-3.3.1-9],
        unless a 5.0 subscription asked for Retain As Published.
        ``identifiers``: the Subscription Identifiers of the subscriptions it matched,
        which its PUBLISH carries [MQTT-3.3.4-3]. ``share``: it came through that shared
        subscription, whose options the registry applied (4.8.2); remembered so that
        another member gets it should this session end first. Otherwise the session's
        5.0 options have their say (``_by_options``): No Local, Retain As Published.
        """
        access = self.access
        if access is not None and not access.may_read(message.topic):
            return  # the ACL denies this subscriber the topic, retained or not
        options = self._options
        if share is None and options is not None:
            resolved = self._by_options(message, qos, identifiers, options)
            if resolved is None:
                return
            qos, identifiers, keep = resolved
            retain = retain or keep
        properties = message.properties
        if identifiers:
            properties = attrs.evolve(properties, subscription_identifiers=identifiers)
        connection = self.connection
        if qos is QoS.AT_MOST_ONCE:
            if connection is None:
                # QoS 0 messages are optional session state (3.1.2.4): kept for an
                # absent persistent client only with ``queue_qos0_messages``.
                if self.persistent and self.config.queue_qos0_messages:
                    self.enqueue(OutboundMessage(message.topic, 0, qos, message.payload, retain,
                                                 properties, message.expires_at), now)
                return
            if connection.overloaded:
                self.drop(message.topic, "the client reads too slowly for QoS 0")
                return
            if self.v5:
                frame = self.publish_frame(OutboundMessage(
                    message.topic, 0, qos, message.payload, retain, properties,
                    message.expires_at), now)
                if frame is not None:
                    connection.send_frame(frame)
            elif retain:
                connection.send_frame(
                    publish_frame(message.topic, message.payload, 0, True)
                )
            else:
                connection.send_frame(qos0_frame(message))
            return
        outbound = OutboundMessage(message.topic, 0, qos, message.payload, retain,
                                   properties, message.expires_at, share,
                                   message if share is not None else None)
        if (
            connection is not None
            and not self._queue
            and len(self.inflight) < self.window
            and not connection.congested
        ):
            self.send_new(outbound, now)
        else:
            self.enqueue(outbound, now)

    def pump(self, now: float) -> None:
        """Move queued messages into the in-flight window while there is room, and
        while the connection takes them: a congested connection, or one with a
        batch's worth of bytes waiting, gets the rest after it has drained
        (``Connection.data_to_send`` pumps again), so a long queue is encoded a
        bounded batch at a time."""
        connection = self.connection
        if connection is None:
            return
        queue = self._queue
        if not queue:
            if queue is not None:
                self._queue = None  # give back the deque's first block
            self.behind_since = None
            return
        limit = self.window
        memory = self.memory
        while queue and len(self.inflight) < limit:
            if connection.congested:
                return
            seq, outbound = queue.popleft()
            size = queued_size(outbound)
            self.queued_bytes -= size
            memory.release(size)
            if self.persistent:
                self.store.queue_remove(self.client_id, seq)
            expires_at = outbound.expires_at
            if expires_at is not None and expires_at <= now:
                continue  # it expired waiting: not forwarded [MQTT-3.3.2-5]
            access = self.access
            if access is not None and not access.may_read(outbound.topic):
                continue  # queued before the ACL (reloaded, or a new user) denied it
            if outbound.qos is QoS.AT_MOST_ONCE:
                frame = self.publish_frame(outbound, now)
                if frame is not None:
                    connection.send_frame(frame)
            else:
                self.send_new(outbound, now)
        if not queue:
            memory.consumers.discard(self)
            self.behind_since = None

    def enqueue(self, outbound: OutboundMessage, now: float) -> None:
        """Put a message at the back of the queue, or drop it (the newest goes) when
        the queue holds ``max_queued`` messages or ``max_queued_bytes``, or when all
        queues together hold ``memory_high_water``."""
        config = self.config
        queue = self.queue
        size = queued_size(outbound)
        if len(queue) >= config.max_queued:
            self.drop(outbound.topic, f"the queue holds {config.max_queued} messages "
                                      "(max_queued)")
            return
        if self.queued_bytes + size > config.max_queued_bytes:
            self.drop(outbound.topic, f"the queue holds {self.queued_bytes:,} bytes "
                                      "(max_queued_bytes)")
            return
        if not self.memory.reserve(size):
            self.drop(outbound.topic, "all queues together hold memory_high_water")
            return
        if not queue:
            self.memory.consumers.add(self)
            if self.connection is not None:
                self.behind_since = now
        self.queued_bytes += size
        seq = self._next_seq
        self._next_seq += 1
        queue.append((seq, outbound))
        if self.persistent:
            self.store.queue_append(self.client_id, seq, outbound)

    def _release_queue(self) -> None:
        """The queue is thrown away: its bytes no longer count."""
        if self.queued_bytes:
            self.memory.release(self.queued_bytes)
            self.queued_bytes = 0
        self.memory.consumers.discard(self)

    def stalled(self, now: float) -> bool:
        """Messages have waited ``stall_timeout`` for this connected client, and it took
        none of them (0: never). The broker may then close its connection."""
        timeout = self.config.stall_timeout
        since = self.behind_since
        return timeout > 0 and since is not None and now >= since + timeout

    def drop(self, topic: str, why: str) -> None:
        """The drop policy: the newest message goes, with a count and a log line."""
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            broker_log.warning(
                "dropped messages", "client %s: dropped a message on %s (%s); %d dropped so far",
                clip(self.client_id), clip(topic), why, self.dropped,
            )

    def send_new(self, outbound: OutboundMessage, now: float) -> None:
        """Send a QoS 1/2 message for the first time: a fresh packet id, DUP=0 [MQTT-3.3.1-1]."""
        packet_id = self._allocate_packet_id()
        topic, _, qos, payload, retain, properties, expires_at, share, published = outbound
        outbound = OutboundMessage(topic, packet_id, qos, payload, retain, properties,
                                   expires_at, share, published)  # _replace: 3x dearer
        if self.v5:
            frame: bytes | None
            if properties is NO_PROPERTIES and expires_at is None and self._aliases is None:
                frame = publish_frame(topic, payload, qos, retain, packet_id=packet_id,
                                      properties=b"\x00")
                if len(frame) > self.max_packet:
                    frame = self.publish_frame(outbound, now)  # counts the drop
            else:
                frame = self.publish_frame(outbound, now)
            if frame is None:
                return  # too large for the client: as if sent and acknowledged
        else:
            frame = publish_frame(topic, payload, qos, retain, packet_id=packet_id)
        state = FIRST_OUTBOUND_STATE[qos]
        interval = self.config.retry_interval
        self.inflight[packet_id] = Inflight(outbound, state, now + interval, interval)
        if self.persistent:
            self.store.inflight_set(self.client_id, packet_id, state, outbound)
        assert self.connection is not None
        self.connection.send_frame(frame)

    def publish_frame(self, out: OutboundMessage, now: float, *, dup: bool = False) -> bytes | None:
        """The PUBLISH of ``out`` for this session's client; None (counted as dropped) when
        it is larger than the client's Maximum Packet Size [MQTT-3.1.2-25]. At 5.0 it
        carries the message's properties, its expiry interval lowered by the time it
        waited here [MQTT-3.3.2-6]."""
        if not self.v5:
            return publish_frame(out.topic, out.payload, out.qos, out.retain, dup=dup,
                                 packet_id=out.packet_id)
        properties = out.properties
        if out.expires_at is not None:
            remaining = max(1, math.ceil(out.expires_at - now))
            properties = attrs.evolve(properties, message_expiry_interval=remaining)
        topic = out.topic
        aliases = self._aliases
        new_alias = None
        if aliases is not None:
            alias = aliases.get(topic)
            if alias is not None:  # known to the client: the alias alone [MQTT-3.3.2-12]
                properties = attrs.evolve(properties, topic_alias=alias)
                topic = ""
            else:
                assert self.connection is not None
                if len(aliases) < self.connection.topic_alias_maximum:
                    new_alias = len(aliases) + 1  # topic and alias: the client learns it
                    properties = attrs.evolve(properties, topic_alias=new_alias)
        block = (b"\x00" if properties is NO_PROPERTIES
                 else encode_properties(properties, PacketType.PUBLISH))
        frame = publish_frame(topic, out.payload, out.qos, out.retain, dup=dup,
                              packet_id=out.packet_id, properties=block)
        if len(frame) > self.max_packet:
            self.drop(out.topic, f"{len(frame):,} bytes exceed the client's Maximum Packet "
                                 f"Size of {self.max_packet:,} [MQTT-3.1.2-25]")
            return None
        if new_alias is not None:
            assert aliases is not None
            aliases[out.topic] = new_alias
        return frame

    def _allocate_packet_id(self) -> int:
        """The next packet id not in use by an outbound flow [MQTT-2.3.1-2]."""
        packet_id = self._next_packet_id
        while packet_id in self.inflight:
            packet_id = packet_id % MAX_PACKET_ID + 1
        self._next_packet_id = packet_id % MAX_PACKET_ID + 1
        return packet_id

    def resend(self, entry: Inflight, now: float) -> None:
        """Send an unacknowledged message again: PUBLISH with DUP=1 and the same packet
        id [MQTT-3.3.1-1], or the PUBREL once PUBREC has come [MQTT-4.3.3-1]."""
        connection = self.connection
        assert connection is not None
        out = entry.message
        if entry.state is OutboundState.AWAITING_PUBCOMP:
            connection.send_frame(ack_frame(PUBREL, out.packet_id))
        else:
            frame = self.publish_frame(out, now, dup=True)
            if frame is not None:
                connection.send_frame(frame)
            else:  # too large for this connection's client: as if sent and acknowledged
                self.inflight.pop(out.packet_id, None)  # [MQTT-3.1.2-25]
                if self.persistent:
                    self.store.inflight_remove(self.client_id, out.packet_id)

    def on_ack(self, kind: PacketType, packet_id: int, now: float, reason_code: int = 0) -> None:
        """PUBACK, PUBREC or PUBCOMP for an outbound message: its next state by
        ``OUTBOUND_TABLE`` (4.3.2, 4.3.3). At the end of its flow the packet id is
        free again; after PUBREC comes PUBREL (a duplicate PUBREC gets it again).
        An acknowledgement the flow does not expect is a late duplicate from
        before a resumed session: ignored, except that at 5.0 a PUBREC for an
        unknown id is answered PUBREL 0x92 (3.6.2.1). A 5.0 PUBREC with a reason
        code of 0x80 or more ends the flow there [MQTT-4.3.3-4]."""
        entry = self.inflight.get(packet_id)
        if self.behind_since is not None:
            self.behind_since = now  # it takes its messages: not stalled
        if entry is None or (entry.state, kind) not in OUTBOUND_TABLE:
            log.debug("client %s: %s for unknown packet id %d", clip(self.client_id), kind.name,
                      packet_id)
            if self.v5 and entry is None and kind is PacketType.PUBREC:
                self.send(PubRel(packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
            return
        if reason_code >= 0x80 and kind is PacketType.PUBREC:
            del self.inflight[packet_id]
            if self.persistent:
                self.store.inflight_remove(self.client_id, packet_id)
            self._resend_held(now)
            self.pump(now)
            return
        target = OUTBOUND_TABLE[entry.state, kind]
        if target is None:
            del self.inflight[packet_id]
            if self.persistent:
                self.store.inflight_remove(self.client_id, packet_id)
            self._resend_held(now)
            self.pump(now)
            return
        if target is not entry.state:
            entry.state = target
            entry.interval = self.config.retry_interval
            entry.next_retry = now + entry.interval
            if self.persistent:
                self.store.inflight_set(self.client_id, packet_id, target, entry.message)
        assert self.connection is not None
        self.connection.send_frame(ack_frame(PUBREL, packet_id))

    def on_puback(self, packet_id: int, now: float) -> None:
        self.on_ack(PacketType.PUBACK, packet_id, now)

    def on_pubrec(self, packet_id: int, now: float) -> None:
        self.on_ack(PacketType.PUBREC, packet_id, now)

    def on_pubcomp(self, packet_id: int, now: float) -> None:
        self.on_ack(PacketType.PUBCOMP, packet_id, now)

    # Inbound ------------------------------------------------------------------------

    def on_publish(self, packet: Publish, now: float, *, defer_ack: bool = False
                   ) -> Message | None:
        """Acknowledge an inbound PUBLISH; return the message to route, or None.

        QoS 1 is routed and answered with PUBACK [MQTT-4.3.2-2]. QoS 2 is routed
        once, when its packet id is first seen, and answered with PUBREC; a
        duplicate whose id still awaits PUBREL is answered but not routed again
        [MQTT-4.3.3-2]. With ``defer_ack`` (MQTT 5.0, whose acknowledgement says
        whether anyone subscribed) the caller routes first and then calls
        ``acknowledge``; a duplicate is still answered here.
        """
        connection = self.connection
        assert connection is not None
        properties = packet.properties
        expires_at = None
        if properties is not NO_PROPERTIES:
            if properties.topic_alias is not None:
                properties = attrs.evolve(properties, topic_alias=None)
            if properties.message_expiry_interval is not None:
                expires_at = now + properties.message_expiry_interval
        message = Message(packet.topic, packet.payload, packet.qos, packet.retain,
                          properties=properties, expires_at=expires_at)
        qos = packet.qos
        if qos is QoS.AT_MOST_ONCE:
            return message
        packet_id = packet.packet_id
        assert packet_id is not None  # the codec guarantees it [MQTT-2.3.1-5]
        if qos is QoS.AT_LEAST_ONCE:
            if not defer_ack:
                connection.send_frame(ack_frame(PUBACK, packet_id))
            return message
        if packet_id in self.awaiting_rel:
            connection.send_frame(ack_frame(PUBREC, packet_id))
            return None
        if len(self.awaiting_rel) >= self.config.max_awaiting_rel:
            raise ProtocolError(
                f"more than {self.config.max_awaiting_rel} QoS 2 messages awaiting PUBREL",
                ref="§4.3.3",
                reason_code=ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
            )
        self.awaiting_rel.add(packet_id)
        if self.persistent:
            self.store.awaiting_rel_add(self.client_id, packet_id)
        if not defer_ack:
            connection.send_frame(ack_frame(PUBREC, packet_id))
        return message

    def acknowledge(self, packet: Publish, matched: int) -> None:
        """The deferred PUBACK or PUBREC of a routed 5.0 PUBLISH: 0x10 when nobody was
        subscribed (3.4.2.1: the Server MAY say so), else 0x00 in four bytes."""
        assert self.connection is not None
        assert packet.packet_id is not None
        if matched:
            first = PUBACK if packet.qos is QoS.AT_LEAST_ONCE else PUBREC
            self.connection.send_frame(ack_frame(first, packet.packet_id))
        elif packet.qos is QoS.AT_LEAST_ONCE:
            self.send(PubAck(packet.packet_id, ReasonCode.NO_MATCHING_SUBSCRIBERS))
        else:
            self.send(PubRec(packet.packet_id, ReasonCode.NO_MATCHING_SUBSCRIBERS))

    def on_pubrel(self, packet_id: int, now: float) -> None:
        """QoS 2 release: forget the packet id and complete with PUBCOMP [MQTT-4.3.3-2];
        at 5.0 an id not awaiting PUBREL gets PUBCOMP 0x92 (3.7.2.1)."""
        assert self.connection is not None
        if packet_id in self.awaiting_rel:
            self.awaiting_rel.discard(packet_id)
            if self.persistent:
                self.store.awaiting_rel_remove(self.client_id, packet_id)
        elif self.v5:
            self.send(PubComp(packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
            return
        self.connection.send_frame(ack_frame(PUBCOMP, packet_id))

    # Timers -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` has something to do, or None. A 5.0 session resends only
        when its client reconnects [MQTT-4.4.0-1]."""
        if (self.config.retry_interval <= 0 or self.connection is None or not self.inflight
                or self.v5):
            return None
        return min(entry.next_retry for entry in self.inflight.values())

    def handle_timer(self, now: float) -> None:
        """Resend in-flight messages whose retry time has come, doubling the interval
        (3.x only: at 5.0 a message is sent again only on reconnection [MQTT-4.4.0-1])."""
        if self.config.retry_interval <= 0 or self.connection is None or self.v5:
            return
        ceiling = self.config.retry_max_interval
        for entry in list(self.inflight.values()):
            if entry.next_retry <= now:
                self.resend(entry, now)
                entry.interval = min(entry.interval * 2, ceiling)
                entry.next_retry = now + entry.interval
