"""The noisy-neighbour benchmark runs end to end and judges issue 20's targets at their thresholds.

Functional only: nothing here is timed. The smoke run checks that a run counts the good stream,
the adversary's traffic and the broker's log and memory; the verdict tests check the arithmetic of
the targets on made-up runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from noisy import Run, targets

REPO = Path(__file__).resolve().parents[2]


def _noisy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "noisy.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quick_garbage_run_on_mqttref_counts_stream_traffic_log_and_memory(tmp_path: Path) -> None:
    report = tmp_path / "noisy.json"
    done = _noisy(
        "--quick", "--broker", "mqttref", "--adversary", "garbage", "--seconds", "1",
        "--json", str(report),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(report.read_text())
    solo, noisy = figures["runs"]
    assert (solo["adversary"], noisy["adversary"]) == ("none", "garbage")
    assert solo["sent"] == noisy["sent"] == 50
    assert solo["received"] == solo["sent"]
    assert 0 < noisy["received"] <= noisy["sent"]
    assert solo["adversary_bytes"] == 0
    assert noisy["adversary_bytes"] == noisy["traffic"]["sent"] + noisy["traffic"]["received"]
    assert noisy["traffic"]["connections"] > 0
    assert noisy["peak_rss"] > 0
    assert 0 <= noisy["log_growth"] <= noisy["log_bytes"]
    [target] = figures["targets"]
    assert (target["broker"], target["adversary"]) == ("mqttref", "garbage")
    assert figures["errors"] == []
    assert "issue 20's targets" in done.stdout


def test_unknown_adversary_is_refused_with_exit_2() -> None:
    done = _noisy("--adversary", "nonesuch")
    assert done.returncode == 2
    assert "unknown adversary 'nonesuch'" in done.stderr


def _run(adversary: str, p99_ms: float, log_growth: int = 0, traffic: int = 0) -> Run:
    return Run(
        broker="mqttref",
        adversary=adversary,
        sent=500,
        received=500,
        duplicates=0,
        p50_ms=p99_ms / 2,
        p99_ms=p99_ms,
        max_ms=p99_ms,
        peak_rss=50 << 20,
        log_bytes=log_growth,
        log_growth=log_growth,
        adversary_bytes=traffic,
        traffic=None,
    )


def test_p99_target_holds_at_three_times_solo_and_under_ten_ms() -> None:
    [at, over, slow] = targets(
        [_run("none", 2.0), _run("noack", 6.0), _run("garbage", 6.1), _run("silent", 10.0)]
    )
    assert (at.p99_within_3x, at.p99_under_10ms) == (True, True)
    assert (over.p99_within_3x, over.p99_under_10ms) == (False, True)
    assert slow.p99_under_10ms is False


def test_log_target_allows_one_byte_per_ten_of_adversary_traffic() -> None:
    [within, beyond, silent] = targets(
        [
            _run("none", 1.0),
            _run("garbage", 1.0, log_growth=100, traffic=1_000),
            _run("noack", 1.0, log_growth=101, traffic=1_000),
            _run("silent", 1.0, log_growth=10, traffic=0),
        ]
    )
    assert within.log_bounded is True
    assert beyond.log_bounded is False
    assert silent.log_bounded is None  # no bytes to compare with: reported, not judged


def test_a_run_that_lost_messages_misses_the_target() -> None:
    lossy = _run("slowreader", 1.0)
    lossy.received = 499
    [target] = targets([_run("none", 1.0), lossy])
    assert target.nothing_lost is False
