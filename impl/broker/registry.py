"""The registry: topic servers, subscriptions, and the store behind them.

Theory of operation. Subscriptions live in three places that the registry
keeps in step: the session's own ``subscriptions`` (what the client asked
for), the ``FilterTree`` index (who is subscribed to a topic name, for
building topic servers), and the store (so that a crashed topic server, and
with a disk store a restarted broker, can be rebuilt). Topic servers exist
for every known topic name: one is made on the first publish to a name and
on loading a retained message. Subscribing walks the ``TopicTree`` of known
names with the new filter and subscribes the session at each matching topic
server, which is also where its retained messages come from.

Every publish goes through the topic supervisor, which contains a crashing
topic server and asks ``restart_topic`` for a new one built from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.limits import filter_problem, granted_qos
from mqttref.impl.broker.matching import FilterTree, TopicTree, topic_matches
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.topic import TopicServer, TopicSupervisor
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import SUBACK_FAILURE, QoS, SubAck, Subscribe, UnsubAck, Unsubscribe
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message
from mqttref.impl.store.base import Store

TOPIC_SERVER_SWEEP = 100_000
"""Topic servers without a retained message are a cache of the filter index: after
this many more topic names, those are dropped (rebuilding one costs one match), so
publishers inventing topic names under a ``#`` subscriber cannot exhaust memory."""


class Registry:
    """Finds topic servers for names and filters; keeps subscriptions and retained messages."""

    def __init__(
        self, config: Config, store: Store, sessions: Callable[[str], Session | None]
    ) -> None:
        self.config = config
        self.store = store
        self._session = sessions
        self.filters = FilterTree()
        self.topics: TopicTree[TopicServer] = TopicTree()
        self.supervisor = TopicSupervisor(self.restart_topic)
        self._sweep_at = TOPIC_SERVER_SWEEP

    def load(self) -> None:
        """Make topic servers for the retained messages the store holds."""
        for message in self.store.retained():
            self.topic_server(message.topic).retained = message

    def add_stored_subscriptions(self, session: Session) -> None:
        """Index a restored persistent session's subscriptions (broker start)."""
        for topic_filter, qos in session.subscriptions.items():
            self.filters.add(topic_filter, session.client_id, qos)
            for server in self.topics.match(topic_filter):
                server.subscribe(session, self.granted_on(session, server.name))

    # Topic servers ----------------------------------------------------------------

    def topic_server(self, topic_name: str) -> TopicServer:
        """The topic server of a name, made on first use with its subscribers: the
        filter index says who, ``granted_on`` at what QoS."""
        server = self.topics.get(topic_name)
        if server is None:
            if len(self.topics) >= self._sweep_at:
                self._sweep_topic_servers()
            server = TopicServer(topic_name, self.store)
            for client_id in self.filters.match(topic_name):
                session = self._session(client_id)
                if session is not None:
                    server.subscribe(session, self.granted_on(session, topic_name))
            self.topics.set(topic_name, server)
        return server

    def restart_topic(self, topic_name: str) -> TopicServer:
        """Replace a topic server with one rebuilt from the store alone.

        The subscribers come from the stored subscriptions, the retained message
        from the stored retained messages; nothing of the old server is trusted.
        """
        self.topics.remove(topic_name)
        server = TopicServer(topic_name, self.store)
        best: dict[str, QoS] = {}
        for client_id, topic_filter, qos in self.store.subscriptions():
            if topic_matches(topic_filter, topic_name) and qos >= best.get(client_id, -1):
                best[client_id] = qos
        for client_id, qos in best.items():
            session = self._session(client_id)
            if session is not None:
                server.subscribe(session, qos)
        server.retained = self.store.get_retained(topic_name)
        self.topics.set(topic_name, server)
        return server

    def _sweep_topic_servers(self) -> None:
        for name in [s.name for s in self.topics.values() if s.retained is None]:
            self.topics.remove(name)
        self._sweep_at = len(self.topics) + TOPIC_SERVER_SWEEP

    # Publishing -----------------------------------------------------------------------

    def publish(self, message: Message, now: float) -> int:
        """Route one message to its topic server, under the topic supervisor; return how
        many sessions it went to.

        A topic server left with nothing to hold (no subscriber, no retained
        message) is not kept: topic names nobody listens to cost no memory.
        """
        server = self.topic_server(message.topic)
        matched = self.supervisor.publish(server, message, now)
        if server.idle and self.topics.get(server.name) is server:
            self.topics.remove(server.name)
        return matched

    # Subscriptions --------------------------------------------------------------------

    def subscribe(self, session: Session, topic_filter: str, qos: QoS) -> int:
        """Add or replace one subscription; return the granted QoS or 0x80.

        A filter beyond the broker's limits (too long, too deep, control
        characters) or one the configuration refuses (wildcards, chosen
        characters) gets 0x80 [MQTT-3.8.4-5, MQTT-3.8.3-2] rather than a close:
        the client did nothing illegal (``limits.filter_problem``). The grant is
        at most ``max_qos`` [MQTT-3.8.4-6].
        Replacing keeps the session in place at every topic server, now at the
        new QoS [MQTT-3.8.4-3].
        """
        problem = filter_problem(topic_filter, self.config)
        if problem is not None:
            broker_log.info("refused filter", "client %s: refused the filter %s: %s",
                            clip(session.client_id), clip(topic_filter), problem)
            return SUBACK_FAILURE
        granted = granted_qos(qos, self.config)
        session.subscriptions[topic_filter] = granted
        self.filters.add(topic_filter, session.client_id, granted)
        self.store.set_subscription(session.client_id, topic_filter, granted)
        for server in self.topics.match(topic_filter):
            server.subscribe(session, self.granted_on(session, server.name))
        return granted

    def on_subscribe(self, session: Session, packet: Subscribe, now: float) -> None:
        """Answer a SUBSCRIBE: SUBACK with one return code per filter, in order
        [MQTT-3.8.4-1, MQTT-3.9.3-1], then the matching retained messages.

        At 5.0 each subscription's options count: Retain Handling 1 sends retained
        messages only for a new subscription, 2 never [MQTT-3.3.1-10, -11]; No Local
        and Retain As Published are kept in the session. A shared subscription is
        refused with 0x9E, as CONNACK said (Shared Subscription Available 0)."""
        codes: list[int] = []
        fresh: list[bool] = []
        for sub in packet.subscriptions:
            fresh.append(sub.topic_filter not in session.subscriptions)
            if session.v5 and sub.topic_filter.startswith("$share/"):
                codes.append(ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
                continue
            code = self.subscribe(session, sub.topic_filter, sub.qos)
            codes.append(code)
            if session.v5 and code != SUBACK_FAILURE:
                session.set_options(sub.topic_filter, no_local=sub.no_local,
                                    retain_as_published=sub.retain_as_published)
        session.send(SubAck(packet.packet_id, tuple(codes)))
        for sub, code, new in zip(packet.subscriptions, codes, fresh, strict=True):
            if code >= SUBACK_FAILURE or sub.retain_handling == 2:
                continue
            if sub.retain_handling == 1 and not new:
                continue
            self.send_retained(session, sub.topic_filter, QoS(code), now)

    def on_unsubscribe(self, session: Session, packet: Unsubscribe, now: float) -> None:
        """Answer an UNSUBSCRIBE with UNSUBACK, even for filters never subscribed
        [MQTT-3.10.4-4, MQTT-3.10.4-5]; at 5.0 with 0x11 for those (3.11.3)."""
        removed = [self.unsubscribe(session, f) for f in packet.topic_filters]
        if session.v5:
            codes = tuple(ReasonCode.SUCCESS if gone else ReasonCode.NO_SUBSCRIPTION_EXISTED
                          for gone in removed)
            session.send(UnsubAck(packet.packet_id, codes))
        else:
            session.send(UnsubAck(packet.packet_id))

    def send_retained(self, session: Session, topic_filter: str, granted: QoS, now: float) -> None:
        """Send the retained messages matching a new subscription [MQTT-3.3.1-6]."""
        for server in list(self.topics.match(topic_filter)):
            self.supervisor.send_retained(server, session, granted, now)

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        """Remove one subscription; the session stays at topic servers that another
        of its filters still matches, at that filter's QoS. False if it had none."""
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        session.set_options(topic_filter, no_local=False, retain_as_published=False)
        self.filters.remove(topic_filter, session.client_id)
        self.store.delete_subscription(session.client_id, topic_filter)
        for server in list(self.topics.match(topic_filter)):
            self._resubscribe(session, server)
        return True

    def remove_session(self, session: Session) -> None:
        """Drop every subscription of a session that ends [MQTT-3.1.2-6]."""
        for topic_filter in list(session.subscriptions):
            self.unsubscribe(session, topic_filter)

    def granted_on(self, session: Session, topic_name: str) -> QoS:
        """The highest QoS among the session's filters that match a topic name: the one
        place that decides at what QoS overlapping subscriptions deliver [MQTT-3.3.5-1]."""
        best = QoS.AT_MOST_ONCE
        for topic_filter, qos in session.subscriptions.items():
            if qos > best and topic_matches(topic_filter, topic_name):
                best = qos
        return best

    def _resubscribe(self, session: Session, server: TopicServer) -> None:
        if any(topic_matches(f, server.name) for f in session.subscriptions):
            server.subscribe(session, self.granted_on(session, server.name))
        else:
            server.unsubscribe(session.client_id)
            if server.idle:
                self.topics.remove(server.name)

    def subscriptions(self) -> Iterable[tuple[str, str, QoS]]:
        """Every subscription, as the store holds it."""
        return self.store.subscriptions()
