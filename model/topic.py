"""The topic chart: one topic name's retained message and its forwarding (3.3.1.3).

Theory of operation: a topic name either holds a retained message or not.
A PUBLISH with RETAIN=1 and a payload replaces it [MQTT-3.3.1-5]; with an
empty payload it removes it and is never stored [MQTT-3.3.1-10]
[MQTT-3.3.1-11]; with RETAIN=0 it leaves it alone [MQTT-3.3.1-12]. Every
PUBLISH is forwarded to the matching subscribers with RETAIN=0
[MQTT-3.3.1-9]. A new subscription whose filter matches the name receives the
retained message with RETAIN=1 [MQTT-3.3.1-6] [MQTT-3.3.1-8]. A retained
QoS 0 message may be discarded by the server at any time [MQTT-3.3.1-7]: the
model answers "delivered or not" for it.
"""

from __future__ import annotations

from enum import StrEnum

from mqttref.model.chart import Chart, Transition, events_of, states_of


class TopicState(StrEnum):
    NO_RETAINED = "no_retained"
    RETAINED = "retained"


class TopicEvent(StrEnum):
    PUBLISH = "publish"
    PUBLISH_RETAINED = "publish_retained"
    SUBSCRIBE = "subscribe"


T, TE = TopicState, TopicEvent

TOPIC = Chart(
    name="topic",
    title="Topic",
    description="One topic name: forwarding to the subscribers whose filters match it, "
    "and the retained message sent to each new matching subscription.",
    states=states_of(
        TopicState,
        {
            T.NO_RETAINED: "no retained message is stored for this topic name",
            T.RETAINED: "the last non-empty RETAIN=1 message is stored",
        },
    ),
    events=events_of(
        TopicEvent,
        {
            TE.PUBLISH: "a PUBLISH with RETAIN=0 (or a will with retain 0) is accepted",
            TE.PUBLISH_RETAINED: "a PUBLISH with RETAIN=1 (or a retained will) is accepted",
            TE.SUBSCRIBE: "a subscription whose filter matches this name is made",
        },
    ),
    initial=T.NO_RETAINED,
    guards=("payload", "empty_payload"),
    actions=("forward", "store_and_forward", "clear_and_forward", "send_retained"),
    transitions=(
        Transition(
            T.NO_RETAINED,
            TE.PUBLISH,
            T.NO_RETAINED,
            ("MQTT-3.3.1-12", "MQTT-3.3.1-9"),
            action="forward",
        ),
        Transition(
            T.RETAINED, TE.PUBLISH, T.RETAINED, ("MQTT-3.3.1-12", "MQTT-3.3.1-9"), action="forward"
        ),
        Transition(
            T.NO_RETAINED,
            TE.PUBLISH_RETAINED,
            T.RETAINED,
            ("MQTT-3.3.1-5", "MQTT-3.3.1-9"),
            "payload",
            "store_and_forward",
        ),
        Transition(
            T.RETAINED,
            TE.PUBLISH_RETAINED,
            T.RETAINED,
            ("MQTT-3.3.1-5", "MQTT-3.3.1-7"),
            "payload",
            "store_and_forward",
        ),
        Transition(
            T.NO_RETAINED,
            TE.PUBLISH_RETAINED,
            T.NO_RETAINED,
            ("MQTT-3.3.1-10", "MQTT-3.3.1-11"),
            "empty_payload",
            "clear_and_forward",
        ),
        Transition(
            T.RETAINED,
            TE.PUBLISH_RETAINED,
            T.NO_RETAINED,
            ("MQTT-3.3.1-10", "MQTT-3.3.1-11"),
            "empty_payload",
            "clear_and_forward",
        ),
        Transition(
            T.RETAINED,
            TE.SUBSCRIBE,
            T.RETAINED,
            ("MQTT-3.3.1-6", "MQTT-3.3.1-8"),
            action="send_retained",
        ),
        Transition(T.NO_RETAINED, TE.SUBSCRIBE, T.NO_RETAINED, ("MQTT-3.3.1-6",)),
    ),
)
