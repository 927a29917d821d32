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

MQTT 5.0 adds options a subscription carries (No Local, Retain As Published, a
Subscription Identifier, 3.8.3.1 and 3.8.2.1.2), kept with the session's
subscriptions (``Session.set_options``) before it is placed anywhere, and a topic
server holds, beside each subscriber's QoS, the identifiers of all its filters
matching that name, so one copy carries them all [MQTT-3.3.4-4]. That copy is
right for every message but the subscriber's own, which its No Local filters may
not forward [MQTT-3.8.3-3]: the session works that one out itself. A shared subscription
``$share/{ShareName}/{filter}`` (4.8.2, ``shared.py``) stays in the session's
subscriptions and the store under that whole string, but is neither in the filter
index nor at any topic server: its group gets each matching message after the
topic server, for one member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from mqttref.impl.broker.config import Config
from mqttref.impl.broker.limits import filter_problem, granted_qos, topic_problem
from mqttref.impl.broker.matching import (
    SHARED_PREFIX,
    FilterTree,
    TopicTree,
    is_shared,
    topic_matches,
)
from mqttref.impl.broker.session import Session
from mqttref.impl.broker.shared import Member, SharedGroups, parse_shared
from mqttref.impl.broker.topic import TopicServer, TopicSupervisor
from mqttref.impl.codec.errors import ReasonCode
from mqttref.impl.codec.packets import SUBACK_FAILURE, QoS, SubAck, Subscribe, UnsubAck, Unsubscribe
from mqttref.impl.logtext import broker_log, clip
from mqttref.impl.message import Message
from mqttref.impl.store.base import NO_OPTIONS, Store, SubscriptionOptions

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
        self.shared = SharedGroups(self.supervisor.session_failed)
        """Shared subscription groups (4.8.2), by their ``$share/...`` filter."""

    def load(self) -> None:
        """Make topic servers for the retained messages the store holds."""
        for message in self.store.retained():
            self.topic_server(message.topic).retained = message

    def add_stored_subscriptions(
        self, session: Session, options: Mapping[str, SubscriptionOptions] | None = None,
    ) -> None:
        """Index a restored persistent session's subscriptions (broker start), with the
        options the store kept (``SessionRecord.options``: No Local, Retain As Published,
        identifiers), which the session keeps before it is placed; a ``$share/...``
        filter joins its group again."""
        options = options or {}
        client_id = session.client_id
        for topic_filter, option in options.items():
            if topic_filter in session.subscriptions:
                session.set_options(topic_filter, option)
        for topic_filter, qos in session.subscriptions.items():
            if self._shared(topic_filter):
                self._join(session, topic_filter, qos, options.get(topic_filter, NO_OPTIONS))
                continue
            self.filters.add(topic_filter, client_id, qos)
            for server in self.topics.match(topic_filter):
                self._place(session, server)

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
                    self._place(session, server)
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
            if self._shared(topic_filter):
                continue  # groups are not a topic server's (shared.py)
            if topic_matches(topic_filter, topic_name) and qos >= best.get(client_id, -1):
                best[client_id] = qos
        for client_id, qos in best.items():
            session = self._session(client_id)
            if session is not None:
                server.subscribe(session, qos, self.identifiers_on(session, topic_name))
        server.retained = self.store.get_retained(topic_name)
        self.topics.set(topic_name, server)
        return server

    def _sweep_topic_servers(self) -> None:
        for name in [s.name for s in self.topics.values() if s.retained is None]:
            self.topics.remove(name)
        self._sweep_at = len(self.topics) + TOPIC_SERVER_SWEEP

    # Publishing -----------------------------------------------------------------------

    def publish(self, message: Message, now: float, *, groups: bool = True) -> int:
        """Route one message to its topic server, under the topic supervisor; return how
        many sessions it went to.

        A topic server left with nothing to hold (no subscriber, no retained
        message) is not kept: topic names nobody listens to cost no memory.
        ``groups=False`` leaves out the shared subscription groups: a cluster node hands
        them their messages apart (``impl/cluster/routing.py``), one member cluster-wide.
        """
        server = self.topic_server(message.topic)
        matched = self.supervisor.publish(server, message, now)
        if server.idle and self.topics.get(server.name) is server:
            self.topics.remove(server.name)
        if groups and self.shared:
            matched += self.shared.publish(message, now)
        return matched

    # Subscriptions --------------------------------------------------------------------

    def subscribe(self, session: Session, topic_filter: str, qos: QoS,
                  options: SubscriptionOptions = NO_OPTIONS) -> int:
        """Add or replace one subscription; return the granted QoS or 0x80.

        A filter beyond the broker's limits (too long, too deep, control
        characters) or one the configuration refuses (wildcards, chosen
        characters) gets 0x80 [MQTT-3.8.4-5, MQTT-3.8.3-2] rather than a close:
        the client did nothing illegal (``limits.filter_problem``). The grant is
        at most ``max_qos`` [MQTT-3.8.4-6].
        Replacing keeps the session in place at every topic server, now at the
        new QoS and with the new options: Subscription Identifier, No Local and Retain
        As Published, or none [MQTT-3.8.4-3]. The session keeps the options before
        it is placed, since placing reads the identifiers from them.
        A ``$share/...`` filter joins its group instead (4.8.2); below 5.0, where the
        codec does not check the ShareName, a malformed one gets 0x80.
        """
        shared = self._shared(topic_filter)
        problem = filter_problem(topic_filter, self.config)
        if problem is None and shared and parse_shared(topic_filter) is None:
            problem = "a shared subscription needs $share/{ShareName}/{filter} [MQTT-4.8.2-2]"
        if problem is not None:
            broker_log.info("refused filter", "client %s: refused the filter %s: %s",
                            clip(session.client_id), clip(topic_filter), problem)
            if (session.v5 and self.config.refuse_wildcard_subscriptions
                    and ("+" in topic_filter or "#" in topic_filter)
                    and topic_problem(topic_filter, self.config) is None):
                # 5.0 has a code for it, as CONNACK said (Wildcard Subscription Available 0).
                return ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
            return SUBACK_FAILURE
        granted = granted_qos(qos, self.config)
        client_id = session.client_id
        session.subscriptions[topic_filter] = granted
        session.set_options(topic_filter, options)
        self.store.set_subscription(client_id, topic_filter, granted, options)
        if shared:
            self._join(session, topic_filter, granted, options)
            return granted
        self.filters.add(topic_filter, client_id, granted)
        for server in self.topics.match(topic_filter):
            self._place(session, server)
        return granted

    def on_subscribe(self, session: Session, packet: Subscribe, now: float) -> None:
        """Answer a SUBSCRIBE: SUBACK with one return code per filter, in order
        [MQTT-3.8.4-1, MQTT-3.9.3-1], then the matching retained messages.

        At 5.0 each subscription's options count: Retain Handling 1 sends retained
        messages only for a new subscription, 2 never [MQTT-3.3.1-10, -11]; No Local
        and Retain As Published are kept in the session (``subscribe``). The packet's Subscription
        Identifier goes with each of its subscriptions (3.8.2.1.2), and with the
        retained messages each sends. A shared subscription gets no retained messages
        (4.8.2); with ``shared_subscriptions`` off a 5.0 client's is refused with 0x9E,
        as CONNACK said (Shared Subscription Available 0)."""
        codes: list[int] = []
        fresh: list[bool] = []
        ids = packet.properties.subscription_identifiers
        identifier = ids[0] if ids else None
        for sub in packet.subscriptions:
            fresh.append(sub.topic_filter not in session.subscriptions)
            if (session.v5 and not self.config.shared_subscriptions
                    and sub.topic_filter.startswith(SHARED_PREFIX)):
                codes.append(ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
                continue
            if not self._may_subscribe(session, sub.topic_filter):
                codes.append(ReasonCode.NOT_AUTHORIZED if session.v5 else SUBACK_FAILURE)
                continue
            code = self.subscribe(session, sub.topic_filter, sub.qos, SubscriptionOptions(
                sub.no_local, sub.retain_as_published, identifier) if session.v5 else NO_OPTIONS)
            codes.append(code)
        session.send(SubAck(packet.packet_id, tuple(codes)))
        for sub, code, new in zip(packet.subscriptions, codes, fresh, strict=True):
            if code >= SUBACK_FAILURE or sub.retain_handling == 2:
                continue
            if sub.retain_handling == 1 and not new:
                continue
            if self._shared(sub.topic_filter):
                continue  # a shared subscription gets no retained messages (4.8.2)
            self.send_retained(session, sub.topic_filter, QoS(code), now, identifier)

    def _may_subscribe(self, session: Session, topic_filter: str) -> bool:
        """Whether the ACL lets the session's client subscribe to ``topic_filter`` (a
        shared subscription's by its inner filter, 4.8.2). Refused: SUBACK 0x80 at 3.1.1
        (3.9.3), 0x87 Not authorized at 5.0 (3.9.3); the other filters go on as usual."""
        access = session.access
        if access is None:
            return True
        parsed = parse_shared(topic_filter) if self._shared(topic_filter) else None
        allowed = access.may_subscribe(topic_filter if parsed is None else parsed[1])
        if not allowed:
            broker_log.info("subscribe denied", "client %s: SUBSCRIBE to %s denied by the "
                            "ACL", clip(session.client_id), clip(topic_filter))
        return allowed

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

    def send_retained(self, session: Session, topic_filter: str, granted: QoS, now: float,
                      identifier: int | None = None) -> None:
        """Send the retained messages matching a new subscription [MQTT-3.3.1-6], with
        its Subscription Identifier [MQTT-3.3.4-3]."""
        identifiers = () if identifier is None else (identifier,)
        for server in list(self.topics.match(topic_filter)):
            self.supervisor.send_retained(server, session, granted, now, identifiers)

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        """Remove one subscription; the session stays at topic servers that another
        of its filters still matches, at that filter's QoS. False if it had none."""
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        client_id = session.client_id
        session.set_options(topic_filter, NO_OPTIONS)
        self.store.delete_subscription(client_id, topic_filter)
        if self._shared(topic_filter):
            self.shared.leave(topic_filter, client_id)
            return True
        self.filters.remove(topic_filter, client_id)
        for server in list(self.topics.match(topic_filter)):
            self._resubscribe(session, server)
        return True

    def remove_session(self, session: Session, now: float = 0.0) -> None:
        """Drop every subscription of a session that ends [MQTT-3.1.2-6], first handing
        the shared subscription messages it still holds to other members (4.8.2).
        ``now`` is the clock of message expiry, for those."""
        self.shared.hand_over(session, now)
        for topic_filter in list(session.subscriptions):
            self.unsubscribe(session, topic_filter)

    def granted_on(self, session: Session, topic_name: str) -> QoS:
        """The highest QoS among the session's filters that match a topic name: the one
        place that decides at what QoS overlapping subscriptions deliver [MQTT-3.3.5-1].
        Its shared subscriptions deliver apart, so they do not count."""
        best = QoS.AT_MOST_ONCE
        for topic_filter, qos in session.subscriptions.items():
            if qos > best and topic_matches(topic_filter, topic_name) and not self._shared(
                    topic_filter):
                best = qos
        return best

    def identifiers_on(self, session: Session, topic_name: str) -> tuple[int, ...]:
        """The Subscription Identifiers of the session's filters that match a topic name:
        one copy carries them all [MQTT-3.3.4-4], one per filter even where two filters
        have the same. The session drops those of its No Local filters from its own
        messages (``Session.deliver``)."""
        return tuple(option.identifier for topic_filter, option in session.options.items()
                     if option.identifier is not None
                     and topic_matches(topic_filter, topic_name)
                     and not self._shared(topic_filter))

    def _place(self, session: Session, server: TopicServer) -> None:
        """Subscribe a session at a topic server as its filters say: QoS and identifiers."""
        name = server.name
        server.subscribe(session, self.granted_on(session, name),
                         self.identifiers_on(session, name))

    def _resubscribe(self, session: Session, server: TopicServer) -> None:
        if any(topic_matches(f, server.name) and not self._shared(f)
               for f in session.subscriptions):
            self._place(session, server)
        else:
            server.unsubscribe(session.client_id)
            if server.idle:
                self.topics.remove(server.name)

    def _shared(self, topic_filter: str) -> bool:
        """A shared subscription's filter (4.8.2), when the broker has them."""
        return is_shared(topic_filter, shared_subscriptions=self.config.shared_subscriptions)

    def _join(self, session: Session, topic_filter: str, granted: QoS,
              options: SubscriptionOptions) -> None:
        parsed = parse_shared(topic_filter)
        if parsed is None:
            return  # stored by a broker that took it for an ordinary filter
        self.shared.join(topic_filter, parsed[1], Member(
            session, granted, options.identifier, options.retain_as_published))

    def subscriptions(self) -> Iterable[tuple[str, str, QoS]]:
        """Every subscription, as the store holds it."""
        return self.store.subscriptions()
