"""``mqttref check`` judges the three-node cluster as one broker, and it passes.

The oracle spreads its clients over the nodes (``oracle/nodes.py``): a check's
publisher and subscriber on different nodes, a takeover or a resumed session on
another node than the first connection. The full suite at both levels takes about
130 s on this machine (``scripts/check-cluster``, figures in docs/cluster.md); CI
runs the checks below, the ones whose clients cross nodes for what the cluster
shares: sessions resumed and taken over elsewhere, retained messages, wills,
order, shared subscriptions, and the two checks that FAIL when the oracle gives the
cluster no propagation allowance (``retained_delivery_capped_by_granted_qos``,
``session_lasts_with_connection``: measured with ``--propagation 0``). Then one
short round of the model exploration over the nodes.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mqttref.oracle.nodes import Nodes, use
from mqttref.oracle.runner import select
from mqttref.oracle.stateful.explore import explore
from tests.cluster.conftest import Cluster
from tests.helpers.peers import HOST, free_port

CHECKS = {
    "3.1.1": ("takeover_closes_existing", "persistent_session_queues_messages",
              "redelivery_on_reconnect", "pubrel_resent_on_reconnect",
              "retained_delivery_capped_by_granted_qos", "retained_outlives_session",
              "session_lasts_with_connection", "will_published_on_abrupt_close",
              "ordered_topic_qos1"),
    "5": ("retained_messages_v5", "shared_subscription_v5", "resend_on_reconnect_v5",
          "will_in_session_state_v5", "client_identifier_names_the_session_v5",
          "ordered_per_qos_v5", "subscription_identifiers_v5"),
}
"""Checks whose clients cross nodes for what the cluster shares (about 22 s)."""

VERDICT = re.compile(r"^(PASS|FAIL|NOT APPLICABLE|NOT RUN|NOT TESTABLE) +(MQTT-[0-9.]+-[0-9]+)\b")


def addresses(cluster: Cluster) -> list[str]:
    return [f"{HOST}:{node.port}" for node in cluster.nodes]


def check_cluster(cluster: Cluster, protocol: str) -> subprocess.CompletedProcess[str]:
    brokers = [arg for address in addresses(cluster) for arg in ("--broker", address)]
    return subprocess.run(
        [sys.executable, "-m", "mqttref", "check", *brokers, "--protocol", protocol,
         "--seed", "19", "--only", *CHECKS[protocol]],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_check_judges_the_three_nodes_as_one_broker_and_every_cited_statement_passes(
        cluster: Cluster, protocol: str) -> None:
    result = check_cluster(cluster, protocol)
    assert result.returncode == 0, result.stdout + result.stderr + cluster.logs()
    lines = result.stdout.strip().splitlines()
    level = "5.0" if protocol == "5" else protocol
    assert lines[0].startswith(f"mqttref check: MQTT {level} broker at 3 nodes"
                               f" ({', '.join(addresses(cluster))})"), lines[0]
    verdicts = {m.group(2): m.group(1) for m in map(VERDICT.match, lines) if m}
    cited = {sid for check in select(CHECKS[protocol], level) for sid in check.ids}
    assert cited <= verdicts.keys()
    assert "FAIL" not in verdicts.values(), result.stdout
    not_passed = {sid: verdicts[sid] for sid in cited if verdicts[sid] != "PASS"}
    # The only verdicts other than PASS the mqttref cluster earns here are its choices.
    assert set(not_passed.values()) <= {"NOT APPLICABLE"}, not_passed
    passed = sum(v == "PASS" for v in verdicts.values())
    assert passed >= len(cited) - len(not_passed)
    assert lines[-1] == f"{passed} checked, {passed} passed, 0 failed"


def test_a_node_that_does_not_answer_is_named_and_nothing_is_judged(cluster: Cluster) -> None:
    """Every node must answer a CONNECT before the run: a cluster judged on the nodes
    that happen to be up would be judged on less than it was asked."""
    missing = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "mqttref", "check", "--broker", addresses(cluster)[0],
         "--broker", f"{HOST}:{missing}", "--protocol", "3.1.1", "--only", "MQTT-3.1.0-2"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"mqttref check: cannot connect to {HOST}:{missing}")


def test_the_model_exploration_spread_over_the_nodes_finds_no_deviation(
        cluster: Cluster) -> None:
    """One short round of the 3.1.1 machine, its slots placed on the nodes in turn."""
    nodes = Nodes(tuple((HOST, node.port) for node in cluster.nodes), propagation=0.2)
    with use(nodes):
        outcome = explore(HOST, cluster.nodes[0].port, budget=20.0, seed=19, examples=2,
                          steps=15, min_round=1.0)
    assert outcome.ran, outcome.note
    assert all(nodes.turns), nodes.turns  # every node had clients
    assert outcome.failures == (), outcome.failures
    assert outcome.covered
