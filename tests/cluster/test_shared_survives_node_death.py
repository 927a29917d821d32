"""A shared subscription group loses nothing acknowledged when a member's node is killed.

The promise (docs/cluster.md, "What the cluster promises"): a QoS 1/2 message whose
PUBACK (QoS 1) or PUBCOMP (QoS 2) the publisher got reaches one member of each
matching shared subscription group (4.8.2) at least once, even when the node that
NATS picked for it dies (SIGKILL) before the member acknowledged it, as long as the
group's members have persistent sessions [MQTT-3.1.2-4]: the group's messages come
from a durable JetStream consumer that forgets a message only once a member's
session on some node has it written. A QoS 2 message reaches the group once: the
member it was written for completes it [MQTT-4.8.2-4] and no other member gets it
[MQTT-4.8.2-5], even when JetStream gives it again because its node died before
saying it was written [MQTT-4.3.3-2].

The run: a group with a persistent member on n2 and one on n3 (paho, 3.1.1 with
``$share``, clean session 0), a publisher on n1 sending 300 QoS 1 and 300 QoS 2
messages. Mid-flow n2 hangs (SIGSTOP, as a node stalled by its machine) while NATS
goes on handing it its share of the group's messages, then it is killed (SIGKILL)
and its member reconnects on n1 at once. The hang is what makes the node die holding
messages it has not written yet: a node that keeps up writes each within
milliseconds, and a kill rarely finds one. Every message is numbered (QoS 1 from 0,
QoS 2 from ``COUNT``), so a loss is named.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

from tests.cluster.conftest import Cluster
from tests.cluster.helpers import eventually, nats_subjects
from tests.cluster.test_kill_mid_flow import Publisher, Subscriber

COUNT = 300
HANG_AT = 100
"""The message number at which n2 hangs, once as many pairs are acknowledged."""
KILL_AT = 200
"""The message number at which the hung n2 is killed, once as many pairs are
acknowledged (the publisher's node n1 acknowledges without n2)."""
DELIVERY_WAIT = 40.0
"""Seconds for every acknowledged message to reach the group after the kill (the
stream's consumer gives a message another node once its ack wait ran out)."""
GROUP_FILTER = "kill/share/+"


def test_a_shared_group_loses_nothing_acknowledged_when_a_members_node_is_killed(
    cluster: Cluster,
) -> None:
    """Every acknowledged message reaches the group (QoS 1 at least once, QoS 2 exactly
    once in the whole group) although the node holding some of them died mid-flow."""
    n1, n2, n3 = (cluster.node(name) for name in ("n1", "n2", "n3"))
    group = f"$share/kg/{GROUP_FILTER}"
    members = {"n2": Subscriber("kill-share-m2", group, 2),
               "n3": Subscriber("kill-share-m3", group, 2)}
    for node, member in members.items():
        member.connect(cluster.node(node).port)
        member.subscribe()
    for node in members:
        eventually(lambda node=node: nats_subjects(GROUP_FILTER)  # type: ignore[misc]
                   <= cluster.nats.subscriptions_of(f"{node}-shared"),
                   f"{node}'s queue subscription")
    publisher = Publisher(n1.port)
    try:
        for number in range(COUNT):
            publisher.publish("kill/share/1", number, 1)
            publisher.publish("kill/share/2", COUNT + number, 2)
            if number in (HANG_AT, KILL_AT):
                eventually(lambda n=number: publisher.acknowledged()  # type: ignore[misc]
                           >= 2 * n, "acknowledgements")
                if number == HANG_AT:
                    assert n2.process is not None
                    n2.process.send_signal(signal.SIGSTOP)
                else:
                    n2.kill()
                    members["n2"].move(n1.port)
        eventually(lambda: publisher.acknowledged() == 2 * COUNT, "every acknowledgement",
                   DELIVERY_WAIT)
        acked = publisher.acked[1] | publisher.acked[2]

        def group_counts() -> Counter[int]:
            return members["n2"].counts() + members["n3"].counts()

        deadline = time.monotonic() + DELIVERY_WAIT
        while not acked <= set(group_counts()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a late second copy would show now
        counts = group_counts()
        lost = sorted(acked - set(counts))
        assert lost == [], (
            f"acknowledged but never delivered to the group: {len(lost)} "
            f"(QoS 1 {sum(n < COUNT for n in lost)}, QoS 2 {sum(n >= COUNT for n in lost)}) "
            f"{lost[:20]}\n{cluster.logs()}")
        twice = {node: sorted(n for n, seen in member.counts().items() if n >= COUNT and seen > 1)
                 for node, member in members.items()}
        assert twice == {"n2": [], "n3": []}, f"QoS 2 delivered twice to one member: {twice}"
        both = sorted(n for n, seen in counts.items() if n >= COUNT and seen > 1)
        assert both == [], f"QoS 2 delivered to two members: {len(both)} {both[:20]}"
    finally:
        publisher.stop()
        if not n2.running:
            n2.start()
        for member in members.values():
            member.end(n3.port)
