"""The benchmark harness works end to end: it starts a broker, drives it, and counts every message.

Functional only: nothing here is timed. A harness that miscounted (a frame scanner that skipped
frames, a subscriber that stopped early, a publisher that sent too few) would report loss against
mosquitto, a broker known not to lose QoS 0 messages to a reading subscriber on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.peers import requires_peer

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = Path("/usr/sbin/mosquitto")

pytestmark = [
    pytest.mark.external,
    requires_peer("mosquitto", MOSQUITTO.exists(), "the benchmark runs mosquitto beside mqttref"),
]


def _bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "broker.py"),
            "--quick",
            "--json",
            str(report),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(report.read_text())


def test_quick_fanin_against_mosquitto_delivers_every_message(tmp_path: Path) -> None:
    done, report = _bench(tmp_path, "--broker", "mosquitto", "--scenario", "fanin")
    [outcome] = report["outcomes"]
    assert (outcome["scenario"], outcome["broker"]) == ("fanin", "mosquitto")
    assert outcome["expected"] == 4 * 2_000
    assert outcome["delivered"] == outcome["expected"]
    assert outcome["lost"] == 0
    assert outcome["broker_cpu_s"] >= 0
    assert report["errors"] == []
    assert "fanin" in done.stdout
    assert "8,000/8,000" in done.stdout


def test_quick_qos2_and_storm_against_mosquitto_complete_every_handshake(tmp_path: Path) -> None:
    _, report = _bench(tmp_path, "--broker", "mosquitto", "--scenario", "qos2,storm")
    by_scenario = {o["scenario"]: o for o in report["outcomes"]}
    assert by_scenario["qos2"]["delivered"] == by_scenario["qos2"]["expected"] == 1_000
    assert by_scenario["storm"]["delivered"] == by_scenario["storm"]["expected"] == 300


def test_unknown_scenario_is_refused_with_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "broker.py"), "--scenario", "nonesuch"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown scenario 'nonesuch'" in done.stderr
