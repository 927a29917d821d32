"""The 5.0 subscription chart: a Non-shared Subscription and its options (3.8.3.1, 3.3.1.3, 3.3.4).

Theory of operation: for one session and one topic filter, a subscription is
either absent (``unsubscribed``) or present (``subscribed``) with its options:
the granted Maximum QoS, No Local, Retain As Published, Retain Handling and the
Subscription Identifier. The SUBSCRIBE events are told apart by Retain Handling,
so the table reads as the three bullets of 3.3.1.3: 0 sends the matching
retained messages [MQTT-3.3.1-9], 1 sends them only if the subscription did
not exist [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11]. A SUBSCRIBE with the same
filter replaces the subscription, options and identifier included
[MQTT-3.8.4-3], and with Retain Handling 0 re-sends the retained messages
[MQTT-3.8.4-4]. A message published by another client is forwarded; one the
client published itself is withheld when No Local is set [MQTT-3.8.3-3]. A
forwarded copy keeps the RETAIN flag it was published with only under Retain
As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13], at the lower of the published
and granted QoS [MQTT-3.8.4-8].

``Subscriptions5`` executes the chart for every filter of one session and
answers, for a message, the set of deliveries the server may make: either one
copy at the highest QoS of the matching subscriptions with all their
identifiers [MQTT-3.3.4-2] [MQTT-3.3.4-4], or one copy per matching
subscription, each with its own identifier [MQTT-3.3.4-5]. Only an observation
outside that set is a ``Violation``. Shared subscriptions (``$share/...``,
4.8.2) are not this chart's: ``mqttref.model.v5.shared`` has them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import UsageError, Violation
from mqttref.model.topics import matches, topic_filter_problem

SHARE_PREFIX = "$share/"
"""How a Shared Subscription's Topic Filter starts (4.8.2); such filters belong to ``shared``."""

MAX_SUBSCRIPTION_IDENTIFIER = 268_435_455
"""3.8.2.1.2: a Subscription Identifier is 1 to 268,435,455; 0 is a Protocol Error."""


class SubscriptionState(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    SUBSCRIBED = "subscribed"


class SubscriptionEvent(StrEnum):
    SUBSCRIBE_RETAIN_HANDLING_0 = "subscribe_retain_handling_0"
    SUBSCRIBE_RETAIN_HANDLING_1 = "subscribe_retain_handling_1"
    SUBSCRIBE_RETAIN_HANDLING_2 = "subscribe_retain_handling_2"
    MESSAGE = "message"
    OWN_MESSAGE = "own_message"
    UNSUBSCRIBE = "unsubscribe"
    SESSION_ENDS = "session_ends"


S, E = SubscriptionState, SubscriptionEvent

_SUBSCRIBE_EVENTS = {
    0: E.SUBSCRIBE_RETAIN_HANDLING_0,
    1: E.SUBSCRIBE_RETAIN_HANDLING_1,
    2: E.SUBSCRIBE_RETAIN_HANDLING_2,
}
_FORWARD_REFS = ("MQTT-3.8.4-8", "MQTT-3.3.1-12", "MQTT-3.3.1-13", "MQTT-3.3.4-3")
_GONE_REFS = ("MQTT-3.1.2-4", "MQTT-4.1.0-2")

SUBSCRIPTION_5 = Chart(
    name="subscription_5",
    title="Subscription (MQTT 5.0)",
    description="One Non-shared Subscription of a session: made, replaced and removed by "
    "SUBSCRIBE and UNSUBSCRIBE, with Retain Handling deciding whether the retained messages "
    "are sent, No Local withholding the client's own messages and Retain As Published "
    "deciding the RETAIN flag of what is forwarded.",
    protocol="5.0",
    states=states_of(
        SubscriptionState,
        {
            S.UNSUBSCRIBED: "the session has no subscription with this topic filter",
            S.SUBSCRIBED: "the session has a subscription with this topic filter and its options",
        },
    ),
    events=events_of(
        SubscriptionEvent,
        {
            E.SUBSCRIBE_RETAIN_HANDLING_0: "SUBSCRIBE for this filter with Retain Handling 0",
            E.SUBSCRIBE_RETAIN_HANDLING_1: "SUBSCRIBE for this filter with Retain Handling 1",
            E.SUBSCRIBE_RETAIN_HANDLING_2: "SUBSCRIBE for this filter with Retain Handling 2",
            E.MESSAGE: "another client publishes a message whose topic matches the filter",
            E.OWN_MESSAGE: "this client publishes a message whose topic matches the filter",
            E.UNSUBSCRIBE: "UNSUBSCRIBE naming this filter",
            E.SESSION_ENDS: "the session ends (Clean Start 1, or its expiry interval passes)",
        },
    ),
    initial=S.UNSUBSCRIBED,
    guards=("no_local", "local"),
    actions=("create_send_retained", "create", "replace_send_retained", "replace",
             "forward", "delete"),
    transitions=(
        Transition(S.UNSUBSCRIBED, E.SUBSCRIBE_RETAIN_HANDLING_0, S.SUBSCRIBED,
                   ("MQTT-3.3.1-9",), action="create_send_retained"),
        Transition(S.UNSUBSCRIBED, E.SUBSCRIBE_RETAIN_HANDLING_1, S.SUBSCRIBED,
                   ("MQTT-3.3.1-10",), action="create_send_retained"),
        Transition(S.UNSUBSCRIBED, E.SUBSCRIBE_RETAIN_HANDLING_2, S.SUBSCRIBED,
                   ("MQTT-3.3.1-11",), action="create"),
        Transition(S.SUBSCRIBED, E.SUBSCRIBE_RETAIN_HANDLING_0, S.SUBSCRIBED,
                   ("MQTT-3.8.4-3", "MQTT-3.8.4-4", "MQTT-3.3.1-9"),
                   action="replace_send_retained"),
        Transition(S.SUBSCRIBED, E.SUBSCRIBE_RETAIN_HANDLING_1, S.SUBSCRIBED,
                   ("MQTT-3.8.4-3", "MQTT-3.3.1-10"), action="replace"),
        Transition(S.SUBSCRIBED, E.SUBSCRIBE_RETAIN_HANDLING_2, S.SUBSCRIBED,
                   ("MQTT-3.8.4-3", "MQTT-3.3.1-11"), action="replace"),
        Transition(S.SUBSCRIBED, E.MESSAGE, S.SUBSCRIBED, _FORWARD_REFS, action="forward"),
        Transition(S.SUBSCRIBED, E.OWN_MESSAGE, S.SUBSCRIBED, _FORWARD_REFS, "local", "forward"),
        Transition(S.SUBSCRIBED, E.OWN_MESSAGE, S.SUBSCRIBED, ("MQTT-3.8.3-3",), "no_local"),
        Transition(S.UNSUBSCRIBED, E.MESSAGE, S.UNSUBSCRIBED, ("MQTT-3.3.2-3", "MQTT-3.10.4-2")),
        Transition(S.UNSUBSCRIBED, E.OWN_MESSAGE, S.UNSUBSCRIBED,
                   ("MQTT-3.3.2-3", "MQTT-3.10.4-2")),
        Transition(S.SUBSCRIBED, E.UNSUBSCRIBE, S.UNSUBSCRIBED,
                   ("MQTT-3.10.4-1", "MQTT-3.10.4-2"), action="delete"),
        Transition(S.UNSUBSCRIBED, E.UNSUBSCRIBE, S.UNSUBSCRIBED, ("MQTT-3.10.4-5",)),
        Transition(S.SUBSCRIBED, E.SESSION_ENDS, S.UNSUBSCRIBED, _GONE_REFS, action="delete"),
        Transition(S.UNSUBSCRIBED, E.SESSION_ENDS, S.UNSUBSCRIBED, _GONE_REFS),
    ),
)  # fmt: skip


def _problem(condition: bool, text: str) -> None:
    if condition:
        raise UsageError(text)


@attrs.frozen
class SubscriptionOptions:
    """What a SUBSCRIBE set for one filter, as granted: the SUBACK's QoS and the options.

    Values the specification calls a Protocol Error (Retain Handling 3, a
    Subscription Identifier of 0) cannot be held: the server closes instead of
    subscribing, which is not this chart's business.
    """

    granted_qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None

    def __attrs_post_init__(self) -> None:
        _problem(
            self.granted_qos not in (0, 1, 2),
            f"granted QoS {self.granted_qos}: a SUBACK grants QoS 0, 1 or 2 (3.9.3)",
        )
        _problem(
            self.retain_handling not in (0, 1, 2),
            f"Retain Handling {self.retain_handling} is a Protocol Error (0x82, 3.8.3.1)",
        )
        _problem(
            self.identifier is not None and not 1 <= self.identifier <= MAX_SUBSCRIPTION_IDENTIFIER,
            f"Subscription Identifier {self.identifier} is a Protocol Error "
            "(0x82, 3.8.2.1.2): it is 1 to 268,435,455",
        )

    @property
    def identifiers(self) -> tuple[int, ...]:
        return () if self.identifier is None else (self.identifier,)


@attrs.frozen
class Message5:
    """An Application Message as the server took it: who published it and how."""

    publisher: str
    """The ClientID of the publishing connection (No Local compares it [MQTT-3.8.3-3])."""
    topic: str
    qos: int
    retain: bool = False


def _sorted_ids(identifiers: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(identifiers))


@attrs.frozen(order=True)
class Copy:
    """One PUBLISH the server sends the subscriber: what the model can judge of it.

    Identifiers are kept sorted: their order is not significant [MQTT-3.3.4-4],
    but how many times each appears is (the same identifier on two matching
    subscriptions appears twice, 3.3.4).
    """

    qos: int
    retain: bool
    identifiers: tuple[int, ...] = attrs.field(default=(), converter=_sorted_ids)

    def __str__(self) -> str:
        ids = f" ids={list(self.identifiers)}" if self.identifiers else ""
        return f"QoS {self.qos} retain={int(self.retain)}{ids}"


Outcome = tuple[Copy, ...]
"""The copies one message makes to one client, sorted: one allowed outcome."""


def describe(outcome: Outcome) -> str:
    if not outcome:
        return "no copy"
    return f"{len(outcome)} cop{'y' if len(outcome) == 1 else 'ies'}: " + ", ".join(
        str(c) for c in outcome
    )


@attrs.frozen
class RetainedOffer:
    """The retained messages one SUBSCRIBE makes the server send, by topic name.

    ``owed`` must come [MQTT-3.3.1-9] [MQTT-3.3.1-10]; ``optional`` are retained
    QoS 0 messages, which the server MAY have discarded at any time (3.3.1.3);
    any other topic is forbidden (``forbid_refs`` say why).
    """

    owed: Mapping[str, Copy]
    optional: Mapping[str, Copy]
    owe_refs: tuple[str, ...]
    forbid_refs: tuple[str, ...]


_NONE_SENT = RetainedOffer({}, {}, (), ())


@attrs.define
class Subscriptions5:
    """The SUBSCRIPTION_5 chart for every topic filter of one session (one ClientID)."""

    client_id: str
    retain_available: bool = True
    """The server's Retain Available (3.2.2.3.5): with 0, no retained message is ever sent."""
    _states: dict[str, str] = attrs.field(factory=dict, init=False)
    _options: dict[str, SubscriptionOptions] = attrs.field(factory=dict, init=False)

    def state(self, topic_filter: str) -> str:
        return self._states.get(topic_filter, SUBSCRIPTION_5.initial)

    def options(self, topic_filter: str) -> SubscriptionOptions | None:
        return self._options.get(topic_filter)

    @property
    def filters(self) -> tuple[str, ...]:
        return tuple(sorted(self._options))

    def _fire(self, topic_filter: str, event: str) -> Transition:
        options = self._options.get(topic_filter)
        row = SUBSCRIPTION_5.fire(self.state(topic_filter), event, _holds(options))
        self._states[topic_filter] = row.target
        return row

    # ------------------------------------------------------------- subscribing

    def subscribe(
        self, topic_filter: str, options: SubscriptionOptions, retained: Mapping[str, int]
    ) -> RetainedOffer:
        """Make or replace the subscription; answer which retained messages it sends.

        ``retained`` maps each topic name holding a retained message to that
        message's QoS. Sent because of a SUBSCRIBE, they carry RETAIN=1 (3.3.1.3,
        3.8.3.1) whatever Retain As Published says, at the lower of their QoS and
        the granted one [MQTT-3.8.4-8], with this subscription's identifier.
        """
        _problem(
            topic_filter.startswith(SHARE_PREFIX),
            f"{topic_filter!r} is a Shared Subscription's filter: see model.v5.shared",
        )
        _problem(
            topic_filter_problem(topic_filter) is not None,
            f"{topic_filter!r} is not a Topic Filter (4.7): the server answers 0x8F or closes",
        )
        row = self._fire(topic_filter, _SUBSCRIBE_EVENTS[options.retain_handling])
        self._options[topic_filter] = options
        if not row.action or not row.action.endswith("send_retained"):
            return RetainedOffer({}, {}, (), row.refs)
        if not self.retain_available:
            return _NONE_SENT
        owed: dict[str, Copy] = {}
        optional: dict[str, Copy] = {}
        for topic, qos in sorted(retained.items()):
            if matches(topic_filter, topic):
                copy = Copy(min(qos, options.granted_qos), True, options.identifiers)
                (optional if qos == 0 else owed)[topic] = copy
        return RetainedOffer(owed, optional, row.refs, ("MQTT-3.3.2-3",))

    def unsubscribe(self, topic_filter: str) -> bool:
        """Remove the subscription; whether it existed (UNSUBACK 0x00, else 0x11)."""
        existed = self.state(topic_filter) == S.SUBSCRIBED
        self._fire(topic_filter, E.UNSUBSCRIBE)
        self._options.pop(topic_filter, None)
        return existed

    def end_session(self) -> None:
        """The session ends: every subscription and identifier goes with it."""
        for topic_filter in list(self._states):
            self._fire(topic_filter, E.SESSION_ENDS)
        self._options.clear()

    # -------------------------------------------------------------- delivering

    def forwarding(self, message: Message5) -> tuple[SubscriptionOptions, ...]:
        """The options of the subscriptions that forward ``message`` (the chart's
        ``forward`` rows): matching ones, less No Local ones for the client's own."""
        event = E.OWN_MESSAGE if message.publisher == self.client_id else E.MESSAGE
        found = []
        for topic_filter, options in sorted(self._options.items()):
            if not matches(topic_filter, message.topic):
                continue
            if SUBSCRIPTION_5.fire(S.SUBSCRIBED, event, _holds(options)).action == "forward":
                found.append(options)
        return tuple(found)

    def withheld_by_no_local(self, message: Message5) -> bool:
        return message.publisher == self.client_id and any(
            o.no_local and matches(f, message.topic) for f, o in self._options.items()
        )

    def deliveries(self, message: Message5) -> frozenset[Outcome]:
        """Every outcome the server may choose for ``message`` towards this client.

        One copy: at the highest granted QoS of the forwarding subscriptions
        (no more than published) [MQTT-3.3.4-2] [MQTT-3.8.4-8], with all their
        identifiers [MQTT-3.3.4-4]; its RETAIN flag is the published one under a
        subscription with Retain As Published, 0 under one without
        [MQTT-3.3.1-12] [MQTT-3.3.1-13] (overlapping subscriptions that disagree
        allow either). Or, with several forwarding subscriptions, one copy for
        each, at its own QoS and with its own identifier [MQTT-3.3.4-5].
        """
        forwarding = self.forwarding(message)
        if not forwarding:
            return frozenset({()})
        qos = min(message.qos, max(o.granted_qos for o in forwarding))
        identifiers = [i for o in forwarding for i in o.identifiers]
        flags = {message.retain and o.retain_as_published for o in forwarding}
        outcomes: set[Outcome] = {(Copy(qos, flag, identifiers),) for flag in flags}
        if len(forwarding) > 1:
            outcomes.add(
                tuple(
                    sorted(
                        Copy(
                            min(message.qos, o.granted_qos),
                            message.retain and o.retain_as_published,
                            o.identifiers,
                        )
                        for o in forwarding
                    )
                )
            )
        return frozenset(outcomes)

    def check(self, message: Message5, observed: Iterable[Copy]) -> None:
        """Raise ``Violation`` unless the copies observed are an allowed outcome.

        A message published at QoS 1 and forwarded at QoS 0 may come more than
        once (3.8.4: the server is permitted to send duplicates in that case).
        """
        seen: Outcome = tuple(sorted(observed))
        allowed = self.deliveries(message)
        if seen in allowed:
            return
        if message.qos == 1 and any(_duplicates_allowed(o, seen) for o in allowed):
            return
        raise Violation(
            self.client_id,
            f"{message.topic!r} QoS {message.qos} retain={int(message.retain)} from "
            f"{message.publisher}: {self._diagnosis(message, allowed, seen)}",
            refs=self._refs(message, allowed, seen),
            allowed=sorted(describe(o) for o in allowed),
            arrived=describe(seen),
        )

    def _diagnosis(self, message: Message5, allowed: frozenset[Outcome], seen: Outcome) -> str:
        if allowed == {()}:
            if self.withheld_by_no_local(message):
                return "No Local withholds the client's own message"
            return "no subscription of the client matches the topic"
        if not seen:
            return "a copy is owed to the client's matching subscriptions"
        return "the copies are none of the allowed outcomes"

    def _refs(
        self, message: Message5, allowed: frozenset[Outcome], seen: Outcome
    ) -> tuple[str, ...]:
        if allowed == {()}:
            if self.withheld_by_no_local(message):
                return ("MQTT-3.8.3-3",)
            return ("MQTT-3.3.2-3", "MQTT-3.10.4-2")
        if not seen:
            return ("MQTT-4.5.0-1", "MQTT-3.3.4-2")
        same_size = [o for o in allowed if len(o) == len(seen)]
        if not same_size:
            return ("MQTT-3.3.4-2", "MQTT-3.3.4-5")
        return min((_differences(o, seen) for o in same_size), key=lambda r: (len(r), r))

    def check_retained(self, offer: RetainedOffer, observed: Mapping[str, Copy]) -> None:
        """Raise ``Violation`` unless the retained messages a SUBSCRIBE brought
        (topic name -> copy) are the offer's owed ones plus any optional ones."""
        for topic, copy in sorted(observed.items()):
            expected = offer.owed.get(topic, offer.optional.get(topic))
            if expected is None:
                raise Violation(
                    self.client_id,
                    f"retained {topic!r} is not to be sent",
                    refs=offer.forbid_refs or ("MQTT-3.3.2-3",),
                    allowed=sorted(offer.owed),
                    arrived=str(copy),
                )
            if copy != expected:
                raise Violation(
                    self.client_id,
                    f"retained {topic!r} sent as {copy}",
                    refs=_retained_differences(expected, copy, offer.owe_refs),
                    allowed=[str(expected)],
                    arrived=str(copy),
                )
        missing = sorted(set(offer.owed) - set(observed))
        if missing:
            raise Violation(
                self.client_id,
                f"retained message(s) {missing} not sent",
                refs=offer.owe_refs,
                allowed=sorted(offer.owed),
                arrived=", ".join(sorted(observed)) or "nothing",
            )


def _holds(options: SubscriptionOptions | None) -> Callable[[str], bool]:
    """The chart's guards for one subscription: ``no_local`` and its complement ``local``."""

    def holds(guard: str) -> bool:
        if options is None:
            raise UsageError(f"guard {guard!r} asked of a filter with no subscription")
        return options.no_local == (guard == "no_local")

    return holds


def _duplicates_allowed(outcome: Outcome, seen: Outcome) -> bool:
    """``seen`` is ``outcome`` plus repeats of its QoS 0 copies (only)."""
    extra = Counter(seen)
    extra.subtract(Counter(outcome))
    if any(n < 0 for n in extra.values()):
        return False
    return all(copy.qos == 0 and copy in outcome for copy, n in extra.items() if n > 0)


def _retained_differences(expected: Copy, seen: Copy, owe_refs: tuple[str, ...]) -> tuple[str, ...]:
    """What a retained copy sent on SUBSCRIBE got wrong: its QoS [MQTT-3.8.4-8], its
    RETAIN flag (always 1 then, under the Retain Handling rules of 3.3.1.3) or its
    identifier [MQTT-3.3.4-3]."""
    refs: set[str] = set()
    if expected.qos != seen.qos:
        refs.add("MQTT-3.8.4-8")
    if expected.retain != seen.retain:
        refs.update(owe_refs)
    if expected.identifiers != seen.identifiers:
        refs.add("MQTT-3.3.4-3")
    return tuple(sorted(refs))


def _differences(expected: Outcome, seen: Outcome) -> tuple[str, ...]:
    """The statements a same-sized observation breaks, copy by copy in sorted order."""
    refs: set[str] = set()
    for want, got in zip(expected, seen, strict=True):
        if want.qos != got.qos:
            refs.update(("MQTT-3.3.4-2", "MQTT-3.8.4-8"))
        if want.retain != got.retain:
            refs.update(("MQTT-3.3.1-12", "MQTT-3.3.1-13"))
        if want.identifiers != got.identifiers:
            refs.update(("MQTT-3.3.4-3", "MQTT-3.3.4-4" if len(seen) == 1 else "MQTT-3.3.4-5"))
    return tuple(sorted(refs))
