"""The conformance oracle against the broker with the SQLite store: the disk changes no verdict.

The same suite as tests/conformance/test_against_mqttref_broker.py runs against the
memory store; here every persistent session, queue, in-flight message and retained
message it creates goes through the database.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mqttref.impl.broker.config import Config
from mqttref.oracle.report import write_text
from mqttref.oracle.runner import Verdict
from mqttref.oracle.target import evaluate
from tests.helpers.broker_thread import BrokerThread


@pytest.mark.slow
def test_the_broker_on_the_sqlite_store_passes_every_check_of_the_conformance_suite(
    tmp_path: Path,
) -> None:
    config = Config(port=0, store="sqlite", data_dir=str(tmp_path))
    with BrokerThread(config) as running:
        report = evaluate(running.host, running.port, seed=6, budget=170.0, explore=False)
        commits = running.call(lambda broker: getattr(broker.store, "commits", 0))
    text = io.StringIO()
    write_text(report, text)
    assert not report.failed, text.getvalue()
    assert report.count(Verdict.NOT_RUN) == 0, text.getvalue()
    assert commits > 0  # the suite really wrote through the store
