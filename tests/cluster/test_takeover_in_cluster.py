"""Takeover and resumption in the 3-node cluster of ``mqttref broker --cluster`` processes.

The same promises as ``test_takeover_across_nodes.py`` and
``test_sessions_resume_elsewhere.py``, now with the nodes as the command line runs
them and messages routed between nodes through NATS: a session that moved to n2
receives what a publisher on n3 sends, and mosquitto's own clients resume a session
on another node than the one that queued for it.
"""

from __future__ import annotations

import shutil
import subprocess

from tests.broker.paho_client import Paho
from tests.broker.test_v5_peers import Paho5
from tests.cluster.conftest import Cluster
from tests.cluster.helpers import client, wait_for_interest
from tests.helpers.peers import require_peer

SESSION_TAKEN_OVER = 0x8E


def test_a_session_taken_over_on_n2_receives_from_a_publisher_on_n3(cluster: Cluster) -> None:
    """A 5.0 client with a session expiry connected and subscribed on n1 connects again on
    n2: n1 sends DISCONNECT 0x8E [MQTT-3.1.4-2]; n2 resumes the session (session present
    1) and subscribes for it in NATS, so a message published on n3 reaches it there."""
    first = Paho5(cluster.node("n1").port, "mover", clean_start=True, session_expiry=300)
    first.subscribe("move/#", 1)
    second = Paho5(cluster.node("n2").port, "mover", clean_start=False, session_expiry=300)
    publisher = client(cluster, "n3")
    try:
        assert first.disconnected.wait(5.0), "n1 kept the first connection"
        first.client.loop_stop()  # paho would reconnect to n1 (a second takeover) in 1 s
        assert first.disconnect_reason == SESSION_TAKEN_OVER
        assert second.session_present is True
        wait_for_interest(cluster, "n2", "move/#")
        publisher.publish("move/1", b"from n3", 1)
        [message] = second.expect(1)
        assert (message.topic, message.payload) == ("move/1", b"from n3")
    finally:
        second.stop()
        publisher.disconnect()


def test_mosquitto_sub_resumes_on_n2_what_n1_queued_from_mosquitto_pub_on_n3(
    cluster: Cluster,
) -> None:
    """A persistent session subscribed on n1 (clean session 0) is away; mosquitto_pub on n3
    sends it three QoS 1 messages, queued on n1; ``mosquitto_sub -c`` with the same
    client id on n2 gets all three, in order [MQTT-4.6.0-6]."""
    require_peer("mosquitto_sub", shutil.which("mosquitto_sub") is not None,
                 "mosquitto-clients is not installed")
    away = Paho(cluster.node("n1").port, "mq-away", clean_session=False).connect()
    assert away.subscribe("mq/#", 1) == [1]
    away.disconnect()
    wait_for_interest(cluster, "n1", "mq/#")
    for n in range(3):
        subprocess.run(["mosquitto_pub", "-p", str(cluster.node("n3").port), "-q", "1",
                        "-t", "mq/queued", "-m", f"m{n}"], check=True, timeout=10)
    out = subprocess.run(
        ["mosquitto_sub", "-p", str(cluster.node("n2").port), "-i", "mq-away", "-c", "-q",
         "1", "-t", "mq/#", "-v", "-C", "3", "-W", "15"],
        capture_output=True, text=True, timeout=20, check=False).stdout
    assert out.splitlines() == ["mq/queued m0", "mq/queued m1", "mq/queued m2"]
