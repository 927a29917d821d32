"""The broker model's bookkeeping records: messages, deliveries, sessions,
connections and the server's owed answers.

Mutable attrs classes owned by one ``BrokerModel``; nothing here decides
anything, the charts and ``mqttref.model.broker`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from mqttref.impl.codec.packets import NO_PROPERTIES, Connect, Properties, Will
from mqttref.model.connection import ConnectionState
from mqttref.model.flows import SideFlows

# Re-exported where it used to live (client.py and tests import it from here); the
# redundant alias is how mypy --strict is told the re-export is meant.
from mqttref.model.obligations import Obligation as Obligation  # noqa: PLC0414
from mqttref.model.session import SessionState

if TYPE_CHECKING:  # annotations only: the 5.0 components never import this module
    from mqttref.model.v5.answers import Answers5
    from mqttref.model.v5.connack import Connack5
    from mqttref.model.v5.flow_control import SendQuota
    from mqttref.model.v5.reason_codes import Situation
    from mqttref.model.v5.session import Session5
    from mqttref.model.v5.topic_alias import TopicAliases
    from mqttref.model.v5.will import Will5

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
    properties: Properties = NO_PROPERTIES
    """At 5.0: the properties forwarded unaltered (3.3.2.3); none from a 3.1.1 publisher."""
    retain: bool = False
    """The RETAIN flag it was published with (Retain As Published forwards it)."""
    at: float = 0.0
    """Model time the server took it (its Message Expiry Interval counts from here)."""


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
    identifiers: frozenset[int] = frozenset()
    """At 5.0: the Subscription Identifiers the PUBLISH must carry (3.3.4)."""

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
    no_local: bool = False
    """5.0: the client's own messages are not forwarded to it [MQTT-3.8.3-3]."""
    retain_as_published: bool = False
    """5.0: forwarded copies keep the published RETAIN flag [MQTT-3.3.1-12/-13]."""
    identifier: int | None = None
    """5.0: the SUBSCRIBE's Subscription Identifier, sent with its messages (3.3.4)."""
    retain_handling: int = 0
    """5.0: whether retained messages answer the SUBSCRIBE (3.3.1.3)."""
    replaced: bool = False
    """The SUBSCRIBE replaced a subscription with the same filter [MQTT-3.8.4-3]."""

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
    shared: dict[str, Subscription] = attrs.field(factory=dict)
    """5.0: this session's Shared Subscriptions (``$share/...``), routed by groups."""
    v5: Session5 | None = None
    """While a level-5 connection owns the session: its 5.0 lifetime (Clean Start and
    Session Expiry Interval, ``mqttref.model.v5.session``); None under 3.1.1 rules."""
    discard_refs: tuple[str, ...] = ("MQTT-3.1.2-6",)
    """What made the server discard the subscriptions in ``discarded``: a clean
    session (3.1.1), Clean Start 1 [MQTT-3.1.2-4] or expiry [MQTT-4.1.0-2] (5.0)."""
    discarded: dict[str, Subscription] = attrs.field(factory=dict)
    """Subscriptions an earlier session of this client id had when it was discarded
    [MQTT-3.1.2-6] and that were not made again since: a message only they match is
    the server reusing state it must not reuse."""

    pubrecs: dict[int, list[int]] = attrs.field(factory=dict)
    """Per Packet Identifier of the client's QoS 2 PUBLISHes, the Reason Codes of the
    PUBRECs the server sent since the identifier's last PUBCOMP (0x00 at 3.1.1): the
    exchange the server holds, for its PUBCOMP's code (``qos2_receiver``)."""

    def holds_nothing(self) -> bool:
        return not (
            self.subscriptions or self.pending or self.flows.outgoing or self.flows.incoming
        )

    def discard(self) -> None:
        """Drop all session state [MQTT-3.1.2-6], remembering the subscriptions dropped."""
        self.discarded.update(self.subscriptions)
        self.subscriptions.clear()
        self.shared.clear()
        self.unsubscribed.clear()
        self.pending.clear()
        self.flows.clear()
        self.pubrecs.clear()
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
    situations: tuple[frozenset[object], ...] = ()
    """At 5.0, for a SUBACK or UNSUBACK: the Reason Code situations of each filter."""


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
    level: int = 4
    """The CONNECT's Protocol Level: 3 or 4 (3.1.1 rules) or 5 (5.0 rules)."""
    connack_situations: frozenset[Situation] = frozenset()
    """At 5.0: what the CONNACK may answer (``reason_codes.connack_situations``)."""
    session5: Session5 | None = None
    """At 5.0: the session lifetime the pending CONNECT will attach to."""
    session_present: bool = False
    """The accepting CONNACK's Session Present."""
    will5: Will5 | None = None
    """At 5.0: the will's delay (``mqttref.model.v5.will``)."""
    disconnect_sent: int | None = None
    """At 5.0: the reason code of the server's DISCONNECT, once observed."""
    quota: SendQuota | None = None
    """At 5.0: the server's send quota, the client's Receive Maximum (4.9)."""
    aliases: TopicAliases | None = None
    """At 5.0: the client's map of the server's Topic Aliases (3.3.2.3.4)."""
    client_aliases: TopicAliases | None = None
    """At 5.0: the server's map of the client's Topic Aliases (its CONNACK's maximum)."""
    maximum_packet_size: int | None = None
    """At 5.0: the client's Maximum Packet Size (None: the protocol's own limit)."""
    disconnect_cause: str = ""
    """At 5.0: a DISCONNECT situation the client's packet caused, if the model knows it."""
    answers5: Answers5 | None = None
    """At 5.0: the SUBSCRIBE and UNSUBSCRIBE requests the server answered (``answers``),
    so that a second answer to one is named as such."""
    connack5: Connack5 | None = None
    """At 5.0: the CONNECT and what its CONNACK settled (``connack``)."""

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
