"""A message expired for a current subscription is named expired [MQTT-3.3.2-5], also
when a subscription of an earlier, discarded session would have matched it too.

A client id first used by a 3.1.1 client (Clean Session 0, a subscription to ``#``)
connects at level 5 with Clean Start 1: that session and its subscription are
discarded [MQTT-3.1.2-4]. The new session subscribes to ``t``, the client goes away,
a message with a Message Expiry Interval of 1 s is published on ``t``, and it comes
back after the interval (and the model's margin). The message is due to no one: its
copy expired while queued. A server that sends it breaks [MQTT-3.3.2-5]; the old
subscription to ``#`` is no better explanation, since the current one gave the copy.
(Found by the level-5 machine's hunt of ``expired_message_forwarded``, which the
model blamed on the discarded subscription.)
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import ConnAck, Properties, PubAck
from mqttref.model import BrokerModel, Closed, Drop, Send, TimePasses
from tests.model.helpers import connect, subscribe
from tests.model.test_levels_mix import connect5, connected5, refs_of
from tests.model.test_v5_broker_publish import publish5, subscribe5

NEVER = 0xFFFFFFFF


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel(expiry_margin=1.0)


def test_a_message_expired_while_queued_is_named_expired_after_a_discard(
    model: BrokerModel,
) -> None:
    connect(model, "old", client_id="id", clean=False)
    subscribe(model, "old", "#", 1)
    model.apply(Drop("old"))
    model.observe("old", Closed())
    connected5(model, "sub", client_id="id", clean_start=True, session_expiry=NEVER)
    subscribe5(model, "sub", "t", 1)
    model.apply(Drop("sub"))
    model.observe("sub", Closed())
    connected5(model, "pub")
    expiring = Properties(message_expiry_interval=1)
    model.apply(Send("pub", publish5("t", b"m", 1, 1, properties=expiring)))
    model.observe("pub", PubAck(1))
    model.apply(TimePasses(3))
    model.apply(connect5("sub", client_id="id", clean_start=False, session_expiry=NEVER))
    model.observe("sub", ConnAck(True, 0x00))
    late = publish5("t", b"m", 1, 1, properties=Properties(message_expiry_interval=1))
    assert refs_of(model, "sub", late) == ("MQTT-3.3.2-5",)
    assert model.check_quiescent() == []
