"""The 5.0 checks judged against the in-process mqttref broker, for the tests that inject
one fault and name the statements it must fail, and those it must leave passing.

One place for how such a run is made (seed 17, a 30 s budget, the suite only: these tests
judge a check, not the exploration) and for how its verdicts are compared, so that every
fault test reads as the fault and its expected verdicts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from mqttref.impl.broker.config import Config
from mqttref.oracle.connection import Connection
from mqttref.oracle.probe import Timing
from mqttref.oracle.report import Report, write_text
from mqttref.oracle.runner import Verdict
from mqttref.oracle.target import evaluate
from tests.helpers.broker_thread import BrokerThread


def report_text(report: Report) -> str:
    out = io.StringIO()
    write_text(report, out, verbose=True)
    return out.getvalue()


def judge5(config: Config, *names: str, timing: Timing | None = None,
           connection: Connection | None = None,
           denied_filters: tuple[str, ...] = ()) -> Report:
    """The report of the 5.0 checks ``names`` against an mqttref broker with ``config``;
    an oracle error fails the test (it is no verdict on the broker)."""
    with BrokerThread(config) as running:
        report = evaluate(running.host, running.port, protocol="5", only=names, seed=17,
                          budget=30.0, explore=False, timing=timing, connection=connection,
                          denied_filters=denied_filters)
    assert not report.oracle_errors, report_text(report)
    return report


def verdicts5(config: Config, *names: str, timing: Timing | None = None,
              connection: Connection | None = None) -> dict[str, Verdict]:
    """Statement id -> verdict of the 5.0 checks ``names`` (see ``judge5``)."""
    report = judge5(config, *names, timing=timing, connection=connection)
    return {v.statement.id: v.verdict for v in report.verdicts}


def assert_judged(verdicts: dict[str, Verdict], *, failed: Sequence[str],
                  passed: Sequence[str] = ()) -> None:
    """``failed`` FAIL and ``passed`` PASS: a fault is blamed on the statements it breaks,
    and not on the others its check judges."""
    expected = {**dict.fromkeys(failed, Verdict.FAIL), **dict.fromkeys(passed, Verdict.PASS)}
    assert {sid: verdicts[sid] for sid in expected} == expected
