"""The oracle against our own broker (in-process): every check passes."""

from __future__ import annotations

import io

import pytest

from mqttref.impl.config import Config
from mqttref.impl.oracle.report import write_text
from mqttref.impl.oracle.runner import Verdict
from mqttref.impl.oracle.target import evaluate
from tests.helpers.broker_thread import BrokerThread

pytestmark = pytest.mark.slow


def test_mqttref_broker_passes_every_check_of_the_conformance_suite() -> None:
    with BrokerThread(Config(port=0)) as running:
        report = evaluate(running.host, running.port, seed=6, budget=170.0, explore=False)
    text = io.StringIO()
    write_text(report, text)
    assert not report.failed, text.getvalue()
    assert report.count(Verdict.NOT_RUN) == 0, text.getvalue()
    assert report.count(Verdict.PASS) == 115


def test_mqttref_check_with_the_model_exploration_passes_the_mqttref_broker() -> None:
    """Suite plus the exploration of tests/stateful (through the hook), within the budget."""
    with BrokerThread(Config(port=0)) as running:
        report = evaluate(running.host, running.port, seed=8, budget=75.0)
    text = io.StringIO()
    write_text(report, text)
    assert report.exploration.ran, report.exploration.note
    assert report.exploration.covered
    assert not report.failed, text.getvalue()
