"""``mqttref check --protocol 5`` against mqttools 0.50.0, a second 5.0 broker written by others.

mqttools (PyPI, asyncio) speaks MQTT 5.0 only; its CONNACK declares Maximum QoS 0 and
Wildcard and Shared Subscriptions unavailable, so the oracle's client keeps to QoS 0 and
every statement that needs more is NOT APPLICABLE with that declaration named. The suite
alone (``--no-exploration``) must fail exactly what ``expected/mqttools-0.50.0-v5.json``
records, each failure written up in docs/spec/findings.md ("mqttools 0.50.0 at MQTT 5.0"):
a new failure is a change of the broker or an oracle bug, a vanished one likewise.

Most of its deviations leave a connection open that the server must close, so the run
spends its time waiting for closes that never come (the reply bound, or ``Timing.close_lag``
after the server's own DISCONNECT): about two minutes, the whole suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.conftest import mqttools_version

pytestmark = [pytest.mark.external, pytest.mark.slow]

EXPECTED = Path(__file__).parent / "expected"
RECORDING = EXPECTED / "mqttools-0.50.0-v5.json"
FINDINGS = Path(__file__).resolve().parents[2] / "docs" / "spec" / "findings.md"
SECTION = "## mqttools 0.50.0 at MQTT 5.0"

BUDGET = 240
"""Above the ~130 s the whole suite takes against mqttools, so that a slow machine never cuts
it short (a check the budget leaves out would show as NOT RUN, not as the broker's verdict)."""


def _reason(text: str) -> str:
    """A reason without the run's random topic token (some choices name the topic)."""
    return re.sub(r"mqttref-check/[0-9a-f]+/", "mqttref-check/<token>/", text)


def _verdicts(data: dict[str, object]) -> dict[str, dict[str, object]]:
    """The run's report in the recording's form: failing statement -> its failing checks,
    NOT APPLICABLE statement -> the choice, NOT RUN statement a check covers -> why."""
    statements = data["statements"]
    assert isinstance(statements, list)
    return {
        "failing": {s["id"]: sorted(f["check"] for f in s["failures"])
                    for s in statements if s["verdict"] == "FAIL"},
        "not_applicable": {s["id"]: _reason(s["reason"]) for s in statements
                           if s["verdict"] == "NOT APPLICABLE"},
        "not_run": {s["id"]: _reason(s["reason"]) for s in statements
                    if s["verdict"] == "NOT RUN" and s["checks"]},
    }


def _without(verdicts: dict[str, object], ids: set[str]) -> dict[str, object]:
    return {k: v for k, v in verdicts.items() if k not in ids}


def test_mqttools_fails_exactly_the_recorded_5_0_statements(mqttools: int,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    done = subprocess.run(
        [sys.executable, "-m", "mqttref", "check", "--broker", f"127.0.0.1:{mqttools}",
         "--protocol", "5", "--seed", "11", "--no-exploration", "--budget", str(BUDGET),
         "--json", str(out)],
        capture_output=True, text=True, timeout=BUDGET + 60, check=False,
    )
    assert out.exists(), f"no report (exit {done.returncode})\n{done.stdout}\n{done.stderr}"
    data = json.loads(out.read_text("utf-8"))
    found = _verdicts(data)
    recorded = json.loads(RECORDING.read_text("utf-8"))
    assert data["protocol"] == "5.0"
    assert data["profile"]["maximum_qos"] == 0, data["profile"]
    if mqttools_version() == recorded["version"]:
        # Statements whose verdict races (each with its reason in the recording) may go
        # either way; every other verdict must be the recorded one.
        racy = set(recorded.get("intermittent", {}))
        for key in ("failing", "not_applicable", "not_run"):
            assert _without(found[key], racy) == _without(recorded[key], racy), (
                f"{key} differs from {RECORDING.name}\n{done.stdout}")
    else:  # another version: its verdicts are for a reader, the recording is 0.50.0's
        print(f"mqttools {mqttools_version()}: {found}, recorded {recorded}")
    assert data["full_run_seconds"] is None, "the budget cut the suite short"
    assert data["summary"]["oracle_errors"] == 0, done.stdout
    assert done.returncode == (1 if found["failing"] else 0), done.stdout
    section = FINDINGS.read_text("utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    for sid in recorded["failing"]:
        assert sid in section, f"{sid} fails against mqttools but is not written up"
