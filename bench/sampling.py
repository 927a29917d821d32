"""Sample the broker with py-spy while a scenario runs, and say where its time went.

``bench/broker.py --profile DIR`` attaches ``py-spy record`` to each mqttref broker it starts.
Idle samples (waiting in the event loop's selector) are left out, as py-spy does by default.
Sampling pauses the broker for each sample: ``--nonblocking`` avoids that, but with uvloop it
returned torn stacks here (half of all QoS 1 samples on one ``transport.write`` line, while
``perf`` showed the time was spent in the interpreter), so the accurate mode is used.

For every scenario it writes the raw collapsed stacks (``DIR/SCENARIO.txt``, readable by flamegraph
tools and by speedscope) and prints the functions with the most samples: *self* (samples where the
function itself was running) and *total* (samples where it was anywhere on the stack). Figures of
a profiled run are slowed by the sampling and are not the benchmark's figures.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from brokers import REPO

RATE_HZ = 500


def py_spy() -> str | None:
    venv = REPO / ".venv" / "bin" / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


@dataclass
class Sampler:
    process: subprocess.Popen[bytes]
    output: Path

    def stop(self) -> None:
        """SIGINT makes py-spy write what it sampled; wait for it to finish writing."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def attach(pid: int, output: Path) -> Sampler:
    command = py_spy()
    if command is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    process = subprocess.Popen(
        [
            command,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE_HZ),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Sampler(process, output)


def _frames(stack: str) -> list[str]:
    """``fn (module.py:line)`` frames, outermost first, without the line numbers."""
    names = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        path = where.rsplit(":", 1)[0]
        names.append(f"{name} ({path.split('site-packages/')[-1]})")
    return names


def summarize(output: Path, top: int = 15) -> str:
    """The functions with the most self and total samples in a collapsed-stack file."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        names = _frames(stack)
        total += count
        own[names[-1]] += count
        for name in set(names):
            anywhere[name] += count
    if not total:
        return f"{output.name}: no samples"
    lines = [
        f"{output.name}: {total} samples at {RATE_HZ} Hz, idle excluded",
        "  self %  total %  function",
    ]
    for name, count in own.most_common(top):
        lines.append(f"  {100 * count / total:6.1f}  {100 * anywhere[name] / total:7.1f}  {name}")
    lines.append("  by total (inclusive):")
    for name, count in anywhere.most_common(top + 10):
        lines.append(f"  {100 * own[name] / total:6.1f}  {100 * count / total:7.1f}  {name}")
    return "\n".join(lines)
