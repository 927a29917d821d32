"""Hypothesis profiles, chosen with the environment variable MQTTREF_PROFILE.

- ``dev`` (default): quick local runs.
- ``ci``: bounded, deterministic; what ``.ci/run`` uses.
- ``thorough``: long runs for hunting rare interleavings.

And the ``requires_peer`` mark (``tests.helpers.peers``): a test needing a
program written by others is skipped without it, or fails when
``MQTTREF_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.peers import REQUIRE_PEERS, peers_required, require_peer

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("MQTTREF_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_peer(name, available, why): skip without the peer, or fail when"
        f" {REQUIRE_PEERS}=1 (tests.helpers.peers.requires_peer)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_peer"):
        require_peer(mark.kwargs["name"], mark.kwargs["available"], mark.kwargs["why"])


# A skip written without the helper (a plain skipif in a folder that does not use it yet)
# that says a peer is missing still fails under MQTTREF_REQUIRE_PEERS=1.
_PEER = re.compile(r"mosquitto|\bnode\b|\bnpm\b|aedes|graphviz|\bdot\b", re.IGNORECASE)
_MISSING = re.compile(r"not installed|missing|\bneeds?\b|needed|cannot install", re.IGNORECASE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not (report.skipped and peers_required()) or hasattr(report, "wasxfail"):
        return report
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if _PEER.search(reason) and _MISSING.search(reason):
        report.outcome = "failed"
        reason = reason.removeprefix("Skipped: ")
        report.longrepr = f"{reason} ({REQUIRE_PEERS}=1: CI must run this test, not skip it)"
    return report
