"""The subject mapping judged by a real nats-server, not by our reading of NATS's rules:
every (filter, topic) pair below is delivered by NATS exactly when MQTT matches it (4.7)."""

from __future__ import annotations

import asyncio
import itertools

import nats
from nats.aio.msg import Msg

from mqttref.impl.cluster.subjects import filter_subjects, topic_subject
from tests.cluster.conftest import Cluster
from tests.cluster.test_subjects import mqtt_matches

FILTERS = ["#", "+", "+/+", "a/#", "a/+", "a/+/c", "/#", "+/", "$SYS/#", "$SYS/+", "+/b",
           "a.b/#", "c d/+", "*/#", ">", "ünï/+", "=41/#", "a//c", "$share"]
TOPICS = ["a", "a/b", "a/b/c", "a//c", "/", "/a", "$SYS", "$SYS/x", "$SYS/x/y", "a.b/c d",
          "c d/e", "*/>", ">", "ünï/𪛔", "=41/x", "A", "a/", "$share"]


async def deliveries(url: str) -> set[tuple[str, str]]:
    """(filter, topic) pairs NATS delivered: one subscription set per filter."""
    connection = await nats.connect(url)
    got: set[tuple[str, str]] = set()
    try:
        for topic_filter in FILTERS:
            async def arrived(msg: Msg, topic_filter: str = topic_filter) -> None:
                got.add((topic_filter, msg.data.decode()))
            for subject in filter_subjects(topic_filter):
                await connection.subscribe("probe." + subject, cb=arrived)
        await connection.flush()
        for topic in TOPICS:
            await connection.publish("probe." + topic_subject(topic), topic.encode())
        await connection.flush()
        await asyncio.sleep(0.3)
    finally:
        await connection.close()
    return got


def test_nats_server_delivers_exactly_the_pairs_mqtt_matches(cluster: Cluster) -> None:
    got = asyncio.run(deliveries(cluster.nats.url))
    expected = {(f, t) for f, t in itertools.product(FILTERS, TOPICS) if mqtt_matches(f, t)}
    assert got == expected
