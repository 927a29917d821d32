"""Where the oracle places its clients on a cluster, and when a client waits (``oracle/nodes.py``).

Pure: no broker. The run against the real cluster is ``test_check_cluster.py``.
"""

from __future__ import annotations

import itertools
import time

import pytest

from mqttref.oracle.nodes import Nodes

THREE = (("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3))


def placed(nodes: Nodes, count: int) -> list[int]:
    return [nodes.take_turn() for _ in range(count)]


def test_successive_connections_take_the_nodes_in_turn() -> None:
    nodes = Nodes(THREE)
    nodes.restart(seed=7, name="a_check")
    order = placed(nodes, 6)
    assert order[:3] == order[3:]
    assert sorted(order[:3]) == [0, 1, 2]
    assert all(a != b for a, b in itertools.pairwise(order))


def test_a_check_is_placed_the_same_way_again_from_the_seed_and_its_name() -> None:
    first, again = Nodes(THREE), Nodes(THREE)
    first.restart(seed=7, name="a_check")
    placed(first, 5)
    first.restart(seed=7, name="a_check")
    again.restart(seed=7, name="a_check")
    assert placed(first, 4) == placed(again, 4)
    starts = set()
    for name in ("one", "two", "three", "four", "five", "six"):
        first.restart(seed=7, name=name)
        starts.add(first.take_turn())
    assert len(starts) > 1  # the first node of a check is drawn, not always node 1


def test_a_client_id_connecting_again_goes_to_another_node_than_its_last_connection() -> None:
    nodes = Nodes(THREE)
    nodes.restart(seed=1, name="takeover")
    first = nodes.for_client("c1", nodes.take_turn())
    nodes.take_turn()
    nodes.take_turn()  # two others connected meanwhile: the turn is back on c1's node
    again = nodes.for_client("c1", nodes.take_turn())
    assert again != first
    third = nodes.for_client("c1", again)
    assert third != again


def test_two_nodes_alternate_for_a_client_id_connecting_again() -> None:
    nodes = Nodes(THREE[:2])
    nodes.restart(seed=3, name="x")
    seen = [nodes.for_client("c", nodes.take_turn())]
    for _ in range(4):
        nodes.take_turn()  # a publisher in between
        seen.append(nodes.for_client("c", nodes.take_turn()))
    assert all(a != b for a, b in itertools.pairwise(seen))


def test_an_empty_client_id_is_a_new_client_each_time_and_stays_where_it_was_opened() -> None:
    nodes = Nodes(THREE)
    assert nodes.for_client("", 2) == 2
    assert nodes.for_client("", 2) == 2


def test_after_a_change_a_client_on_another_node_waits_the_allowance_and_one_on_its_node_not(
        ) -> None:
    nodes = Nodes(THREE, propagation=0.2)
    nodes.changed(0)
    assert nodes.wait_before(0) == 0.0
    assert 0.1 < nodes.wait_before(1) <= 0.2
    time.sleep(0.2)
    assert nodes.wait_before(1) == 0.0


def test_a_change_on_a_clients_own_node_does_not_end_the_allowance_of_another_nodes(
        ) -> None:
    """A SUBACK on n1, then a CONNACK of a persistent session on n2: a client on n2 still
    waits for n1's SUBACK to be known there. (Only the last change was remembered, so a
    publisher on n2 acted at once and its message could miss the subscription on n1:
    the exploration saw it as a later message overtaking a lost one [MQTT-4.6.0-6].)"""
    nodes = Nodes(THREE, propagation=0.2)
    nodes.changed(0)
    time.sleep(0.05)
    nodes.changed(1)
    assert 0.05 < nodes.wait_before(1) <= 0.15
    assert 0.1 < nodes.wait_before(2) <= 0.2  # n2's change, the later one
    assert 0.1 < nodes.wait_before(0) <= 0.2
    time.sleep(0.2)
    assert nodes.wait_before(0) == nodes.wait_before(1) == nodes.wait_before(2) == 0.0
    nodes.changed(2)
    nodes.restart(seed=1, name="next check")
    assert nodes.wait_before(0) == 0.0


@pytest.mark.parametrize("propagation", [0.0, 0.5])
def test_one_node_is_no_cluster_nothing_waits_and_every_connection_goes_to_it(
        propagation: float) -> None:
    nodes = Nodes(THREE[:1], propagation=propagation)
    assert not nodes.clustered
    nodes.restart(seed=5, name="c")
    nodes.changed(0)
    assert nodes.wait_before(0) == 0.0
    assert placed(nodes, 3) == [0, 0, 0]
    assert nodes.for_client("c", 0) == 0
    assert nodes.for_client("c", 0) == 0
    assert nodes.describe() == "127.0.0.1:1"


def test_a_broker_without_nodes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        Nodes(())
