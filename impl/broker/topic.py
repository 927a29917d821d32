"""The topic server: one per topic name, its subscribers and its retained message.

Theory of operation. A publish to a topic name goes to that name's topic
server, which sets, replaces or clears the retained message and hands the
message to each subscribed session at the lower of the message's QoS and the
session's granted QoS [MQTT-3.8.4-6]. Each session appears once, at the
highest QoS of all its filters that match this name, so overlapping
subscriptions deliver one copy [MQTT-3.3.5-1]; the registry keeps that
number right as subscriptions come and go, and with it, for a session that gave
its filters MQTT 5.0 Subscription Identifiers, the identifiers of those matching
this name, which that one copy carries [MQTT-3.3.4-2, MQTT-3.3.4-4]. A subscriber's
own message is the one exception: its filters with No Local may not forward it
[MQTT-3.8.3-3], so they add nothing to its copy, and ``Session.deliver`` works that
copy out again from its other filters (the topic server hands over every message
alike, and pays nothing for No Local).

A topic server holds nothing that is not also in the registry and the
store, so when one crashes the topic supervisor (below, with the server it
watches) throws it away and the registry builds a new one. Every publish
runs under it: a crash costs the message being published (logged, as with a
crashed process), never the subscribers or the retained message. A session
that crashes while receiving is not the topic's fault: the others still get
the message and only that session's connection is closed.
"""

from __future__ import annotations

from collections.abc import Callable

from mqttref.impl.broker.session import Session
from mqttref.impl.codec.packets import QoS
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message
from mqttref.impl.store.base import Store


class SubscriberFailed(Exception):
    """Delivering to some subscribers raised; the others got the message.

    Raised by ``TopicServer.publish`` after its loop, so that one broken
    session costs the other subscribers nothing; the topic supervisor closes
    the failed sessions' connections.
    """

    def __init__(self, failures: list[tuple[Session, Exception]]) -> None:
        super().__init__(f"{len(failures)} subscriber(s) failed")
        self.failures = failures


class TopicServer:
    """Subscribers and the retained message of one topic name."""

    __slots__ = ("identifiers", "name", "retained", "store", "subscribers")

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.store = store
        self.subscribers: dict[str, tuple[Session, QoS]] = {}
        """Client id -> (session, highest granted QoS over its matching filters)."""
        self.identifiers: dict[str, tuple[int, ...]] | None = None
        """Client id -> Subscription Identifiers of its matching filters, for the
        subscribers that have any; None while none has (the common case costs nothing)."""
        self.retained: Message | None = None

    def __repr__(self) -> str:
        return f"<TopicServer {self.name!r} {len(self.subscribers)} subscribers>"

    @property
    def idle(self) -> bool:
        """Nothing here that the registry could not rebuild for free."""
        return not self.subscribers and self.retained is None

    def subscribe(self, session: Session, granted_qos: QoS,
                  identifiers: tuple[int, ...] = ()) -> None:
        client_id = session.client_id
        self.subscribers[client_id] = (session, granted_qos)
        if identifiers:
            if self.identifiers is None:
                self.identifiers = {}
            self.identifiers[client_id] = identifiers
        elif self.identifiers is not None:
            self._forget_identifiers(client_id)

    def unsubscribe(self, client_id: str) -> None:
        self.subscribers.pop(client_id, None)
        if self.identifiers is not None:
            self._forget_identifiers(client_id)

    def _forget_identifiers(self, client_id: str) -> None:
        identifiers = self.identifiers
        assert identifiers is not None
        identifiers.pop(client_id, None)
        if not identifiers:
            self.identifiers = None

    def publish(self, message: Message, now: float) -> int:
        """Retain if asked, then hand the message to every subscriber; how many.

        Forwarded copies carry RETAIN=0 [MQTT-3.3.1-9], even an empty retained
        message that clears the topic, which subscribers still receive (D8).
        """
        if message.retain:
            self.set_retained(message)
        qos = message.qos
        failures: list[tuple[Session, Exception]] | None = None
        identifiers = self.identifiers
        if identifiers is None:
            for session, granted in self.subscribers.values():
                try:
                    session.deliver(message, qos if qos <= granted else granted, now)
                except Exception as exc:  # one broken session must not cost the others
                    failures = failures or []
                    failures.append((session, exc))
        else:
            for client_id, (session, granted) in self.subscribers.items():
                try:
                    session.deliver(message, qos if qos <= granted else granted, now,
                                    identifiers=identifiers.get(client_id, ()))
                except Exception as exc:  # one broken session must not cost the others
                    failures = failures or []
                    failures.append((session, exc))
        if failures:
            raise SubscriberFailed(failures)
        return len(self.subscribers)

    def set_retained(self, message: Message) -> None:
        """Store, replace [MQTT-3.3.1-5] or, with an empty payload, clear
        [MQTT-3.3.1-10] the retained message; an empty one is never stored
        [MQTT-3.3.1-11]. A 5.0 message keeps its properties and its expiry: a
        retained message whose Message Expiry Interval has passed is no longer sent
        (3.3.2.3.3)."""
        if message.payload:
            self.retained = Message(message.topic, message.payload, message.qos, True,
                                    properties=message.properties,
                                    expires_at=message.expires_at)
            self.store.set_retained(self.name, self.retained)
        else:
            self.retained = None
            self.store.set_retained(self.name, None)

    def send_retained(self, session: Session, granted_qos: QoS, now: float,
                      identifiers: tuple[int, ...] = ()) -> None:
        """A new subscription receives the retained message with RETAIN=1 [MQTT-3.3.1-6],
        and with its Subscription Identifier, if it has one [MQTT-3.3.4-3]."""
        retained = self.retained
        if retained is not None and retained.expires_at is not None and retained.expires_at <= now:
            self.retained = None  # expired: it leaves the retained store
            self.store.set_retained(self.name, None)
            return
        if retained is not None:
            qos = retained.qos if retained.qos <= granted_qos else granted_qos
            session.deliver(retained, qos, now, retain=True, identifiers=identifiers)


class TopicSupervisor:
    """Contains topic server crashes and restarts the server from the registry."""

    def __init__(self, restart: Callable[[str], TopicServer]) -> None:
        self._restart = restart
        self.restarts = 0

    def publish(self, server: TopicServer, message: Message, now: float) -> int:
        """Publish under containment; how many subscribers it went to."""
        try:
            return server.publish(message, now)
        except SubscriberFailed as failed:
            self._sessions_failed(server, failed)
            return len(server.subscribers)
        except Exception:
            self._crashed(server, f"publishing {len(message.payload)} bytes at QoS {message.qos}")
            return 0

    def send_retained(
        self, server: TopicServer, session: Session, granted: QoS, now: float,
        identifiers: tuple[int, ...] = (),
    ) -> None:
        try:
            server.send_retained(session, granted, now, identifiers)
        except Exception:
            self._crashed(server, f"sending its retained message to {clip(session.client_id)}")

    def _sessions_failed(self, server: TopicServer, failed: SubscriberFailed) -> None:
        """A session that crashed on delivery loses its connection (will and all);
        the topic server and the other subscribers carry on."""
        for session, exc in failed.failures:
            self.session_failed(session, exc, server.name)

    def session_failed(self, session: Session, exc: Exception, topic: str = "") -> None:
        """One session raised while receiving: it loses its connection, will and all."""
        broker_log.error(
            "session crash", "session %s crashed receiving a message on %s; closing its "
            "connection", clip(session.client_id), clip(topic), exc_info=exc,
        )
        if session.connection is not None:
            session.connection.close("internal error in its session", publish_will=True)

    def _crashed(self, server: TopicServer, doing: str) -> None:
        self.restarts += 1
        broker_log.error(
            "topic server crash", "topic server %s crashed %s; the message is lost, the "
            "server is rebuilt from the registry (restart %d)",
            clip(server.name), doing, self.restarts, exc_info=True,
        )
        self._restart(server.name)
