"""The broker model's bookkeeping records: messages, deliveries, sessions,
connections and the server's owed answers.

Mutable attrs classes owned by one ``BrokerModel``; nothing here decides
anything, the charts and ``mqttref.model.broker`` do.
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.packets import Connect, Will
from mqttref.model.connection import ConnectionState
from mqttref.model.flows import SideFlows
from mqttref.model.session import SessionState

PRIMARY = "*"
"""The channel of the one copy every matching session must get [MQTT-3.3.5-1]."""


@attrs.frozen
class Message:
    """An Application Message the server took ownership of.

    ``seq`` orders acceptance across the whole broker; ``origin`` is the
    publishing client id (``will:<id>`` for a will), which with topic and QoS
    forms the ordering key of [MQTT-4.6.0-6].
    """

    seq: int
    origin: str
    topic: str
    payload: bytes
    qos: int


@attrs.define(eq=False)
class Delivery:
    """A message the server must (``required``) or may send to one session.

    ``allowed_qos`` is the set of QoS values the PUBLISH may carry, ``retain``
    the RETAIN flag it must carry. ``channel`` is ``PRIMARY`` for the copy
    owed under [MQTT-3.3.5-1] and the filter for an extra per-subscription copy
    (allowed, never required). ``filters`` are the subscriptions that caused it;
    ``required_on_release`` makes a QoS 2 message required once its publisher's
    PUBREL arrives.
    """

    message: Message
    allowed_qos: frozenset[int]
    retain: bool
    required: bool
    channel: str = PRIMARY
    filters: tuple[str, ...] = ()
    required_on_release: bool = False
    subscription: Subscription | None = None
    """For a retained message sent on SUBSCRIBE: the subscription it answers."""

    @property
    def order_key(self) -> tuple[str, str, int, str, bool]:
        return (
            self.message.origin,
            self.message.topic,
            self.message.qos,
            self.channel,
            self.retain,
        )


@attrs.define(eq=False)
class Accepted:
    """A QoS 2 message received from a publisher and awaiting its PUBREL: what
    the release must make certain (kept on the server's receiver flow)."""

    message: Message
    retain: bool
    deliveries: list[Delivery]
    sessions: set[str] = attrs.field(factory=set)
    """Client ids of the sessions that got a delivery of it."""


@attrs.define
class Subscription:
    """A subscription; ``granted`` stays None until the SUBACK is observed."""

    topic_filter: str
    requested: int
    granted: int | None = None

    def possible_granted(self) -> frozenset[int]:
        if self.granted is not None:
            return frozenset({self.granted})
        return frozenset(range(self.requested + 1))


@attrs.define
class Session:
    """The server's state for one client id (the session chart's context)."""

    client_id: str
    state: str = SessionState.START
    clean: bool = True
    generation: int = 0
    subscriptions: dict[str, Subscription] = attrs.field(factory=dict)
    pending: list[Delivery] = attrs.field(factory=list)
    flows: SideFlows = attrs.field(factory=SideFlows)
    client: str | None = None
    """The connection slot currently attached, if any."""
    last_sent: dict[tuple[str, str, int, str, bool], int] = attrs.field(factory=dict)
    """The newest message sent per ordering key, for [MQTT-4.6.0-6]."""
    overtaken: list[Delivery] = attrs.field(factory=list)
    """Allowed deliveries dropped because a later message of their ordering key was
    sent first: they may never come, and if one comes it is out of order
    [MQTT-4.6.0-6] (remembered only to name that statement, never owed)."""
    unsubscribed: dict[str, Subscription] = attrs.field(factory=dict)
    """Subscriptions this session's client removed with UNSUBSCRIBE: a message only
    they match breaks [MQTT-3.10.4-2] rather than the matching rule alone."""
    discarded: dict[str, Subscription] = attrs.field(factory=dict)
    """Subscriptions an earlier session of this client id had when it was discarded
    [MQTT-3.1.2-6] and that were not made again since: a message only they match is
    the server reusing state it must not reuse."""

    def holds_nothing(self) -> bool:
        return not (
            self.subscriptions or self.pending or self.flows.outgoing or self.flows.incoming
        )

    def discard(self) -> None:
        """Drop all session state [MQTT-3.1.2-6], remembering the subscriptions dropped."""
        self.discarded.update(self.subscriptions)
        self.subscriptions.clear()
        self.unsubscribed.clear()
        self.pending.clear()
        self.flows.clear()
        self.last_sent.clear()
        self.overtaken.clear()
        self.generation += 1


@attrs.frozen
class Expected:
    """An answer the server owes on a connection: SUBACK, UNSUBACK or PINGRESP.

    ``codes`` holds, for a SUBACK, the allowed return codes per topic filter.
    ``or_close``: closing the connection also discharges it.
    """

    kind: str
    packet_id: int | None
    refs: tuple[str, ...]
    codes: tuple[frozenset[int], ...] = ()
    filters: tuple[str, ...] = ()
    or_close: bool = False
    subscriptions: tuple[Subscription | None, ...] = ()
    """For a SUBACK: the subscription each filter made (None: an invalid filter).
    One filter may appear twice: two subscriptions in a row [MQTT-3.8.4-4]."""


@attrs.define
class Connection:
    """One network connection slot (the connection chart's context)."""

    client: str
    state: str = ConnectionState.AWAITING_CONNECT
    connect: Connect | None = None
    session_key: str | None = None
    accepted: bool = False
    will: Will | None = None
    will_optional: bool = False
    """A takeover closes this connection: its will is allowed, not required."""
    will_published: Accepted | None = None
    """The will, once published as an allowed outcome (a close became possible)."""
    will_owed: bool = False
    """The will's publication became certain (the close is due or happened)."""
    keep_alive: int = 0
    idle: float = 0.0
    connack_codes: frozenset[int] = frozenset()
    close_cause: str = ""
    may_close: list[str] = attrs.field(factory=list)
    expected: list[Expected] = attrs.field(factory=list)

    @property
    def open(self) -> bool:
        return self.state != ConnectionState.CLOSED


@attrs.define
class RetainedSlot:
    """What a topic name may hold as retained message.

    ``message`` is the retained message if the server did what it must;
    ``certain`` is False when the server may have done otherwise (a QoS 0
    retained message it may discard, a will it may not have published), in
    which case ``alternatives`` lists other messages (None: nothing) that may
    be retained instead.
    """

    message: Message | None
    certain: bool = True
    alternatives: list[Message | None] = attrs.field(factory=list)

    def candidates(self) -> list[Message]:
        found = [self.message, *self.alternatives]
        unique: list[Message] = []
        for m in found:
            if m is not None and m not in unique:
                unique.append(m)
        return unique


@attrs.frozen
class Obligation:
    """Something the specification requires of the server that has not arrived."""

    client: str
    what: str
    refs: tuple[str, ...]
