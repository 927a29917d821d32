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
``away_past_the_expiry_intervals`` is that sequence as one rule, its options
drawn at random; nothing here knows a fault.

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

SESSION_EXPIRIES = (1, 0xFFFFFFFF)
"""A session the wait outlasts (1 s), or one that never expires: then only the
messages' own intervals end what it holds."""
MESSAGE_EXPIRIES = (1, None)
"""Each message's Message Expiry Interval: one the wait outlasts, and none."""
AWAY_ENDINGS = ("dropped", "DISCONNECT")
"""How the client's (last) connection ends: the network goes, or a DISCONNECT 0x00."""
AWAY_WAIT = 2.3
"""Seconds the client stays away: ``BrokerMachine5.expiry_passes``'s wait, past the
short intervals (1 s) and the model's one-second margin."""


@attrs.frozen
class Absence:
    """What the story's client does: its Session Expiry Interval, the topic it
    subscribes to at ``granted``, whether it restarts (connects again on a new
    connection while the first is still open), how its connection ends, and the
    messages published to it while it is away (QoS, Message Expiry Interval), in
    order."""

    expiry: int
    topic: str
    granted: QoS
    restarts: bool
    ending: str
    messages: tuple[tuple[QoS, int | None], ...]


def subscribe_and_go_away(machine: StoryMachine5, slot: str, client_id: str,
                          absence: Absence, second: str) -> str:
    """``client_id`` connects at level 5 on ``slot`` (Clean Start 1, the absence's
    Session Expiry Interval) and subscribes; if it restarts, it connects again on
    ``second`` (Clean Start 0; none there: no restart), and the server ends the old
    connection with DISCONNECT 0x8E [MQTT-3.1.4-3], without a Session Expiry
    Interval [MQTT-3.14.2-2]; then its connection ends as the absence says. Returns
    the slot it was last connected on (free again), or "" if it never was."""
    machine.send_connect5(
        slot, client_id, clean_start=True, expiry=absence.expiry, receive_maximum=None,
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
            second, client_id, clean_start=False, expiry=absence.expiry,
            receive_maximum=None, alias_maximum=None, packet_size=None, will=None,
        )
        machine.driver.settle()
        last = second
    if absence.ending == "DISCONNECT" and machine.driver.connected(last):
        machine.driver.send(last, Disconnect(0x00))
    machine.driver.drop(last)
    machine.driver.settle()
    return last


def away_and_back(machine: StoryMachine5, slot: str, client_id: str, absence: Absence,
                  *, second: str, publisher: str) -> None:
    """``subscribe_and_go_away``; then ``publisher`` publishes the absence's messages
    on its topic, time passes beyond the short intervals (``AWAY_WAIT``), and the
    client returns with Clean Start 0 on the slot it left."""
    last = subscribe_and_go_away(machine, slot, client_id, absence, second)
    if not last:
        return
    for qos, expiry in absence.messages:
        publish_any_level(machine, publisher, absence.topic, qos, retain=False, expiry=expiry)
    machine.driver.settle()
    machine.driver.wait(AWAY_WAIT * machine.target.timing.multiplier)
    if machine.driver.free(last):
        machine.send_connect5(
            last, client_id, clean_start=False, expiry=absence.expiry, receive_maximum=None,
            alias_maximum=None, packet_size=None, will=None,
        )


class SessionStories5:
    """The level-5 session stories as rules, for a machine that is a ``StoryMachine5``."""

    @precondition(lambda self: self.free_slots() and self.connected_slots())
    @rule(
        data=st.data(),
        expiry=st.sampled_from(SESSION_EXPIRIES),
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
        expiry: int,
        topic: str,
        granted: QoS,
        restarts: bool,
        ending: str,
        qos: list[QoS],
        expiring_first: bool,
    ) -> Any:
        """A level-5 client with a Session Expiry Interval of 1 s or never subscribes
        to a topic, perhaps restarts (its new connection takes the session over: the
        old one gets DISCONNECT 0x8E without a Session Expiry Interval [MQTT-3.1.4-3]
        [MQTT-3.14.2-2]), and its connection ends (dropped, or DISCONNECT 0x00); a
        connected client (level 5 if there is one)
        publishes two QoS 1 or 2 messages to the topic, one with a Message Expiry
        Interval of 1 s and one without; time passes beyond both short intervals, and
        the client returns with Clean Start 0. A session of 1 s is gone by then
        [MQTT-4.1.0-2]: Session Present 0 [MQTT-3.2.2-3], and nothing of it is sent;
        one that never expires is resumed [MQTT-3.1.2-23], with the message without
        an interval and not the expired one [MQTT-3.3.2-5]."""
        unused = [
            c for c in CLIENT_IDS if self.driver.slot_of(self.full_client_id(c)) is None
        ]
        client_id = self.choose(data, unused or list(CLIENT_IDS), "client id")
        slot = self.choose(data, self.free_slots(), "slot")
        second = self.choose(
            data, [s for s in self.free_slots() if s != slot] or [""], "takeover slot"
        )
        publisher = self.choose(data, self.level5_slots() or self.connected_slots(),
                                "publisher")
        expiries = MESSAGE_EXPIRIES if expiring_first else MESSAGE_EXPIRIES[::-1]
        messages = tuple(zip(qos, expiries, strict=True))
        absence = Absence(expiry, topic, granted, restarts, ending, messages)
        self.prepare()
        away_and_back(self, slot, client_id, absence, second=second, publisher=publisher)
        return self.step_done()


__all__ = ["SessionStories5"]
