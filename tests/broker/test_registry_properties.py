"""Registry routing under any sequence of subscribe, unsubscribe, publish and crash.

Judged by a plain reading of 4.7 and 3.3.5: a client receives a message once
if any of its filters matches the topic, at the lower of the message's QoS
and the highest QoS granted among its matching filters, and retained
messages come back on subscription. The registry's caches (topic servers,
the filter index, idle removal, sweeps, crash rebuilds) must never show.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mqttref.impl.codec.packets import Publish, QoS
from tests.broker.test_matching import naive_matches
from tests.broker.test_registry import World

CLIENTS = ["a", "b", "c"]
names = st.sampled_from(["x/y", "x", "$s/y", "w/x/y"])
filters = st.sampled_from(["x/y", "x/+", "x/#", "#", "+/y", "$s/#", "+"])
qoses = st.sampled_from(QoS)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("subscribe"), st.sampled_from(CLIENTS), filters, qoses),
        st.tuples(st.just("unsubscribe"), st.sampled_from(CLIENTS), filters, qoses),
        st.tuples(st.just("publish"), names, qoses, st.booleans()),
        st.tuples(st.just("crash"), names, qoses, st.booleans()),
        st.tuples(st.just("sweep"), names, qoses, st.booleans()),
    ),
    max_size=25,
)


@settings(max_examples=max(300, settings().max_examples))
@given(steps)
@example(  # unsubscribing one of two overlapping filters keeps the other's delivery
    [
        ("subscribe", "a", "x/#", QoS.AT_MOST_ONCE),
        ("subscribe", "a", "x/y", QoS.AT_LEAST_ONCE),
        ("publish", "x/y", QoS.AT_LEAST_ONCE, False),
        ("unsubscribe", "a", "x/y", QoS.AT_MOST_ONCE),
        ("publish", "x/y", QoS.AT_LEAST_ONCE, False),
    ]
)
def test_routing_agrees_with_the_plain_reading_of_the_specification(
    ops: list[tuple[object, ...]],
) -> None:
    world = World()
    sessions = {client: world.client(client) for client in CLIENTS}
    subscribed: dict[str, dict[str, QoS]] = {client: {} for client in CLIENTS}
    retained: dict[str, bytes] = {}
    counter = 0
    for op in ops:
        kind = op[0]
        if kind == "subscribe":
            _, client, topic_filter, qos = op
            assert isinstance(client, str)
            assert isinstance(topic_filter, str)
            assert isinstance(qos, QoS)
            world.registry.subscribe(sessions[client], topic_filter, qos)
            world.registry.send_retained(sessions[client], topic_filter, qos, 0.0)
            subscribed[client][topic_filter] = qos
            got = world.received(client)
            expected = sorted(payload for name, payload in retained.items()
                              if naive_matches(topic_filter, name))
            assert sorted(p.payload for p in got) == expected
            assert all(p.retain for p in got)
        elif kind == "unsubscribe":
            _, client, topic_filter, _qos = op
            assert isinstance(client, str)
            assert isinstance(topic_filter, str)
            world.registry.unsubscribe(sessions[client], topic_filter)
            subscribed[client].pop(topic_filter, None)
        elif kind == "publish":
            _, name, qos, retain = op
            assert isinstance(name, str)
            assert isinstance(qos, QoS)
            counter += 1
            payload = str(counter).encode()
            world.publish(name, payload, qos, retain=bool(retain))
            if retain:
                retained[name] = payload
            for client in CLIENTS:
                granted = [q for f, q in subscribed[client].items() if naive_matches(f, name)]
                got = world.received(client)
                if not granted:
                    assert got == []
                    continue
                assert got == [Publish(name, payload, min(qos, max(granted)), False, False,
                                       got[0].packet_id if got else None)]
                acknowledge_all(world, client, got)
        elif kind == "crash":
            world.registry.restart_topic(str(op[1]))
        elif kind == "sweep":
            world.registry._sweep_topic_servers()


def acknowledge_all(world: World, client: str, packets: list[Publish]) -> None:
    session = world.sessions[client]
    for packet in packets:
        if packet.packet_id is None:
            continue
        if packet.qos is QoS.AT_LEAST_ONCE:
            session.on_puback(packet.packet_id, 0.0)
        else:
            session.on_pubrec(packet.packet_id, 0.0)
            session.on_pubcomp(packet.packet_id, 0.0)
    world.sinks[client].take()
