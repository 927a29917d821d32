"""Level-5 client stories: what MQTT 5.0 adds, lined up in a few actions.

The level-5 rules of ``BrokerMachine5`` (connect5, subscribe5, publish5...)
each do one thing, and what 5.0 adds needs several in a row: a subscriber with
a small Receive Maximum and then a burst of QoS 1 messages to it; a client
that subscribes with No Local and then publishes on that topic itself; a will
with a delay, a listener on its topic and a connection that ends, or ends and comes
back (two stories: a delay of 1 or 2 s, watched past its end when the will must not
come, and one that outlasts the driver's patience); a group of two members or more,
messages to it and a member holding some of them that ends its session, loses its
connection and returns, or is taken over (three stories, so that groups come up in
most examples). A random sequence of single actions
lines these up too rarely for a bounded hunt, so each is a story: a rule of its own
that makes its choices first (``choose``) and then acts, judged after every
action like any other rule. Nothing here knows a fault: each story is a
client's ordinary use of one 5.0 feature, with its options drawn at random.

What a story uses of the machine is ``StoryMachine5``, so this module does not
import the machine (which mixes ``Level5Stories`` in).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from mqttref.impl.codec.packets import Disconnect, Properties, QoS, Subscribe, Subscription
from mqttref.model.topics import matches
from mqttref.oracle.stateful.stories import (
    CLIENT_IDS,
    OVERLAPPING,
    TOPICS,
    StoryMachine,
    client_ids,
    qos_levels,
)

Options5 = tuple[bool, bool, int]
"""No Local, Retain As Published, Retain Handling."""

SHARED_FILTERS = ("$share/g/~/a", "$share/g/~/+", "$share/h/~/#")
"""Shared Subscriptions (4.8.2): two groups over ``~/a`` and its neighbours, and a
group over everything of the example; ``~`` is the example's prefix as elsewhere."""
SMALL_WINDOWS = (1, 2)
"""Receive Maximums a burst of three QoS 1 or 2 messages fills (4.9)."""
WILL_DELAYS5 = (1, 2)
"""Will Delay Intervals the machine's waits outlast (the model's margin is 1 s)."""
ENDINGS = ("dropped", "0x04", "0x00", "returns")
"""How a will's connection ends in the will stories (``away_with_a_will``): dropped or
DISCONNECT 0x04 (the will is kept for its delay), DISCONNECT 0x00 (it is discarded
[MQTT-3.14.4-3]), or dropped and back with Clean Start 0 (it is cancelled [MQTT-3.1.3-9])."""
UNSENT = ("0x00", "returns")
"""The endings after which the will must never be published."""
PAST_THE_DUE = 1.3
"""Seconds past a Will Delay Interval after which a will then due would be owed: the
model's one-second margin (a server publishes a due will "promptly", 3.1.2.5) and a
little, as in the machine's ``expiry_passes``."""
BURST_EXPIRIES = (None, 60, 60)
"""A Message Expiry Interval long enough that only its decrement shows, or none."""

SESSION_ENDS = Properties(session_expiry_interval=0)
"""A DISCONNECT's properties that end the session with the connection (allowed after
any CONNECT's interval, 3.14.2.2.2)."""

acked_qos = st.sampled_from([QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])
options5 = st.tuples(st.booleans(), st.booleans(), st.sampled_from([0, 1, 2]))


class StoryMachine5(StoryMachine, Protocol):
    """What a level-5 story uses of the machine (``BrokerMachine5`` is one)."""

    def level5_slots(self) -> list[str]: ...
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
    ) -> None: ...
    def send_subscribe5(
        self, slot: str, requests: list[tuple[str, QoS, Options5]], *, identifier: int | None
    ) -> None: ...
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
    ) -> None: ...


def publish_any_level(
    machine: StoryMachine5, slot: str, topic: str, qos: QoS, *, retain: bool, expiry: int | None
) -> None:
    """A PUBLISH from ``slot`` at its connection's level (properties only at 5.0)."""
    if slot in machine.level5_slots():
        machine.send_publish5(
            slot, topic, qos=qos, retain=retain, expiry=expiry, user=(), alias=True
        )
    else:
        machine.send_publish(slot, topic, qos, retain=retain)


class Level5Stories:
    """The level-5 stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.free_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        window=st.sampled_from(SMALL_WINDOWS),
        pair=st.sampled_from(OVERLAPPING),
        wildcard=st.booleans(),
        granted=acked_qos,
        options=options5,
        identifier=st.sampled_from([None, 3]),
        qos=acked_qos,
        retain=st.booleans(),
        expiry=st.sampled_from(BURST_EXPIRIES),
        itself=st.booleans(),
    )
    def subscriber_with_a_small_window_takes_a_burst(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        client_id: str,
        window: int,
        pair: tuple[str, str],
        wildcard: bool,
        granted: QoS,
        options: Options5,
        identifier: int | None,
        qos: QoS,
        retain: bool,
        expiry: int | None,
        itself: bool,
    ) -> Any:
        """A level-5 client connects with a Receive Maximum of 1 or 2, subscribes to a
        topic (or a wildcard over it) with options and perhaps an identifier, and three
        QoS 1 or 2 messages are published on the topic at once, by itself or by another
        client (3.1.1 or 5.0): the server sends no more than the window unacknowledged
        [MQTT-3.3.4-9], honours No Local [MQTT-3.8.3-3] and Retain As Published
        [MQTT-3.3.1-12], sends the identifier [MQTT-3.3.4-3] and the remaining Message
        Expiry Interval [MQTT-3.3.2-6]."""
        slot = self.choose(data, self.free_slots(), "slot")
        others = [s for s in self.connected_slots() if s != slot]
        publisher = self.choose(data, others or [slot], "publisher")
        self.prepare()
        self.send_connect5(
            slot, client_id, clean_start=True, expiry=None, receive_maximum=window,
            alias_maximum=2, packet_size=None, will=None,
        )
        self.driver.settle()
        topic, over = pair
        self.send_subscribe5(
            slot, [(over if wildcard else topic, granted, options)], identifier=identifier
        )
        self.driver.settle()
        source = slot if itself or not others else publisher
        for _ in range(3):
            publish_any_level(self, source, topic, qos, retain=retain, expiry=expiry)
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        topic=st.sampled_from(TOPICS),
        qos=qos_levels,
        retain=st.booleans(),
        delay=st.sampled_from(WILL_DELAYS5),
        expiry=st.sampled_from([1, 2, 0xFFFFFFFF]),
        ending=st.sampled_from(ENDINGS),
    )
    def away_with_a_delayed_will(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        client_id: str,
        topic: str,
        qos: QoS,
        retain: bool,
        delay: int,
        expiry: int,
        ending: str,
    ) -> Any:
        """A connected client listens on a topic; a level-5 client connects with a will
        on it, a Will Delay Interval and a Session Expiry Interval, and its connection
        ends: dropped, or DISCONNECT 0x04 (Disconnect with Will Message). The will waits
        for the delay or the session's end, whichever is sooner [MQTT-3.1.2-8].
        ``0x00``: a normal DISCONNECT, after which the will is never sent
        [MQTT-3.14.4-3]; ``returns``: the client comes back (Clean Start 0) before the
        delay ends, and the will is not sent [MQTT-3.1.3-9]. After those two nobody
        acts until past the delay and the margin a due will would be published in,
        so that a will sent all the same shows."""
        away_with_a_will(
            self, data, client_id, (topic, qos, retain, delay), expiry=expiry, ending=ending
        )
        return self.step_done()

    @precondition(lambda self: self.connected_slots())
    @rule(
        data=st.data(),
        client_id=client_ids,
        topic=st.sampled_from(TOPICS),
        qos=qos_levels,
        retain=st.booleans(),
        ending=st.sampled_from(ENDINGS),
    )
    def away_past_the_drivers_patience(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        client_id: str,
        topic: str,
        qos: QoS,
        retain: bool,
        ending: str,
    ) -> Any:
        """``away_with_a_delayed_will`` with a Will Delay Interval that outlasts the
        driver's patience (``past_patience``) and a session that never expires: a will
        sent before its delay is still early when the driver stops waiting for an
        explanation of it [MQTT-3.1.2-8]. After DISCONNECT 0x00 or a return the will
        must never come, early or late [MQTT-3.14.4-3] [MQTT-3.1.3-9]: there the delay
        is the shortest the machine's waits outlast, so that the story can watch past
        it (a will of the long delay would come after the example ends)."""
        delay = min(WILL_DELAYS5) if ending in UNSENT else past_patience(self)
        will = (topic, qos, retain, delay)
        away_with_a_will(self, data, client_id, will, expiry=0xFFFFFFFF, ending=ending)
        return self.step_done()

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        group=st.sampled_from(SHARED_FILTERS),
        granted=st.lists(acked_qos, min_size=2, max_size=2),
        qos=st.lists(acked_qos, min_size=2, max_size=3),
    )
    def a_group_shares_messages(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        group: str,
        granted: list[QoS],
        qos: list[QoS],
    ) -> Any:
        """Level-5 clients join one Shared Subscription group (``join_and_publish``)
        and a client publishes two or three QoS 1 or 2 messages: each goes to exactly
        one member, any of them, once (4.8.2), at that member's QoS [MQTT-4.8.2-3].
        Then a member that holds some of them unacknowledged, if one does, ends its
        session (DISCONNECT with a Session Expiry Interval of 0): its QoS 1 messages
        may go to another member, at that member's QoS, its QoS 2 ones to nobody
        [MQTT-4.8.2-5]. Groups at QoS 0, members that stay and members that only lose
        their connection come from the single rules and ``a_group_member_returns``."""
        members = join_and_publish(self, data, group, granted, qos)
        leaving = choose_holder(self, data, members)
        if leaving:
            if self.driver.connected(leaving):
                self.driver.send(leaving, Disconnect(0x00, SESSION_ENDS))
            self.driver.drop(leaving)
        return self.step_done()

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        group=st.sampled_from(SHARED_FILTERS),
        granted=st.lists(acked_qos, min_size=2, max_size=2),
        qos=st.lists(acked_qos, min_size=2, max_size=3),
        clean_start=st.booleans(),
    )
    def a_group_member_returns(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        group: str,
        granted: list[QoS],
        qos: list[QoS],
        clean_start: bool,
    ) -> Any:
        """Level-5 clients join one group and messages are published to it, as in
        ``a_group_shares_messages``; then a member holding some of them unacknowledged
        loses its connection (its session stays) and comes back. Clean Start 0: the
        server re-sends what it holds, and completes a QoS 2 delivery to it
        [MQTT-4.8.2-4] (a QoS 1 one it may have given another member meanwhile, 4.8.2);
        Clean Start 1 ends the session first, and its QoS 2 messages go to no other
        member [MQTT-4.8.2-5]."""
        members = join_and_publish(self, data, group, granted, qos)
        leaving = choose_holder(self, data, members)
        client = self.driver.client_id(leaving) if leaving else None
        if not leaving or client is None:
            return self.step_done()
        self.driver.drop(leaving)
        self.driver.settle()
        short = client.removeprefix(self.full_client_id(""))
        if self.driver.free(leaving):
            self.send_connect5(
                leaving, short, clean_start=clean_start, expiry=0xFFFFFFFF,
                receive_maximum=None, alias_maximum=None, packet_size=None, will=None,
            )
        return self.step_done()

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        group=st.sampled_from(SHARED_FILTERS),
        granted=st.lists(acked_qos, min_size=2, max_size=2),
        qos=st.lists(acked_qos, min_size=2, max_size=3),
        clean_start=st.booleans(),
    )
    def a_group_member_is_taken_over(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        group: str,
        granted: list[QoS],
        qos: list[QoS],
        clean_start: bool,
    ) -> Any:
        """Level-5 clients join one group and messages are published to it, as in
        ``a_group_shares_messages``; then a member holding some of them unacknowledged
        connects again on another connection while the first is still open (a client
        restarting): the server takes the session over [MQTT-3.1.4-3]. Clean Start 0:
        what the member holds is re-sent on the new connection, a QoS 2 delivery
        completed [MQTT-4.8.2-4]; Clean Start 1 ends the session, and its QoS 2
        messages go to no other member [MQTT-4.8.2-5]."""
        members = join_and_publish(self, data, group, granted, qos)
        leaving = choose_holder(self, data, members)
        slot = self.choose(data, self.free_slots() or [leaving], "new connection slot")
        client = self.driver.client_id(leaving) if leaving else None
        if not leaving or client is None:
            return self.step_done()
        if slot == leaving:  # no free slot: the old connection closes first
            self.driver.drop(leaving)
            self.driver.settle()
        short = client.removeprefix(self.full_client_id(""))
        if self.driver.free(slot):
            self.send_connect5(
                slot, short, clean_start=clean_start, expiry=0xFFFFFFFF,
                receive_maximum=None, alias_maximum=None, packet_size=None, will=None,
            )
        return self.step_done()


def away_with_a_will(
    machine: StoryMachine5, data: st.DataObject, client_id: str,
    will: tuple[str, QoS, bool, int], *, expiry: int, ending: str,
) -> None:
    """The will stories' actions: a connected client listens on the will's topic; a
    level-5 client connects with ``will`` (topic, QoS, retain, Will Delay Interval) and
    a Session Expiry Interval of ``expiry``, and its connection ends (``ending``:
    dropped, DISCONNECT 0x04 or 0x00, or dropped and back with Clean Start 0). With
    no slot free (the group stories fill them), another client's connection drops
    first and its slot is the one the will's client uses. After 0x00 or a return, a
    will of a delay the machine's waits outlast (``WILL_DELAYS5``) is watched for past
    its delay: it must not come [MQTT-3.14.4-3] [MQTT-3.1.3-9]; a longer one is left
    to later steps."""
    listener = machine.choose(data, machine.connected_slots(), "listener")
    others = [s for s in machine.connected_slots() if s != listener]
    if not (machine.free_slots() or others):
        return
    slot = machine.choose(data, machine.free_slots() or others, "slot")
    topic = will[0]
    machine.prepare()
    if not machine.driver.free(slot):
        machine.driver.drop(slot)
        machine.driver.settle()
    if listener in machine.level5_slots():
        machine.send_subscribe5(
            listener, [(topic, QoS.AT_LEAST_ONCE, (False, True, 0))], identifier=None
        )
    else:
        client = machine.driver.client_id(listener)
        if machine.driver.connected(listener) and client is not None:
            subscription = Subscription(machine.full(topic), QoS.AT_LEAST_ONCE)
            machine.driver.send(
                listener, Subscribe(machine.driver.next_packet_id(client), (subscription,))
            )
    machine.driver.settle()
    machine.send_connect5(
        slot, client_id, clean_start=True, expiry=expiry, receive_maximum=None,
        alias_maximum=None, packet_size=None, will=will,
    )
    machine.driver.settle()
    if ending in ("0x04", "0x00") and machine.driver.connected(slot):
        machine.driver.send(slot, Disconnect(int(ending, 16)))
    machine.driver.drop(slot)
    machine.driver.settle()
    if ending == "returns" and machine.driver.free(slot):
        machine.send_connect5(
            slot, client_id, clean_start=False, expiry=expiry, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
    delay = will[3]
    if ending in UNSENT and delay <= max(WILL_DELAYS5):
        machine.driver.settle()
        machine.driver.wait((delay + PAST_THE_DUE) * machine.target.timing.multiplier)


def past_patience(machine: StoryMachine5) -> int:
    """A Will Delay Interval that outlasts the driver's patience with an observation.

    The driver holds a PUBLISH the model rejects and judges it again as other
    observations and time come, for up to two ``owed_wait`` (quiescence, then the
    wait for an explanation): a will of 1 or 2 s sent at once is still held when
    its delay has passed, and then allowed, so a broker ignoring the delay is told
    apart only by a will that comes back retained or after a return. Past both
    waits the early will is a verdict [MQTT-3.1.2-8] whatever the machine's load."""
    return math.ceil(2 * machine.target.timing.owed_wait) + 1


GROUP_TOPICS = {
    shared: tuple(t for t in TOPICS if matches(shared.split("/", 2)[2], t))
    for shared in SHARED_FILTERS
}
"""The topics of ``TOPICS`` each group's filter matches: the ones its messages go to."""


def join_and_publish(
    machine: StoryMachine5, data: st.DataObject, group: str, granted: list[QoS],
    qos: list[QoS],
) -> list[str]:
    """A new level-5 client connects on a free slot, if there is one, and a second one
    if that makes fewer than two level-5 clients (a group of one shares nothing),
    each under a client id no connected client uses (another would take its session
    over); the first three level-5 clients join ``group`` (at the ``granted`` QoS in
    turn, each with an identifier of the group's own); a connected client publishes
    one message at each QoS of ``qos`` on a topic the group's filter matches. Returns
    the members' slots."""
    free = machine.free_slots()
    unused = [
        c for c in CLIENT_IDS if machine.driver.slot_of(machine.full_client_id(c)) is None
    ]
    newcomers: list[tuple[str, str]] = []
    for n in (1, 2):  # two different slots and client ids, where there are two
        slots = [f for f in free if all(f != slot for slot, _ in newcomers)]
        ids = [c for c in unused if all(c != client for _, client in newcomers)]
        newcomers.append((machine.choose(data, slots or [""], f"new member slot {n}"),
                          machine.choose(data, ids or [""], f"new member client id {n}")))
    publisher = machine.choose(data, machine.connected_slots(), "publisher")
    topic = machine.choose(data, GROUP_TOPICS[group], "topic")
    machine.prepare()
    for n, (slot, client_id) in enumerate(newcomers):
        if n and len(machine.level5_slots()) >= 2:
            break
        if not (slot and client_id and machine.driver.free(slot)):
            continue
        if machine.driver.slot_of(machine.full_client_id(client_id)) is not None:
            continue
        machine.send_connect5(
            slot, client_id, clean_start=True, expiry=0xFFFFFFFF, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        machine.driver.settle()
    members = machine.level5_slots()[:3]
    for index, member in enumerate(members):
        request = (group, granted[index % 2], (False, False, 0))
        # An identifier of this group's own (11-13, 21-23, 31-33): a member of two
        # groups the message matched tells by it which group a copy is for (3.3.4).
        identifier = 10 * (SHARED_FILTERS.index(group) + 1) + index + 1
        machine.send_subscribe5(member, [request], identifier=identifier)
    machine.driver.settle()
    for level in qos:
        publish_any_level(machine, publisher, topic, level, retain=False, expiry=None)
    if members:
        machine.driver.settle()
    return members


def choose_holder(machine: StoryMachine5, data: st.DataObject, members: list[str]) -> str:
    """A member that holds a QoS 2 message unacknowledged (it owes a PUBREC: where
    4.8.2's MUSTs bind [MQTT-4.8.2-4] [MQTT-4.8.2-5]), else one holding a QoS 1
    message (it owes a PUBACK: the server MAY or SHOULD hand it over), else any
    member; "" when there is none."""
    owed = [f for f in machine.driver.owed_by_connected() if f.direction == "in"]
    by_kind = [
        [m for m in members if any(
            f.kind == kind and f.client_id == machine.driver.client_id(m) for f in owed
        )]
        for kind in ("PUBREC", "PUBACK")
    ]  # fmt: skip
    holders = by_kind[0] or by_kind[1] or members or [""]
    return machine.choose(data, holders, "leaving member")


__all__ = ["GROUP_TOPICS", "SHARED_FILTERS", "Level5Stories", "StoryMachine5"]
