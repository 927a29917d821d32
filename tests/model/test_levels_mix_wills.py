"""A level-5 client's delayed will, and a 3.1.1 connection made to its session.

[MQTT-3.1.3-9] speaks of a new Network Connection to the Session, whatever its
Protocol Level: a 3.1.1 CONNECT with Clean Session 0 that resumes the session
before the Will Delay Interval has passed cancels the will, while Clean Session
1 ends the old session, and a will whose session ends is sent [MQTT-3.1.2-8].
(Found by BrokerMachine5 on the mqttref broker, which was right: the model owed
the cancelled will.)
"""

from __future__ import annotations

from mqttref.model import BrokerModel, Drop, TimePasses
from tests.model.helpers import connect, publish
from tests.model.test_levels_mix import connected5, refs_of, subscribed_to_wills, will5


def away_with_a_delayed_will(model: BrokerModel) -> None:
    subscribed_to_wills(model)
    connected5(model, "a", clean_start=False, session_expiry=100, will=will5(10))
    model.apply(Drop("a"))
    model.apply(TimePasses(0.3))


def test_a_3_1_1_connection_resuming_the_session_cancels_the_delayed_will() -> None:
    model = BrokerModel()
    away_with_a_delayed_will(model)
    connect(model, "b", clean=False, session_present=True, client_id="a")
    model.apply(TimePasses(20))
    assert model.check_quiescent() == []
    assert refs_of(model, "watcher", publish("wills/a", b"gone")) == ("MQTT-3.1.3-9",)


def test_a_clean_3_1_1_connection_ends_the_session_and_the_will_is_due() -> None:
    model = BrokerModel()
    away_with_a_delayed_will(model)
    connect(model, "b", clean=True, client_id="a")
    model.observe("watcher", publish("wills/a", b"gone"))
    assert model.check_quiescent() == []
