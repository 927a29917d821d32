"""The exploring client keeps the client's ordering rules, so that the order the
model owes subscribers is the one every allowed server keeps.

A server may forward a QoS 2 message when its PUBLISH arrives or only at its PUBREL
(3.1.1 Figure 4.3, Method A, as mosquitto does). The two orders agree only while the
publisher releases its messages in the order their PUBRECs came, as it must
[MQTT-4.6.0-4]. An exploration that released them out of order judged mosquitto's
release-order forwarding as a break of [MQTT-4.6.0-6].
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mqttref.impl.codec.packets import Connect, ProtocolLevel, Publish, QoS
from mqttref.model.broker import BrokerModel
from mqttref.oracle.stateful.driver import Driver
from mqttref.oracle.stateful.target import Timing
from tests.helpers.broker_thread import BrokerThread
from tests.stateful.inprocess import TEST_BROKER_CONFIG

V311 = ProtocolLevel.MQTT_3_1_1


@pytest.fixture
def driver() -> Iterator[Driver]:
    running = BrokerThread(TEST_BROKER_CONFIG).start()
    model = BrokerModel(max_inflight=TEST_BROKER_CONFIG.max_inflight)
    driver = Driver(running.host, running.port, Timing(), model)
    try:
        yield driver
    finally:
        driver.close()
        running.stop()


def publish_three_at_qos2(driver: Driver) -> None:
    driver.send("s1", Connect(V311, "publisher", True, 0))
    driver.settle()
    for n in (1, 2, 3):
        driver.send("s1", Publish("t/a", f"m{n}".encode(), QoS(2), False, False, n))
    deadline = time.monotonic() + 5
    while len(driver.acks_owed_by("s1")) < 3 and time.monotonic() < deadline:
        driver.poll(0.05)
    assert [f.kind for f in driver.acks_owed_by("s1")] == ["PUBREL"] * 3


def test_only_the_oldest_release_is_offered_to_a_withholding_client(driver: Driver) -> None:
    publish_three_at_qos2(driver)
    assert [(f.kind, f.packet_id) for f in driver.owed_by_connected()] == [("PUBREL", 1)]


def test_each_release_offers_the_next_one(driver: Driver) -> None:
    publish_three_at_qos2(driver)
    released = []
    while offered := driver.owed_by_connected():
        (flight,) = offered
        assert driver.acknowledge(flight)
        released.append(flight.packet_id)
    assert released == [1, 2, 3]
