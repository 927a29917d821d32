"""Level-5 session stories: a session outliving its connection, and its end.

At 5.0 a session outlives its connection for its Session Expiry Interval
[MQTT-3.1.2-23] and then is gone [MQTT-4.1.0-2], and each message it holds for
the absent client lives for its own Message Expiry Interval: one that passed
while queued is not forwarded when the client returns [MQTT-3.3.2-5]. Seeing
either takes a level-5 client with a persistent session and a subscription, its
connection ending (dropped, DISCONNECT, or taken over by the client's new
connection, which the server ends with DISCONNECT 0x8E [MQTT-3.1.4-3] and no
Session Expiry Interval [MQTT-3.14.2-2]), messages published to it meanwhile, a
wait past the short intervals, and its return with Clean Start 0: a sequence the
single rules of ``BrokerMachine5`` line up too rarely for a bounded hunt.
``away_past_the_expiry_intervals`` is that sequence as one rule, for two clients
at once (a session that never expires and one of 1 s), so that one wait serves
both; its options are drawn at random, and nothing here knows a fault.

What the story uses of the machine is ``StoryMachine5``, as in ``stories5``.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from mqttref.impl.codec.packets import Disconnect, QoS
from mqttref.oracle.stateful.stories import CLIENT_IDS, TOPICS
from mqttref.oracle.stateful.stories5 import StoryMachine5, acked_qos, publish_any_level

NEVER = 0xFFFFFFFF
SESSION_EXPIRIES = (NEVER, 1)
"""The two absent clients' Session Expiry Intervals: a session that never expires
(only the messages' own intervals end what it holds), and one the wait outlasts."""
MESSAGE_EXPIRIES = (1, None)
"""Each message's Message Expiry Interval: one the wait outlasts, and none."""
AWAY_ENDINGS = ("dropped", "DISCONNECT")
"""How a client's (last) connection ends: the network goes, or a DISCONNECT 0x00."""
AWAY_WAIT = 2.3
"""Seconds the clients stay away: ``BrokerMachine5.expiry_passes``'s wait, past the
short intervals (1 s) and the model's one-second margin."""


@attrs.frozen
class Absence:
    """What the story's clients do: subscribe to ``topic`` at ``granted``, perhaps
    restart (connect again on a new connection while the first is still open), end
    their connection (``ending``), while the messages (QoS, Message Expiry Interval)
    are published to them in order."""

    topic: str
    granted: QoS
    restarts: bool
    ending: str
    messages: tuple[tuple[QoS, int | None], ...]


def subscribe_and_go_away(machine: StoryMachine5, slots: tuple[str, str], client_id: str,
                          expiry: int, absence: Absence) -> str:
    """``client_id`` connects at level 5 on ``slots[0]`` (Clean Start 1, a Session
    Expiry Interval of ``expiry``) and subscribes; if it restarts, it connects again on
    ``slots[1]`` (Clean Start 0; none there: no restart), and the server ends the old
    connection with DISCONNECT 0x8E [MQTT-3.1.4-3], without a Session Expiry Interval
    [MQTT-3.14.2-2]; then its connection ends as the absence says. Returns the slot it
    was last connected on (free again), or "" if it never was."""
    slot, second = slots
    if not machine.driver.free(slot):
        return ""
    machine.send_connect5(
        slot, client_id, clean_start=True, expiry=expiry, receive_maximum=None,
        alias_maximum=None, packet_size=None, will=None,
    )
    machine.driver.settle()
    if not machine.driver.connected(slot):
        return ""
    machine.send_subscribe5(
        slot, [(absence.topic, absence.granted, (False, False, 0))], identifier=None
    )
    machine.driver.settle()
    last = slot
    if absence.restarts and second and machine.driver.free(second):
        machine.send_connect5(
            second, client_id, clean_start=False, expiry=expiry, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )
        machine.driver.settle()
        last = second
    if absence.ending == "DISCONNECT" and machine.driver.connected(last):
        machine.driver.send(last, Disconnect(0x00))
    machine.driver.drop(last)
    machine.driver.settle()
    return last


def away_and_back(machine: StoryMachine5, slots: tuple[str, str],
                  clients: tuple[tuple[str, int], ...], absence: Absence, *,
                  publisher: str) -> None:
    """Each of ``clients`` (ClientID, Session Expiry Interval) in turn connects on
    ``slots`` and goes away (``subscribe_and_go_away``); ``publisher`` publishes the
    absence's messages on its topic, time passes beyond the short intervals
    (``AWAY_WAIT``), and each client returns with Clean Start 0 (on a slot it used,
    the previous one dropped first if no slot is free)."""
    away = [
        (client_id, expiry)
        for client_id, expiry in clients
        if subscribe_and_go_away(machine, slots, client_id, expiry, absence)
    ]
    if not away:
        return
    for qos, message_expiry in absence.messages:
        publish_any_level(machine, publisher, absence.topic, qos, retain=False,
                          expiry=message_expiry)
    machine.driver.settle()
    machine.driver.wait(AWAY_WAIT * machine.target.timing.multiplier)
    back = ""
    for client_id, expiry in away:
        free = [s for s in slots if s and machine.driver.free(s)]
        if not free and back:
            machine.driver.drop(back)  # the previous client goes again, its session kept
            machine.driver.settle()
            free = [back]
        if machine.driver.free(free[0]):
            machine.send_connect5(
                free[0], client_id, clean_start=False, expiry=expiry, receive_maximum=None,
                alias_maximum=None, packet_size=None, will=None,
            )
            machine.driver.settle()
            back = free[0]


class SessionStories5:
    """The level-5 session stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.free_slots() and self.connected_slots())
    @rule(
        data=st.data(),
        topic=st.sampled_from(TOPICS),
        granted=acked_qos,
        restarts=st.booleans(),
        ending=st.sampled_from(AWAY_ENDINGS),
        qos=st.lists(acked_qos, min_size=2, max_size=2),
        expiring_first=st.booleans(),
    )
    def away_past_the_expiry_intervals(
        self: StoryMachine5,
        data: st.DataObject,
        *,
        topic: str,
        granted: QoS,
        restarts: bool,
        ending: str,
        qos: list[QoS],
        expiring_first: bool,
    ) -> Any:
        """Two level-5 clients, one whose session never expires and one whose session
        expires after 1 s, each subscribe to a topic, perhaps restart (the new
        connection takes the session over: the old one gets DISCONNECT 0x8E without a
        Session Expiry Interval [MQTT-3.1.4-3] [MQTT-3.14.2-2]), and go away (dropped,
        or DISCONNECT 0x00); a connected client (level 5 if there is one) publishes two
        QoS 1 or 2 messages to the topic, one with a Message Expiry Interval of 1 s and
        one without; time passes beyond both short intervals, and both clients return
        with Clean Start 0. The session of 1 s is gone by then [MQTT-4.1.0-2]: Session
        Present 0 [MQTT-3.2.2-3], and nothing of it is sent; the other is resumed
        [MQTT-3.1.2-23], with the message without an interval and not the expired one
        [MQTT-3.3.2-5]."""
        unused = [
            c for c in CLIENT_IDS if self.driver.slot_of(self.full_client_id(c)) is None
        ]
        first = self.choose(data, unused or list(CLIENT_IDS), "client id, never expires")
        others = [c for c in unused if c != first]
        second_id = self.choose(data, others or [""], "client id, expires after 1 s")
        slot = self.choose(data, self.free_slots(), "slot")
        second = self.choose(
            data, [s for s in self.free_slots() if s != slot] or [""], "restart slot"
        )
        publisher = self.choose(data, self.level5_slots() or self.connected_slots(),
                                "publisher")
        expiries = MESSAGE_EXPIRIES if expiring_first else MESSAGE_EXPIRIES[::-1]
        messages = tuple(zip(qos, expiries, strict=True))
        absence = Absence(topic, granted, restarts, ending, messages)
        clients = tuple(
            (c, e) for c, e in zip((first, second_id), SESSION_EXPIRIES, strict=True) if c
        )
        self.prepare()
        away_and_back(self, (slot, second), clients, absence, publisher=publisher)
        return self.step_done()


__all__ = ["SessionStories5"]
