"""A copy sent after its message was released goes at the QoS of the subscriptions of then.

A QoS 2 message may be delivered at its PUBLISH or at its PUBREL (4.3.3), and a will
when its connection closes, which may be long after the close first became possible.
A subscription re-made at another QoS in between makes either QoS right [MQTT-3.8.4-6].
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    PingReq,
    PingResp,
    ProtocolLevel,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    Will,
)
from mqttref.model import BrokerModel, Drop, Send, TimePasses
from tests.model.helpers import connect, publish, subscribe


def resubscribe(model: BrokerModel, client: str, topic_filter: str, qos: int) -> None:
    model.apply(Send(client, Subscribe(2, (Subscription(topic_filter, QoS(qos)),))))
    model.observe(client, SubAck(2, (qos,)))


def test_a_will_goes_at_the_qos_of_the_subscription_when_its_connection_closes() -> None:
    model = BrokerModel()
    connect(model, "sub", clean=False)
    subscribe(model, "sub", "w", 0)
    will = Will("w", b"gone", QoS(1), False)
    model.apply(Send("c", Connect(ProtocolLevel.MQTT_3_1_1, "c", keep_alive=1, will=will)))
    model.observe("c", ConnAck(False, 0))
    model.apply(TimePasses(1.6))  # the keep-alive close is possible: the will may go out
    model.apply(Send("c", PingReq()))
    model.observe("c", PingResp())  # it did not: the connection is still open
    resubscribe(model, "sub", "w", 1)
    model.apply(Drop("c"))  # now it closes, and the will goes at the QoS of now
    model.observe("sub", publish("w", b"gone", 1, 1))


def test_a_qos_2_message_released_after_a_resubscription_may_go_at_the_new_qos() -> None:
    model = BrokerModel()
    connect(model, "sub")
    subscribe(model, "sub", "t", 0)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m", 2, 1)))
    model.observe("pub", PubRec(1))
    resubscribe(model, "sub", "t", 2)
    model.apply(Send("pub", PubRel(1)))
    model.observe("sub", publish("t", b"m", 2, 1))  # delivered at PUBREL (4.3.3)
