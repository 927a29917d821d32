"""bench/cluster.py works end to end: both setups start, every message arrives, the figures
print. Functional only; the figures themselves are in docs/cluster.md."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.cluster.conftest import require_nats_server
from tests.helpers.peers import require_peer

REPO = Path(__file__).resolve().parents[2]


def test_the_cluster_bench_runs_and_every_message_arrives() -> None:
    require_nats_server()
    require_peer("mosquitto_pub", shutil.which("mosquitto_pub") is not None,
                 "the bench publishes with mosquitto_pub")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "cluster.py"), "--quick",
                           "--messages", "300"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "messages missing" not in done.stdout
    # 300 messages may take less than one clock tick (10 ms) of CPU on the single node:
    # the figures are not judged here, only that both setups report
    assert "single   broker CPU" in done.stdout
    assert "cluster  broker CPU" in done.stdout
