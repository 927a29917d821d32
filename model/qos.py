"""The QoS 1 and QoS 2 delivery flows (4.3), for either side of a connection.

Theory of operation: one flow is one Application Message travelling between a
*sender* and a *receiver* under one packet identifier. The same four charts
serve the server (delivering to a subscriber, receiving from a publisher) and
the client (publishing, receiving): a side tracks its flows keyed by packet id
(``mqttref.model.flows``) and fires the chart event for each packet it sends
or receives. A packet the chart has no row for (a PUBACK for an id never
sent, a PUBLISH re-sent after its PUBREL) is a protocol error.

States whose name ends in ``_due`` are obligations: the side must send the
named packet (once connected). ``connection_lost`` moves unacknowledged flows
to the state that makes the side re-send on reconnect [MQTT-4.4.0-1]; the
``retry`` loops are the seed's re-send on timeout, which 3.1.1 allows but does
not require.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

from mqttref.model.chart import Chart, Event, State, Transition, events_of, states_of


class SenderState(StrEnum):
    PENDING = "pending"
    AWAITING_PUBACK = "awaiting_puback"
    AWAITING_PUBREC = "awaiting_pubrec"
    PUBLISH_RESEND_DUE = "publish_resend_due"
    PUBREL_DUE = "pubrel_due"
    AWAITING_PUBCOMP = "awaiting_pubcomp"
    COMPLETED = "completed"


class SenderEvent(StrEnum):
    SEND_PUBLISH = "send_publish"
    RECEIVE_PUBACK = "receive_puback"
    RECEIVE_PUBREC = "receive_pubrec"
    SEND_PUBREL = "send_pubrel"
    RECEIVE_PUBCOMP = "receive_pubcomp"
    CONNECTION_LOST = "connection_lost"


class ReceiverState(StrEnum):
    IDLE = "idle"
    PUBACK_DUE = "puback_due"
    AWAITING_RESEND = "awaiting_resend"
    PUBREC_DUE = "pubrec_due"
    AWAITING_PUBREL = "awaiting_pubrel"
    PUBCOMP_DUE = "pubcomp_due"
    COMPLETED = "completed"


class ReceiverEvent(StrEnum):
    RECEIVE_PUBLISH = "receive_publish"
    SEND_PUBACK = "send_puback"
    SEND_PUBREC = "send_pubrec"
    RECEIVE_PUBREL = "receive_pubrel"
    SEND_PUBCOMP = "send_pubcomp"
    CONNECTION_LOST = "connection_lost"


S, E = SenderState, SenderEvent
_T = TypeVar("_T", State, Event)


def _only(items: tuple[_T, ...], names: Iterable[StrEnum]) -> tuple[_T, ...]:
    """The declarations whose names are in ``names``, in declaration order."""
    wanted = {str(n) for n in names}
    return tuple(item for item in items if item.name in wanted)


R, RE = ReceiverState, ReceiverEvent

SENDER_STATES = {
    S.PENDING: "the message is owned but no PUBLISH has been sent yet",
    S.AWAITING_PUBACK: "PUBLISH sent; unacknowledged until PUBACK",
    S.AWAITING_PUBREC: "PUBLISH sent; unacknowledged until PUBREC",
    S.PUBLISH_RESEND_DUE: "the connection was lost before the acknowledgement; "
    "the PUBLISH must be re-sent with DUP=1 and the same packet id on reconnect",
    S.PUBREL_DUE: "PUBREC received: a PUBREL must be sent",
    S.AWAITING_PUBCOMP: "PUBREL sent; unacknowledged until PUBCOMP",
    S.COMPLETED: "the flow is over; the packet id is free again",
}
SENDER_EVENTS = {
    E.SEND_PUBLISH: "the sender sends PUBLISH (DUP=0 the first time, DUP=1 when re-sending)",
    E.RECEIVE_PUBACK: "the sender receives PUBACK",
    E.RECEIVE_PUBREC: "the sender receives PUBREC",
    E.SEND_PUBREL: "the sender sends PUBREL",
    E.RECEIVE_PUBCOMP: "the sender receives PUBCOMP",
    E.CONNECTION_LOST: "the network connection closes while the session lives on",
}
SENDER_GUARDS = ("first_send", "dup")

QOS1_SENDER = Chart(
    name="qos1_sender",
    title="QoS 1 sender",
    description="At least once (4.3.2), the side that publishes: PUBLISH until PUBACK. "
    "The `send_publish [dup]` loop is the seed's retry on timeout (allowed at any time, "
    "so its timing is free); after a lost connection the re-send with DUP=1 and the same "
    "packet id is owed (`publish_resend_due`).",
    states=_only(
        states_of(SenderState, SENDER_STATES, finals=[S.COMPLETED]),
        {S.PENDING, S.AWAITING_PUBACK, S.PUBLISH_RESEND_DUE, S.COMPLETED},
    ),
    events=_only(
        events_of(SenderEvent, SENDER_EVENTS),
        {E.SEND_PUBLISH, E.RECEIVE_PUBACK, E.CONNECTION_LOST},
    ),
    initial=S.PENDING,
    guards=SENDER_GUARDS,
    transitions=(
        Transition(
            S.PENDING,
            E.SEND_PUBLISH,
            S.AWAITING_PUBACK,
            ("MQTT-4.3.2-1", "MQTT-2.3.1-2"),
            "first_send",
        ),
        Transition(
            S.AWAITING_PUBACK,
            E.SEND_PUBLISH,
            S.AWAITING_PUBACK,
            ("MQTT-3.3.1-1", "MQTT-2.3.1-3"),
            "dup",
        ),
        Transition(
            S.AWAITING_PUBACK, E.RECEIVE_PUBACK, S.COMPLETED, ("MQTT-4.3.2-1", "MQTT-2.3.1-6")
        ),
        Transition(S.AWAITING_PUBACK, E.CONNECTION_LOST, S.PUBLISH_RESEND_DUE, ("MQTT-4.4.0-1",)),
        Transition(
            S.PUBLISH_RESEND_DUE,
            E.SEND_PUBLISH,
            S.AWAITING_PUBACK,
            ("MQTT-4.4.0-1", "MQTT-3.3.1-1"),
            "dup",
        ),
        Transition(
            S.PUBLISH_RESEND_DUE, E.CONNECTION_LOST, S.PUBLISH_RESEND_DUE, ("MQTT-4.4.0-1",)
        ),
        Transition(S.PENDING, E.CONNECTION_LOST, S.PENDING, ("MQTT-3.1.2-5",)),
    ),
)

QOS2_SENDER = Chart(
    name="qos2_sender",
    title="QoS 2 sender",
    description="Exactly once (4.3.3), the side that publishes: PUBLISH until PUBREC, "
    "then PUBREL until PUBCOMP; never PUBLISH again once PUBREL is sent. The `[dup]` "
    "loops are the seed's retry on timeout; after a lost connection the PUBLISH or the "
    "PUBREL is owed again.",
    states=_only(
        states_of(SenderState, SENDER_STATES, finals=[S.COMPLETED]),
        set(SenderState) - {S.AWAITING_PUBACK},
    ),
    events=_only(events_of(SenderEvent, SENDER_EVENTS), set(SenderEvent) - {E.RECEIVE_PUBACK}),
    initial=S.PENDING,
    guards=SENDER_GUARDS,
    transitions=(
        Transition(
            S.PENDING,
            E.SEND_PUBLISH,
            S.AWAITING_PUBREC,
            ("MQTT-4.3.3-1", "MQTT-2.3.1-2"),
            "first_send",
        ),
        Transition(
            S.AWAITING_PUBREC,
            E.SEND_PUBLISH,
            S.AWAITING_PUBREC,
            ("MQTT-3.3.1-1", "MQTT-2.3.1-3"),
            "dup",
        ),
        Transition(
            S.AWAITING_PUBREC, E.RECEIVE_PUBREC, S.PUBREL_DUE, ("MQTT-4.3.3-1", "MQTT-2.3.1-6")
        ),
        Transition(
            S.PUBREL_DUE, E.SEND_PUBLISH, S.PUBREL_DUE, ("MQTT-3.3.1-1", "MQTT-4.3.3-1"), "dup"
        ),
        Transition(
            S.PUBREL_DUE, E.SEND_PUBREL, S.AWAITING_PUBCOMP, ("MQTT-4.3.3-1", "MQTT-2.3.1-6")
        ),
        Transition(S.PUBREL_DUE, E.RECEIVE_PUBREC, S.PUBREL_DUE, ("MQTT-4.3.3-1",)),
        Transition(
            S.AWAITING_PUBCOMP, E.SEND_PUBREL, S.AWAITING_PUBCOMP, ("MQTT-4.4.0-1", "MQTT-2.3.1-3")
        ),
        Transition(S.AWAITING_PUBCOMP, E.RECEIVE_PUBREC, S.AWAITING_PUBCOMP, ("MQTT-4.3.3-1",)),
        Transition(S.AWAITING_PUBCOMP, E.RECEIVE_PUBCOMP, S.COMPLETED, ("MQTT-4.3.3-1",)),
        Transition(S.AWAITING_PUBREC, E.CONNECTION_LOST, S.PUBLISH_RESEND_DUE, ("MQTT-4.4.0-1",)),
        Transition(
            S.PUBLISH_RESEND_DUE,
            E.SEND_PUBLISH,
            S.AWAITING_PUBREC,
            ("MQTT-4.4.0-1", "MQTT-3.3.1-1"),
            "dup",
        ),
        Transition(
            S.PUBLISH_RESEND_DUE, E.CONNECTION_LOST, S.PUBLISH_RESEND_DUE, ("MQTT-4.4.0-1",)
        ),
        Transition(S.PUBREL_DUE, E.CONNECTION_LOST, S.PUBREL_DUE, ("MQTT-4.4.0-1",)),
        Transition(S.AWAITING_PUBCOMP, E.CONNECTION_LOST, S.PUBREL_DUE, ("MQTT-4.4.0-1",)),
        Transition(S.PENDING, E.CONNECTION_LOST, S.PENDING, ("MQTT-3.1.2-5",)),
    ),
)

RECEIVER_STATES = {
    R.IDLE: "no message under this packet id",
    R.PUBACK_DUE: "PUBLISH received and owned: a PUBACK must be sent",
    R.AWAITING_RESEND: "the connection was lost before the PUBACK: the message is owned "
    "and the sender will re-send it (with DUP=1) on reconnect",
    R.PUBREC_DUE: "PUBLISH received and owned: a PUBREC must be sent",
    R.AWAITING_PUBREL: "PUBREC sent; later PUBLISHes with this id are duplicates",
    R.PUBCOMP_DUE: "PUBREL received: a PUBCOMP must be sent",
    R.COMPLETED: "the flow is over; the same id now starts a new message",
}
RECEIVER_EVENTS = {
    RE.RECEIVE_PUBLISH: "the receiver receives PUBLISH with this packet id",
    RE.SEND_PUBACK: "the receiver sends PUBACK",
    RE.SEND_PUBREC: "the receiver sends PUBREC",
    RE.RECEIVE_PUBREL: "the receiver receives PUBREL",
    RE.SEND_PUBCOMP: "the receiver sends PUBCOMP",
    RE.CONNECTION_LOST: "the network connection closes while the session lives on",
}
RECEIVER_ACTIONS = ("take_ownership", "release_onward")

QOS1_RECEIVER = Chart(
    name="qos1_receiver",
    title="QoS 1 receiver",
    description="At least once (4.3.2), the side that receives: PUBACK each PUBLISH; "
    "after the PUBACK the same id is a new message.",
    states=_only(
        states_of(ReceiverState, RECEIVER_STATES, finals=[R.COMPLETED]),
        {R.IDLE, R.PUBACK_DUE, R.AWAITING_RESEND, R.COMPLETED},
    ),
    events=_only(
        events_of(ReceiverEvent, RECEIVER_EVENTS),
        {RE.RECEIVE_PUBLISH, RE.SEND_PUBACK, RE.CONNECTION_LOST},
    ),
    initial=R.IDLE,
    actions=RECEIVER_ACTIONS,
    transitions=(
        Transition(
            R.IDLE,
            RE.RECEIVE_PUBLISH,
            R.PUBACK_DUE,
            ("MQTT-4.3.2-2", "MQTT-3.3.4-1"),
            action="take_ownership",
        ),
        Transition(
            R.PUBACK_DUE,
            RE.RECEIVE_PUBLISH,
            R.PUBACK_DUE,
            ("MQTT-4.3.2-2",),
            action="take_ownership",
        ),
        Transition(R.PUBACK_DUE, RE.SEND_PUBACK, R.COMPLETED, ("MQTT-4.3.2-2", "MQTT-2.3.1-6")),
        Transition(R.PUBACK_DUE, RE.CONNECTION_LOST, R.AWAITING_RESEND, ("MQTT-4.4.0-1",)),
        Transition(R.AWAITING_RESEND, RE.CONNECTION_LOST, R.AWAITING_RESEND, ("MQTT-4.4.0-1",)),
        Transition(
            R.AWAITING_RESEND,
            RE.RECEIVE_PUBLISH,
            R.PUBACK_DUE,
            ("MQTT-4.4.0-1", "MQTT-4.3.2-2"),
            action="take_ownership",
        ),
        Transition(R.AWAITING_RESEND, RE.SEND_PUBACK, R.COMPLETED, ("MQTT-4.3.2-2",)),
    ),
)

QOS2_RECEIVER = Chart(
    name="qos2_receiver",
    title="QoS 2 receiver",
    description="Exactly once (4.3.3), the side that receives: PUBREC each PUBLISH "
    "without passing duplicates on, PUBCOMP each PUBREL.",
    states=_only(
        states_of(ReceiverState, RECEIVER_STATES, finals=[R.COMPLETED]),
        set(ReceiverState) - {R.PUBACK_DUE, R.AWAITING_RESEND},
    ),
    events=_only(events_of(ReceiverEvent, RECEIVER_EVENTS), set(ReceiverEvent) - {RE.SEND_PUBACK}),
    initial=R.IDLE,
    actions=RECEIVER_ACTIONS,
    transitions=(
        Transition(
            R.IDLE,
            RE.RECEIVE_PUBLISH,
            R.PUBREC_DUE,
            ("MQTT-4.3.3-2", "MQTT-3.3.4-1"),
            action="take_ownership",
        ),
        Transition(R.PUBREC_DUE, RE.RECEIVE_PUBLISH, R.PUBREC_DUE, ("MQTT-4.3.3-2",)),
        Transition(
            R.PUBREC_DUE, RE.SEND_PUBREC, R.AWAITING_PUBREL, ("MQTT-4.3.3-2", "MQTT-2.3.1-6")
        ),
        Transition(R.AWAITING_PUBREL, RE.RECEIVE_PUBLISH, R.PUBREC_DUE, ("MQTT-4.3.3-2",)),
        Transition(
            R.AWAITING_PUBREL,
            RE.RECEIVE_PUBREL,
            R.PUBCOMP_DUE,
            ("MQTT-4.3.3-2",),
            action="release_onward",
        ),
        Transition(
            R.PUBREC_DUE,
            RE.RECEIVE_PUBREL,
            R.PUBCOMP_DUE,
            ("MQTT-4.3.3-2",),
            action="release_onward",
        ),
        Transition(R.IDLE, RE.RECEIVE_PUBREL, R.PUBCOMP_DUE, ("MQTT-4.3.3-2",)),
        Transition(R.PUBCOMP_DUE, RE.RECEIVE_PUBREL, R.PUBCOMP_DUE, ("MQTT-4.3.3-2",)),
        Transition(R.PUBCOMP_DUE, RE.SEND_PUBCOMP, R.COMPLETED, ("MQTT-4.3.3-2", "MQTT-2.3.1-6")),
        Transition(R.PUBREC_DUE, RE.CONNECTION_LOST, R.AWAITING_PUBREL, ("MQTT-4.4.0-1",)),
        Transition(R.AWAITING_PUBREL, RE.CONNECTION_LOST, R.AWAITING_PUBREL, ("MQTT-4.4.0-1",)),
        Transition(R.PUBCOMP_DUE, RE.CONNECTION_LOST, R.AWAITING_PUBREL, ("MQTT-4.4.0-1",)),
    ),
)

QOS_CHARTS = (QOS1_SENDER, QOS1_RECEIVER, QOS2_SENDER, QOS2_RECEIVER)
