"""The state machine with MQTT 5.0 clients beside 3.1.1 ones, against a real broker.

Theory of operation. ``BrokerMachine5`` is the 3.1.1 ``BrokerMachine`` (every
rule and story of it, unchanged) plus rules for level-5 clients, judged by the
same ``BrokerModel`` through the same ``Driver``: the driver encodes and decodes
each connection at the Protocol Level of its CONNECT, so a 3.1.1 subscriber and
a 5.0 one can share one topic and each is judged by its own level's rules.

The level-5 rules reach what 5.0 adds and brokers get wrong:

- ``connect5``: CONNECT with a short Session Expiry Interval (0 or 1 second,
  or never), a small Receive Maximum (1 to 3: the server's send quota, 4.9), a
  Topic Alias Maximum (the server may alias topics it sends), a Maximum Packet
  Size small enough that some copies must be dropped [MQTT-3.1.2-25], and a
  will with a Will Delay Interval [MQTT-3.1.2-8];
- ``subscribe5``: subscription options (No Local, Retain As Published, Retain
  Handling) and a Subscription Identifier;
- ``publish5``: Message Expiry Interval, User Properties, and client-to-server
  Topic Aliases (set with the name, then used alone) within the CONNACK's
  Topic Alias Maximum;
- ``acknowledge5``: acknowledgements with Reason Codes (PUBACK 0x80: the client
  refuses a message it received, which ends the flow all the same);
- ``disconnect5``: DISCONNECT 0x00 (the will is discarded [MQTT-3.14.4-3]) or
  0x04 (Disconnect with Will Message: it is kept for its delay), with or without
  a new Session Expiry Interval (one after a CONNECT's 0 is a Protocol Error
  3.14.2.2.2);
- ``expiry_passes``: a wait longer than the short intervals plus the model's
  margin, so that sessions expire, delayed wills come due and messages expire.

``subscribe5`` also joins Shared Subscription groups (``$share/g/~/a``...), with
their options but No Local (a Protocol Error there [MQTT-3.8.3-4], which the
codec refuses to encode); each message goes to one member, any of them (4.8.2).

Ten level-5 stories line up what single rules reach too rarely. In
``stories5.Level5Stories``: a subscriber with a Receive Maximum of 1 or 2 taking a
burst of QoS 1/2 messages (its own, under No Local perhaps, or another client's); two
of a client away with a delayed will (dropped, DISCONNECT 0x04, DISCONNECT 0x00, or
back in time, watched past the delay), one with a delay of 1 or 2 s, one with a delay
longer than the driver's patience (so that a will sent early stays early); and three
of a Shared Subscription group sharing messages while a member holding some of them
unacknowledged ends its session, loses its connection and returns (Clean Start 0 or
1), or is taken over by a new connection. In ``stories5_messages``: two of a retained
message meeting a level-5 subscriber that subscribes twice (Retain Handling, Retain
As Published and a Subscription Identifier drawn each time), one already connected
and one new. In ``stories5_properties``: a subscriber with a small Maximum Packet
Size taking messages with User Properties, some too large for it. In
``stories5_sessions``: two clients away past their Session and Message Expiry
Intervals, perhaps taken over first, and back with Clean Start 0.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from mqttref.impl.codec.packets import (
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    Publish,
    QoS,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.oracle.stateful.driver import Flight
from mqttref.oracle.stateful.machine import LONG_KEEP_ALIVE, BrokerMachine
from mqttref.oracle.stateful.stories import TOPICS, WILDCARD_FILTERS, client_ids, qos_levels
from mqttref.oracle.stateful.stories5 import SHARED_FILTERS, Level5Stories, StoryMachine5
from mqttref.oracle.stateful.stories5_messages import MessageStories5
from mqttref.oracle.stateful.stories5_properties import PropertyStories5
from mqttref.oracle.stateful.stories5_sessions import SessionStories5
from mqttref.oracle.stateful.target import Target

SESSION_EXPIRIES = (None, 1, 0xFFFFFFFF)
"""None is 0: the session ends with the connection (3.1.2.11.2); 0xFFFFFFFF never."""
RECEIVE_MAXIMUMS = (None, 1, 2, 3)
ALIAS_MAXIMUMS = (None, 2)
PACKET_SIZES = (None, None, 60)
"""60 bytes: a copy with a long topic or properties exceeds it and must be dropped."""
WILL_DELAYS = (0, 1)
MESSAGE_EXPIRIES = (None, None, 1, 60)
USER_PROPERTIES: tuple[tuple[tuple[str, str], ...], ...] = ((), (("k", "1"), ("k", "2")))
DISCONNECT_EXPIRIES = (None, None, 0, 1)
EXPIRY_WAIT = 2.3
"""Seconds ``expiry_passes`` waits: past the short intervals (1 s) and the model's
one-second margin, so whatever those timers decide is owed by then."""

Options5 = tuple[bool, bool, int]
"""No Local, Retain As Published, Retain Handling."""

wills5 = st.none() | st.tuples(
    st.sampled_from(TOPICS), qos_levels, st.booleans(), st.sampled_from(WILL_DELAYS)
)
options5 = st.tuples(st.booleans(), st.booleans(), st.sampled_from([0, 1, 2]))
requests5 = st.lists(
    st.tuples(st.sampled_from(TOPICS + WILDCARD_FILTERS + SHARED_FILTERS), qos_levels, options5),
    min_size=1,
    max_size=2,
)


class BrokerMachine5(
    SessionStories5, MessageStories5, PropertyStories5, Level5Stories, BrokerMachine
):
    """``BrokerMachine`` with level-5 clients among its 3.1.1 ones, and the level-5
    stories (``Level5Stories``)."""

    def __init__(self) -> None:
        super().__init__()
        self.aliases: dict[str, tuple[object, dict[str, int]]] = {}
        """Slot -> (its connection, topic -> the Topic Alias it set on it): aliases
        belong to one network connection [MQTT-3.3.2-7]."""

    def level5_slots(self) -> list[str]:
        return [
            s for s in self.connected_slots()
            if self.driver.level_of(s) == ProtocolLevel.MQTT_5
        ]

    # ------------------------------------------------------------ connections

    @initialize(
        expiry=st.sampled_from(SESSION_EXPIRIES),
        receive_maximum=st.sampled_from(RECEIVE_MAXIMUMS),
        listens=st.tuples(st.sampled_from(TOPICS + WILDCARD_FILTERS), qos_levels, options5),
    )
    def a_level_5_client_connects(
        self, expiry: int | None, receive_maximum: int | None,
        listens: tuple[str, QoS, Options5],
    ) -> Any:
        """Every example also has c2 connected at level 5 on s4 and subscribed, so
        that 3.1.1 and 5.0 clients meet from the start."""
        self.send_connect5(
            "s4", "c2", clean_start=False, expiry=expiry, receive_maximum=receive_maximum,
            alias_maximum=2, packet_size=None, will=None,
        )
        self.driver.settle()
        if self.driver.connected("s4"):
            self.send_subscribe5("s4", [listens], identifier=1)
        return self.step_done()

    @precondition(lambda self: self.free_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        clean_start=st.booleans(),
        expiry=st.sampled_from(SESSION_EXPIRIES),
        receive_maximum=st.sampled_from(RECEIVE_MAXIMUMS),
        alias_maximum=st.sampled_from(ALIAS_MAXIMUMS),
        packet_size=st.sampled_from(PACKET_SIZES),
        will=wills5,
    )
    def connect5(
        self,
        *,
        data: st.DataObject,
        client_id: str,
        clean_start: bool,
        expiry: int | None,
        receive_maximum: int | None,
        alias_maximum: int | None,
        packet_size: int | None,
        will: tuple[str, QoS, bool, int] | None,
    ) -> Any:
        """A level-5 CONNECT on a free slot (a takeover when the id is connected)."""
        slot = self.choose(data, self.free_slots(), "slot")
        self.send_connect5(
            slot, client_id, clean_start=clean_start, expiry=expiry,
            receive_maximum=receive_maximum, alias_maximum=alias_maximum,
            packet_size=packet_size, will=will,
        )
        return self.step_done()

    def send_connect5(
        self,
        slot: str,
        client_id: str,
        *,
        clean_start: bool,
        expiry: int | None,
        receive_maximum: int | None,
        alias_maximum: int | None,
        packet_size: int | None,
        will: tuple[str, QoS, bool, int] | None,
    ) -> None:
        packet_will = None
        if will is not None:
            topic, qos, retain, delay = will
            self.messages += 1  # unique: two wills of one client are told apart
            payload = f"will5 of {client_id} #{self.messages}".encode()
            properties = Properties(
                will_delay_interval=delay or None, user_properties=(("will", client_id),)
            )
            packet_will = Will(self.full(topic), payload, qos, retain, properties)
            if retain:
                self.retained_topics.add(self.full(topic))
        packet = Connect(
            ProtocolLevel.MQTT_5,
            self.full_client_id(client_id),
            clean_start,
            LONG_KEEP_ALIVE,
            packet_will,
            properties=Properties(
                session_expiry_interval=expiry,
                receive_maximum=receive_maximum,
                topic_alias_maximum=alias_maximum,
                maximum_packet_size=packet_size,
            ),
        )
        self.last_connect[client_id] = packet
        self.prepare()
        self.driver.send(slot, packet)

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        reason_code=st.sampled_from([0x00, 0x04]),
        expiry=st.sampled_from(DISCONNECT_EXPIRIES),
    )
    def disconnect5(self, data: st.DataObject, reason_code: int, expiry: int | None) -> Any:
        """DISCONNECT 0x00 discards the will [MQTT-3.14.4-3], 0x04 keeps it for its
        delay [MQTT-3.1.2-8]; a Session Expiry Interval replaces the CONNECT's, unless
        that was 0 (a Protocol Error the server answers with DISCONNECT 0x82)."""
        slot = self.choose(data, self.level5_slots(), "slot")
        self.prepare()
        if self.driver.connected(slot):
            properties = Properties(session_expiry_interval=expiry)
            self.driver.send(slot, Disconnect(reason_code, properties))
            self.driver.settle()  # a Protocol Error's DISCONNECT 0x82 comes first
        self.driver.drop(slot)
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule()
    def expiry_passes(self) -> Any:
        """Nobody sends anything for longer than the short Session Expiry Intervals,
        Will Delay Intervals and Message Expiry Intervals: what they end must be gone,
        what they make due must have come."""
        self.driver.wait(EXPIRY_WAIT * self.target.timing.multiplier)
        return self.step_done()

    # --------------------------------------------------------------- messages

    @precondition(lambda self: self.level5_slots())
    @rule(data=st.data(), requests=requests5, identifier=st.sampled_from([None, 1, 2]))
    def subscribe5(
        self,
        data: st.DataObject,
        requests: list[tuple[str, QoS, Options5]],
        identifier: int | None,
    ) -> Any:
        """A level-5 SUBSCRIBE with subscription options and an identifier."""
        slot = self.choose(data, self.level5_slots(), "slot")
        self.prepare()
        self.send_subscribe5(slot, requests, identifier=identifier)
        return self.step_done()

    def send_subscribe5(
        self, slot: str, requests: list[tuple[str, QoS, Options5]], *, identifier: int | None
    ) -> None:
        client_id = self.driver.client_id(slot)
        if not (self.driver.connected(slot) and client_id is not None):
            return
        subscriptions = tuple(
            # No Local on a shared filter is a Protocol Error [MQTT-3.8.3-4] the codec
            # refuses to encode: such a request goes without it.
            Subscription(
                self.full(f), q, no_local and not f.startswith("$share/"), as_published, handling
            )
            for f, q, (no_local, as_published, handling) in requests
        )
        identifiers = (identifier,) if identifier is not None else ()
        self.driver.send(
            slot,
            Subscribe(
                self.driver.next_packet_id(client_id),
                subscriptions,
                Properties(subscription_identifiers=identifiers),
            ),
        )

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        topic=st.sampled_from(TOPICS),
        qos=qos_levels,
        retain=st.booleans(),
        expiry=st.sampled_from(MESSAGE_EXPIRIES),
        user=st.sampled_from(USER_PROPERTIES),
        alias=st.booleans(),
        count=st.integers(min_value=1, max_value=3),
    )
    def publish5(
        self,
        *,
        data: st.DataObject,
        topic: str,
        qos: QoS,
        retain: bool,
        expiry: int | None,
        user: tuple[tuple[str, str], ...],
        alias: bool,
        count: int,
    ) -> Any:
        """One to three level-5 PUBLISHes with properties the server forwards, perhaps
        through a Topic Alias: the first sets it with the name, later ones send it
        alone (3.3.2.3.4). Several at once test the subscribers' Receive Maximum."""
        slot = self.choose(data, self.level5_slots(), "slot")
        self.prepare()
        for _ in range(count):
            self.send_publish5(
                slot, topic, qos=qos, retain=retain, expiry=expiry, user=user, alias=alias
            )
        return self.step_done()

    def send_publish5(
        self,
        slot: str,
        topic: str,
        *,
        qos: QoS,
        retain: bool,
        expiry: int | None,
        user: tuple[tuple[str, str], ...],
        alias: bool,
    ) -> None:
        client_id = self.driver.client_id(slot)
        if not (self.driver.connected(slot) and client_id is not None):
            return
        name = self.full(topic)
        topic_alias, sent_name = self.alias_for(slot, name) if alias else (None, name)
        packet_id = self.driver.next_packet_id(client_id) if qos else None
        if retain:
            self.retained_topics.add(name)
        self.messages += 1
        properties = Properties(
            message_expiry_interval=expiry, topic_alias=topic_alias, user_properties=user
        )
        packet = Publish(
            sent_name, f"m{self.messages}".encode(), qos, retain, False, packet_id, properties
        )
        self.driver.send(slot, packet)

    def alias_for(self, slot: str, name: str) -> tuple[int | None, str]:
        """The Topic Alias to send ``name`` under and the Topic Name to send with it
        (empty once the alias is set on this connection); no alias when the server's
        CONNACK allows none [MQTT-3.2.2-17] or all are taken."""
        conn = self.model.connections.get(slot)
        maximum = conn.client_aliases.maximum if conn and conn.client_aliases else 0
        link = self.driver.links.get(slot)
        owner, known = self.aliases.get(slot, (None, {}))
        if owner is not link:
            known = {}
            self.aliases[slot] = (link, known)
        if name in known:
            return known[name], ""
        if len(known) >= maximum:
            return None, name
        known[name] = len(known) + 1
        return known[name], name

    @precondition(lambda self: self.level5_slots())
    @rule(data=st.data(), refuse=st.booleans())
    def acknowledge5(self, data: st.DataObject, refuse: bool) -> Any:
        """A level-5 client's owed acknowledgement; a PUBACK may carry 0x80 (the
        client refuses the message: the flow ends all the same, 3.4.2.1). Enabled
        whenever a level-5 client is connected: what is owed follows the broker's
        timing, which a precondition must not read (``BrokerMachine.acknowledge``)."""
        flights: list[Flight | None] = [
            f for f in self.driver.owed_by_connected()
            if self.driver.level_of(self.driver.slot_of(f.client_id) or "")
            == ProtocolLevel.MQTT_5
        ]
        flight = self.choose(data, flights or [None], "flight")
        if flight is None:
            self.driver.note("(no level-5 acknowledgement chosen: nothing sent)")
            return self.step_done()
        self.prepare()
        code = 0x80 if refuse and flight.kind == "PUBACK" else 0x00
        self.driver.acknowledge(flight, code)
        return self.step_done()


_TELLS_STORIES5: type[StoryMachine5] = BrokerMachine5
"""The level-5 stories know the machine only as a ``StoryMachine5``: mypy checks it is one."""


def machine5_for(
    target: Target, *, discard_model_crashes: bool = False
) -> type[BrokerMachine5]:
    """A ``BrokerMachine5`` bound to ``target``."""
    return type(
        "BrokerMachine5",
        (BrokerMachine5,),
        {"target": target, "discard_model_crashes": discard_model_crashes},
    )


__all__ = ["BrokerMachine5", "machine5_for"]
