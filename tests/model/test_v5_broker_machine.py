"""The broker model against itself with 3.1.1 and 5.0 clients on one broker.

The 3.1.1 machine of ``test_model_machine`` gains level-5 rules: CONNECTs with
Clean Start, a Session Expiry Interval, a will with a delay and the client's
limits (Receive Maximum, Topic Alias Maximum), SUBSCRIBEs with options and
Subscription Identifiers, PUBLISHes with properties.
The same things must hold: whatever ``allowed()`` offers, ``observe()``
accepts; a server that sends what is owed reaches quiescence; the invariants
hold; a rejected observation changes nothing.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from mqttref.impl.codec.packets import (
    Connect,
    Packet,
    Properties,
    ProtocolLevel,
    Publish,
    QoS,
    Subscribe,
    Subscription,
    Will,
)
from tests import strategies
from tests.model.test_model_machine import CLIENT_IDS, FILTERS, TOPICS, ModelMachine, qos, slots

EXPIRIES = st.sampled_from([None, 0, 5, 0xFFFFFFFF])
SHARED_FILTERS = ("$share/g/a", "$share/g/a/#", "$share/h/+")
"""Two groups on one filter's topics and one more: members of several groups at once."""


class MixedLevelsMachine(ModelMachine):
    @rule(
        slot=slots,
        client_id=st.sampled_from(CLIENT_IDS),
        clean_start=st.booleans(),
        expiry=EXPIRIES,
        will=st.none()
        | st.tuples(st.sampled_from(TOPICS[:4]), qos, st.booleans(), st.sampled_from([0, 3])),
        receive_maximum=st.sampled_from([None, 1, 2]),
        alias_maximum=st.sampled_from([None, 2]),
    )
    def connect5(
        self,
        *,
        slot: str,
        client_id: str,
        clean_start: bool,
        expiry: int | None,
        will: tuple[str, QoS, bool, int] | None,
        receive_maximum: int | None,
        alias_maximum: int | None,
    ) -> None:
        """A level-5 connection (a takeover when the ClientID is connected elsewhere)."""
        if not self.free(slot):
            return
        packet_will = None
        if will is not None:
            topic, will_qos, retain, delay = will
            delay_property = Properties(will_delay_interval=delay)
            packet_will = Will(topic, b"will " + slot.encode(), will_qos, retain, delay_property)
        properties = Properties(
            session_expiry_interval=expiry,
            receive_maximum=receive_maximum,
            topic_alias_maximum=alias_maximum,
        )
        packet = Connect(
            ProtocolLevel.MQTT_5, client_id, clean_start, 0, packet_will, properties=properties
        )
        self.send(slot, packet)

    def level5_slots(self) -> list[str]:
        return [s for s in self.connected_slots() if self.model.connections[s].level == 5]

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        topic_filter=st.sampled_from(FILTERS + SHARED_FILTERS),
        requested=qos,
        no_local=st.booleans(),
        retain_as_published=st.booleans(),
        retain_handling=st.sampled_from([0, 1, 2]),
        identifier=st.sampled_from([None, 1, 2]),
    )
    def subscribe5(
        self,
        *,
        data: st.DataObject,
        topic_filter: str,
        requested: QoS,
        no_local: bool,
        retain_as_published: bool,
        retain_handling: int,
        identifier: int | None,
    ) -> None:
        """A level-5 SUBSCRIBE with options and a Subscription Identifier."""
        slot = self.pick(data, self.level5_slots())
        request = Subscription(
            topic_filter, requested, no_local, retain_as_published, retain_handling
        )
        properties = Properties(subscription_identifiers=(identifier,) if identifier else ())
        self.send(slot, Subscribe(self.next_id(slot), (request,), properties))

    @precondition(lambda self: self.level5_slots())
    @rule(
        data=st.data(),
        topic=st.sampled_from(TOPICS),
        qos=qos,
        retain=st.booleans(),
        expiry=st.sampled_from([None, 2, 60]),
        user=st.sampled_from([(), (("k", "1"), ("k", "2"))]),
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
    ) -> None:
        """A level-5 PUBLISH with properties the server forwards."""
        slot = self.pick(data, self.level5_slots())
        packet_id = self.next_id(slot) if qos else None
        properties = Properties(
            message_expiry_interval=expiry, user_properties=user, content_type="text/plain"
        )
        self.send(slot, Publish(topic, b"p5", qos, retain, False, packet_id, properties))


# No example database: examples saved while the model changed replay as other
# programs, and a replayed one that no longer fails can shrink for minutes.
MixedLevelsMachine.TestCase.settings = settings(stateful_step_count=40, database=None)
TestMixedLevelsMachine = MixedLevelsMachine.TestCase


class AnyPacketMachine(MixedLevelsMachine):
    """Level-5 packets of every shape, from the server and from level-5 clients."""

    @precondition(lambda self: any(self.model.connections))
    @rule(data=st.data(), packet=strategies.packets(ProtocolLevel.MQTT_5))
    def the_server_sends_any_5_0_packet(self, data: st.DataObject, packet: Packet) -> None:
        """Whatever a server sends is judged: accepted, or a ``Violation``; never a crash."""
        self.judge(self.any_connection(data), packet)

    @precondition(lambda self: self.level5_slots())
    @rule(data=st.data(), packet=strategies.client_packets(ProtocolLevel.MQTT_5))
    def a_level_5_client_sends_any_packet(self, data: st.DataObject, packet: Packet) -> None:
        """Any well-typed 5.0 client packet is an event the model can take."""
        self.send(self.pick(data, self.level5_slots()), packet)


AnyPacketMachine.TestCase.settings = settings(stateful_step_count=40, database=None)
TestAnyPacketMachine = AnyPacketMachine.TestCase
