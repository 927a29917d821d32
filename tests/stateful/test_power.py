"""The oracle's power on a fixed sample of faults: each declared statement FAILs, none PASSes.

``scripts/oracle-power`` runs the whole corpus (``docs/spec/oracle-power.md`` has its
figures); CI runs this sample, drawn from every part of the broker and both kinds
of wire fault, with the suite alone: the exploration's budget would multiply the
time, and the suite is what states a verdict per statement. Each fault runs in a
process of its own (a fault patches classes for the whole process), three at a
time, since they mostly wait on sockets.
"""

from __future__ import annotations

import pytest

from tests.stateful.oracle_faults import ORACLE_FAULTS
from tests.stateful.power import PowerRow, run_many
from tests.stateful.power import covered_statements as _covered

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
"""The sample's fixture runs every fault (about six minutes on 2 cores): past the
default per-test timeout, which counts the fixture's setup."""

SAMPLE = (
    "CONNACK not first",
    "drop a PUBACK",
    "no PINGRESP",
    "ignore a second CONNECT",
    "skip the will on keep-alive expiry",
    "SUBACK with another packet id",
    "SUBACK with a reserved return code",
    "no UNSUBACK",
    "QoS 0 delivered with DUP=1",
    "open after a refusing CONNACK",
    "PINGREQ with bad flags ignored",
    "U+0000 in a topic ignored",
    "packets before CONNECT ignored",
    "malformed CONNECT flags ignored",
    "protocol level 7 accepted",
)
"""At least 15 faults, across the connection, session, topic server and the wire."""


@pytest.fixture(scope="module")
def rows() -> dict[str, PowerRow]:
    found = run_many(SAMPLE, seed=1, budget=240.0, explore=False, jobs=3)
    return {row.fault: row for row in found}


def test_the_sample_names_existing_faults() -> None:
    names = {fault.name for fault in ORACLE_FAULTS}
    assert len(SAMPLE) >= 15
    assert set(SAMPLE) <= names, sorted(set(SAMPLE) - names)


@pytest.mark.parametrize("name", SAMPLE)
def test_the_oracle_fails_every_statement_the_fault_breaks_and_passes_none(
    rows: dict[str, PowerRow], name: str,
) -> None:
    row = rows[name]
    assert not row.error, row.error
    assert not row.missed, f"{name}: declared {row.declared}, FAIL {row.failed}"
    assert not row.passed_broken, row.passed_broken
    assert not row.false_alarms, f"{name}: FAIL outside the declared set: {row.false_alarms}"


def test_every_testable_server_statement_has_a_fault_that_breaks_it() -> None:
    covered, uncovered = _covered()
    assert not uncovered, f"{len(covered)} covered; no fault breaks {uncovered}"
