"""What the cluster costs per message: broker CPU-seconds, one node against two (issue 19).

    .venv/bin/python bench/cluster.py               # 3 rounds of 20,000 messages per setup
    .venv/bin/python bench/cluster.py --quick       # a smoke run, not figures
    .venv/bin/python bench/cluster.py --rounds 5 --messages 50000 --qos 0

Two setups, taking turns so that machine noise falls on both:

* ``single``: one ``mqttref broker --memory`` (no cluster), mosquitto_sub and mosquitto_pub
  on it;
* ``cluster``: nats-server with JetStream and two ``mqttref broker --memory --cluster``
  nodes, mosquitto_sub on n2 and mosquitto_pub on n1, so every message crosses NATS.

mosquitto_pub ``-l`` sends one message per line of its input (64-byte payloads, one topic);
mosquitto_sub ``-C N`` exits when it has them all. The figure is the CPU time (user + system,
from ``/proc/PID/stat``) the broker processes spent between the first message sent and the
last one received, divided by the messages: for the cluster, both nodes together, and
nats-server's apart. The clients' own CPU is not counted. Exit status 0 when every message
arrived, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"
TICKS = os.sysconf("SC_CLK_TCK")
PAYLOAD = "x" * 64
TOPIC = "bench/cluster"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def process(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def node_command(port: int, nats_url: str | None, name: str) -> list[str]:
    command = [sys.executable, "-m", "mqttref", "broker", "--memory", "-p", str(port),
               "--max-queued", "1000000"]  # the subscriber may fall behind: nothing dropped
    if nats_url is not None:
        command += ["--cluster", nats_url, "--node-name", name]
    return command


def send(pub_port: int, sub_port: int, messages: int, qos: int, *,
         brokers: list[int], others: list[int]) -> tuple[list[float], float, bool]:
    """Publish ``messages`` on one port, receive them on another; the CPU seconds each of
    the ``brokers`` and the ``others`` together spent meanwhile, and whether all arrived."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(sub_port), "-t", TOPIC,
                            "-q", str(qos), "-C", str(messages), "-W", "120"],
                           stdout=subprocess.DEVNULL)
    time.sleep(1.5)  # the subscription, and on a cluster its NATS interest, in place
    before = [cpu_seconds(pid) for pid in brokers], [cpu_seconds(pid) for pid in others]
    lines = (PAYLOAD + "\n") * messages
    subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(pub_port), "-t", TOPIC, "-q",
                    str(qos), "-l"], input=lines.encode(), check=True, timeout=600)
    complete = sub.wait(600) == 0
    broker_cpu = [cpu_seconds(pid) - was for pid, was in zip(brokers, before[0], strict=True)]
    other_cpu = sum(cpu_seconds(pid) for pid in others) - sum(before[1])
    return broker_cpu, other_cpu, complete


def single(messages: int, qos: int, work: Path) -> tuple[list[float], float, bool]:
    port = free_port()
    with process(node_command(port, None, "single"), port, work / "single.log") as broker:
        return send(port, port, messages, qos, brokers=[broker.pid], others=[])


def cluster(messages: int, qos: int, work: Path) -> tuple[list[float], float, bool]:
    nats_port, p1, p2 = free_port(), free_port(), free_port()
    store = Path(tempfile.mkdtemp(dir=work))
    url = f"nats://{HOST}:{nats_port}"
    with (process(["nats-server", "-js", "-a", HOST, "-p", str(nats_port), "-sd", str(store)],
                  nats_port, work / "nats.log") as nats,
          process(node_command(p1, url, "n1"), p1, work / "n1.log") as n1,
          process(node_command(p2, url, "n2"), p2, work / "n2.log") as n2):
        return send(p1, p2, messages, qos, brokers=[n1.pid, n2.pid], others=[nats.pid])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=None,
                        help="messages per run (default 20,000; 1,000 with --quick)")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    for tool in ("nats-server", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            print(f"bench/cluster.py: {tool} is not installed", file=sys.stderr)
            return 1
    messages = args.messages or (1000 if args.quick else 20_000)
    rounds = 1 if args.quick else args.rounds
    results: dict[str, list[tuple[list[float], float]]] = {"single": [], "cluster": []}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for round_ in range(rounds):
            for name, setup in (("single", single), ("cluster", cluster)):
                broker_cpu, other_cpu, complete = setup(messages, args.qos, work)
                ok = ok and complete
                results[name].append((broker_cpu, other_cpu))
                nodes = " + ".join(f"{cpu / messages * 1e6:.1f}" for cpu in broker_cpu)
                print(f"round {round_ + 1} {name:8} broker {sum(broker_cpu) / messages * 1e6:7.1f}"
                      f" us/msg ({nodes})  nats-server {other_cpu / messages * 1e6:6.1f} us/msg"
                      f"{'' if complete else '  (messages missing)'}", flush=True)
    print(f"\n{messages} QoS {args.qos} messages of {len(PAYLOAD)} bytes per run, "
          f"median of {rounds}:")
    medians = {name: (statistics.median(sum(b) for b, _ in runs) / messages,
                      statistics.median(o for _, o in runs) / messages)
               for name, runs in results.items()}
    for name, (broker, other) in medians.items():
        per_node = [statistics.median(b[i] for b, _ in results[name]) / messages * 1e6
                    for i in range(len(results[name][0][0]))]
        print(f"  {name:8} broker CPU {broker * 1e6:7.1f} us/msg (per node, publisher's "
              f"first: {', '.join(f'{n:.1f}' for n in per_node)}), nats-server "
              f"{other * 1e6:6.1f} us/msg")
    single_cpu = medians["single"][0]
    if single_cpu > 0:
        print(f"  cluster / single (brokers only): {medians['cluster'][0] / single_cpu:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
