"""The oracle's power on a fixed sample of faults: each declared statement FAILs, none PASSes.

``scripts/oracle-power`` runs the whole corpus (``docs/spec/oracle-power.md`` has its
figures); CI runs this sample, drawn from every part of the broker and both kinds
of wire fault, with the suite alone: the exploration's budget would multiply the
time, and the suite is what states a verdict per statement. Each fault runs in a
process of its own (a fault patches classes for the whole process), three at a
time, since they mostly wait on sockets.

The MQTT 5.0 sample (``SAMPLE5``, faults of ``oracle_faults5``) runs
``mqttref check --protocol 5`` the same way, each against a broker with the
settings its fault needs.
"""

from __future__ import annotations

import pytest

from tests.stateful.oracle_faults import ORACLE_FAULTS
from tests.stateful.oracle_faults5 import ORACLE_FAULTS5
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


SAMPLE5 = (
    "retain_always_published",
    "no_local_ignored",
    "expired_message_forwarded",
    "will_despite_return",
    "UNSUBACK reason codes reversed",
    "keep alive ignored",
)
"""Six 5.0 faults, one of each kind: session delivery and options, the queue, the wills,
the frames sent, the connection's timers (each run takes about 16 s, three at a time)."""


@pytest.fixture(scope="module")
def rows5() -> dict[str, PowerRow]:
    found = run_many(SAMPLE5, seed=1, budget=240.0, explore=False, jobs=3, protocol="5.0")
    return {row.fault: row for row in found}


def test_the_5_0_sample_names_existing_faults() -> None:
    assert set(SAMPLE5) <= {fault.name for fault in ORACLE_FAULTS5}


@pytest.mark.parametrize("name", SAMPLE5)
def test_at_5_0_the_oracle_fails_every_statement_the_fault_breaks_and_passes_none(
    rows5: dict[str, PowerRow], name: str,
) -> None:
    row = rows5[name]
    assert not row.error, row.error
    assert not row.missed, f"{name}: declared {row.declared}, FAIL {row.failed}"
    assert not row.passed_broken, row.passed_broken
    assert not row.false_alarms, f"{name}: FAIL outside the declared set: {row.false_alarms}"


NO_FAULT_YET_5: frozenset[str] = frozenset()
"""The 5.0 statements a check cites that no fault breaks yet: the power of those verdicts
is unmeasured, and docs/spec/oracle-power.md says so. Empty since issue 17 gave the last
twelve a fault (the enhanced-authentication ones run with a SCRAM-SHA-256 user); a new
check citing a statement no fault breaks must get one, not a place here."""


def test_every_statement_a_5_0_check_cites_has_a_fault_that_breaks_it() -> None:
    """Computed from the 5.0 registry: a new check citing a statement no fault of
    ``oracle_faults5`` breaks fails here until one does (its power is unmeasured), and a
    statement of ``NO_FAULT_YET_5`` that gains a fault must leave the list."""
    covered, uncovered = _covered(protocol="5.0")
    assert covered, "no 5.0 statement has a fault"
    assert set(uncovered) <= NO_FAULT_YET_5, (
        f"{len(covered)} covered; no fault breaks {sorted(set(uncovered) - NO_FAULT_YET_5)}")
    assert not NO_FAULT_YET_5 - set(uncovered), (
        f"now broken by a fault, remove from NO_FAULT_YET_5: "
        f"{sorted(NO_FAULT_YET_5 - set(uncovered))}")
