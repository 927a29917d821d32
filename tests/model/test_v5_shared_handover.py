"""A Shared Subscription message handed over when its member's session ends (4.8.2).

"If the Client's Session terminates before the Client reconnects, the Server
SHOULD send the Application Message to another Client that is subscribed to the
same Shared Subscription": that member may have been sent later messages of the
same publisher and topic already, so the handed-over one arrives after them. The
spec asks for it, so it is no breach of the order of [MQTT-4.6.0-6].
"""

from __future__ import annotations

from mqttref.impl.codec.packets import PubAck
from mqttref.model import BrokerModel, Drop, Send
from tests.model.helpers import publish
from tests.model.test_levels_mix import connected5
from tests.model.test_v5_broker_publish import subscribe5

GROUP = "$share/g/t"


def test_a_message_handed_over_may_arrive_after_later_ones() -> None:
    model = BrokerModel()
    connected5(model, "a")  # Session Expiry Interval 0: the session ends with the connection
    subscribe5(model, "a", GROUP, 1)
    connected5(model, "b", session_expiry=100)
    subscribe5(model, "b", GROUP, 1)
    connected5(model, "pub")
    for packet_id, payload in ((1, b"m1"), (2, b"m2")):
        model.apply(Send("pub", publish("t", payload, 1, packet_id)))
        model.observe("pub", PubAck(packet_id))
    model.observe("a", publish("t", b"m1", 1, 1))
    model.observe("b", publish("t", b"m2", 1, 1))
    model.apply(Drop("a"))
    model.observe("b", publish("t", b"m1", 1, 2))  # handed over, after m2
    model.apply(Send("b", PubAck(1)))
    model.apply(Send("b", PubAck(2)))
    assert model.check_quiescent() == []
