"""The session chart: the server's statechart of one client id (3.1.2.4, 4.1).

Theory of operation: this is the seed's server statechart. From ``start``,
``connect_clean`` and ``connect_persistent`` lead to a clean or a persistent
session. ``disconnect`` leads to the clean or persistent disconnected state;
a keep-alive ``timeout``, a ``network_loss`` or a ``protocol_error`` leads
through ``last_will`` (the will is published) to the disconnected state. Ping,
publish, subscribe and unsubscribe loop on the connected states; a message
that matches the session's subscriptions (``message``) is delivered when
connected and queued while a persistent session is disconnected. A
disconnected persistent session is resumed by ``connect_persistent`` and
discarded by ``connect_clean``. A clean session's state never outlives its
connection [MQTT-3.1.2-6]: ``clean_disconnected`` holds nothing.

The chart is keyed by client id, not by connection: a second connection with
the same client id (a takeover) is a ``connect_*`` event in a connected state.
"""

from __future__ import annotations

from enum import StrEnum

from mqttref.model.chart import Chart, Transition, events_of, states_of


class SessionState(StrEnum):
    START = "start"
    CLEAN_SESSION = "clean_session"
    PERSISTENT_SESSION = "persistent_session"
    LAST_WILL = "last_will"
    CLEAN_DISCONNECTED = "clean_disconnected"
    PERSISTENT_DISCONNECTED = "persistent_disconnected"


class SessionEvent(StrEnum):
    CONNECT_CLEAN = "connect_clean"
    CONNECT_PERSISTENT = "connect_persistent"
    DISCONNECT = "disconnect"
    TIMEOUT = "timeout"
    NETWORK_LOSS = "network_loss"
    PROTOCOL_ERROR = "protocol_error"
    WILL_PUBLISHED = "will_published"
    PING = "ping"
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    MESSAGE = "message"


S, E = SessionState, SessionEvent
_CONNECTED = (S.CLEAN_SESSION, S.PERSISTENT_SESSION)


def _loops() -> tuple[Transition, ...]:
    refs = {
        E.PING: ("MQTT-3.12.4-1",),
        E.PUBLISH: ("MQTT-3.3.4-1", "MQTT-4.5.0-1"),
        E.SUBSCRIBE: ("MQTT-3.8.4-1", "MQTT-3.8.4-3"),
        E.UNSUBSCRIBE: ("MQTT-3.10.4-1", "MQTT-3.10.4-4"),
        E.MESSAGE: ("MQTT-4.5.0-1", "MQTT-3.3.5-1"),
    }
    actions = {
        E.PING: "answer_ping",
        E.PUBLISH: "accept_publish",
        E.SUBSCRIBE: "subscribe",
        E.UNSUBSCRIBE: "unsubscribe",
        E.MESSAGE: "deliver",
    }
    return tuple(
        Transition(state, event, state, refs[event], action=actions[event])
        for state in _CONNECTED
        for event in refs
    )


def _takeovers() -> tuple[Transition, ...]:
    # A CONNECT for a client id that is connected: the old connection is closed
    # [MQTT-3.1.4-2], then the usual clean-session processing [MQTT-3.1.4-3].
    return (
        Transition(
            S.CLEAN_SESSION,
            E.CONNECT_CLEAN,
            S.CLEAN_SESSION,
            ("MQTT-3.1.4-2", "MQTT-3.1.2-6"),
            action="take_over_discarding",
        ),
        Transition(
            S.CLEAN_SESSION,
            E.CONNECT_PERSISTENT,
            S.PERSISTENT_SESSION,
            ("MQTT-3.1.4-2", "MQTT-3.1.2-6", "MQTT-3.2.2-3"),
            action="take_over_discarding",
        ),
        Transition(
            S.PERSISTENT_SESSION,
            E.CONNECT_CLEAN,
            S.CLEAN_SESSION,
            ("MQTT-3.1.4-2", "MQTT-3.1.2-6"),
            action="take_over_discarding",
        ),
        Transition(
            S.PERSISTENT_SESSION,
            E.CONNECT_PERSISTENT,
            S.PERSISTENT_SESSION,
            ("MQTT-3.1.4-2", "MQTT-3.1.2-4", "MQTT-3.2.2-2", "MQTT-4.4.0-1"),
            action="take_over_resuming",
        ),
    )


SESSION = Chart(
    name="session",
    title="Session",
    description="The server's state for one client id: the seed's statechart. Clean and "
    "persistent sessions, the last will on an unexpected close, and resumption or "
    "discarding of a disconnected persistent session.",
    states=states_of(
        SessionState,
        {
            S.START: "no session exists for this client id",
            S.CLEAN_SESSION: "connected with CleanSession=1: state lasts as long as the connection",
            S.PERSISTENT_SESSION: "connected with CleanSession=0: state outlives the connection",
            S.LAST_WILL: "the connection closed without DISCONNECT: the will is published",
            S.CLEAN_DISCONNECTED: "a clean session ended: nothing is left behind",
            S.PERSISTENT_DISCONNECTED: "subscriptions kept; QoS 1 and 2 messages are queued",
        },
    ),
    events=events_of(
        SessionEvent,
        {
            E.CONNECT_CLEAN: "CONNECT with CleanSession=1 is accepted",
            E.CONNECT_PERSISTENT: "CONNECT with CleanSession=0 is accepted",
            E.DISCONNECT: "the client sends DISCONNECT",
            E.TIMEOUT: "the keep-alive expires and the server closes the connection",
            E.NETWORK_LOSS: "the network connection is lost",
            E.PROTOCOL_ERROR: "the server closes the connection after a violation",
            E.WILL_PUBLISHED: "the will message (if any) has been published",
            E.PING: "the client sends PINGREQ",
            E.PUBLISH: "the client sends PUBLISH",
            E.SUBSCRIBE: "the client sends SUBSCRIBE",
            E.UNSUBSCRIBE: "the client sends UNSUBSCRIBE",
            E.MESSAGE: "a message matching the session's subscriptions arrives",
        },
    ),
    initial=S.START,
    guards=("clean", "persistent"),
    actions=(
        "new_session",
        "resume_session",
        "discard_session",
        "take_over_discarding",
        "take_over_resuming",
        "publish_will",
        "end_clean_session",
        "answer_ping",
        "accept_publish",
        "subscribe",
        "unsubscribe",
        "deliver",
        "queue",
    ),
    transitions=(
        Transition(
            S.START,
            E.CONNECT_CLEAN,
            S.CLEAN_SESSION,
            ("MQTT-3.1.2-6", "MQTT-3.2.2-1"),
            action="new_session",
        ),
        Transition(
            S.START,
            E.CONNECT_PERSISTENT,
            S.PERSISTENT_SESSION,
            ("MQTT-3.1.2-4", "MQTT-3.2.2-3"),
            action="new_session",
        ),
        *_loops(),
        *_takeovers(),
        Transition(
            S.CLEAN_SESSION,
            E.DISCONNECT,
            S.CLEAN_DISCONNECTED,
            ("MQTT-3.14.4-3", "MQTT-3.1.2-6"),
            action="end_clean_session",
        ),
        Transition(
            S.PERSISTENT_SESSION,
            E.DISCONNECT,
            S.PERSISTENT_DISCONNECTED,
            ("MQTT-3.14.4-3", "MQTT-3.1.2-5"),
        ),
        *(
            Transition(state, event, S.LAST_WILL, ("MQTT-3.1.2-8", ref), action="publish_will")
            for state in _CONNECTED
            for event, ref in (
                (E.TIMEOUT, "MQTT-3.1.2-24"),
                (E.NETWORK_LOSS, "MQTT-3.1.2-8"),
                (E.PROTOCOL_ERROR, "MQTT-4.8.0-1"),
            )
        ),
        Transition(
            S.LAST_WILL,
            E.WILL_PUBLISHED,
            S.CLEAN_DISCONNECTED,
            ("MQTT-3.1.2-10", "MQTT-3.1.2-6"),
            "clean",
            "end_clean_session",
        ),
        Transition(
            S.LAST_WILL,
            E.WILL_PUBLISHED,
            S.PERSISTENT_DISCONNECTED,
            ("MQTT-3.1.2-10", "MQTT-3.1.2-5"),
            "persistent",
        ),
        Transition(
            S.CLEAN_DISCONNECTED,
            E.CONNECT_CLEAN,
            S.CLEAN_SESSION,
            ("MQTT-3.1.2-6", "MQTT-3.2.2-1"),
            action="new_session",
        ),
        Transition(
            S.CLEAN_DISCONNECTED,
            E.CONNECT_PERSISTENT,
            S.PERSISTENT_SESSION,
            ("MQTT-3.1.2-4", "MQTT-3.2.2-3"),
            action="new_session",
        ),
        Transition(
            S.PERSISTENT_DISCONNECTED,
            E.CONNECT_PERSISTENT,
            S.PERSISTENT_SESSION,
            ("MQTT-3.1.2-4", "MQTT-3.2.2-2", "MQTT-4.4.0-1"),
            action="resume_session",
        ),
        Transition(
            S.PERSISTENT_DISCONNECTED,
            E.CONNECT_CLEAN,
            S.CLEAN_SESSION,
            ("MQTT-3.1.2-6", "MQTT-3.2.2-1"),
            action="discard_session",
        ),
        Transition(
            S.PERSISTENT_DISCONNECTED,
            E.MESSAGE,
            S.PERSISTENT_DISCONNECTED,
            ("MQTT-3.1.2-5",),
            action="queue",
        ),
    ),
)
