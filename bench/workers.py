"""Run generator roles in parallel processes, start them together, and time the broker meanwhile.

``run_roles`` forks one process per role. Every role connects (and subscribes) first and reports
``ready``; only then does the parent read the broker's CPU counters and release all roles at once
through the ``go`` event, so set-up is never measured. The scenario ends when every role marked
``ends_scenario`` has reported its result; the parent reads the broker's counters again, raises
``stop`` for the roles that were only waiting (publishers stay connected until then), and
collects the rest. Any role that fails sends its traceback, which aborts the scenario loudly.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

from brokers import BrokerProcess
from clients import Role

SETUP_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
_FORK = multiprocessing.get_context("fork")


class ScenarioFailed(RuntimeError):
    """A generator process raised: the figures of this scenario would mean nothing."""


class _WorkerContext:
    def __init__(self, index: int, queue: Any, stop: Event) -> None:
        self.index, self.queue, self.stop = index, queue, stop

    def stopped(self) -> bool:
        return self.stop.is_set()

    def wait_stop(self, timeout: float) -> bool:
        return self.stop.wait(timeout)

    def report(self, kind: str, value: Any) -> None:
        self.queue.put((kind, self.index, value))


def _worker(role: Role, index: int, queue: Any, go: Event, stop: Event) -> None:
    try:
        role.setup()
        queue.put(("ready", index, None))
        if not go.wait(SETUP_TIMEOUT_S + role.deadline_s):
            raise TimeoutError("never released by the parent")
        if stop.is_set():
            return
        cpu = time.process_time()
        result = role.run(_WorkerContext(index, queue, stop))
        result["gen_cpu_s"] = time.process_time() - cpu
        queue.put(("done", index, result))
    except BaseException:
        queue.put(("error", index, f"{type(role).__name__}: {traceback.format_exc()}"))
    finally:
        role.close()


@dataclass
class Measured:
    """What one scenario run yields: the roles' results and the broker's side of the clock."""

    results: list[dict[str, Any]]
    t_go: float
    t_end: float
    broker_cpu_s: float
    notes: dict[str, Any] = field(default_factory=dict)


Hook = Callable[[str, Any, BrokerProcess, Event, dict[str, Any]], None]


def run_roles(roles: list[Role], broker: BrokerProcess, on_report: Hook | None = None) -> Measured:
    """Run ``roles`` against ``broker``; ``on_report`` sees ``ctx.report`` messages as they come."""
    queue: Any = _FORK.Queue()
    go, stop = _FORK.Event(), _FORK.Event()
    procs = [
        _FORK.Process(target=_worker, args=(role, i, queue, go, stop), daemon=True)
        for i, role in enumerate(roles)
    ]
    for proc in procs:
        proc.start()
    notes: dict[str, Any] = {}
    results: dict[int, dict[str, Any]] = {}
    try:
        _wait_ready(queue, len(roles))
        cpu = broker.cpu_seconds()
        t_go = time.monotonic()
        go.set()
        enders = {i for i, role in enumerate(roles) if role.ends_scenario}
        limit = max(role.deadline_s for role in roles) + DRAIN_TIMEOUT_S
        while enders:
            kind, index, value = _next(queue, t_go + limit, "results")
            if kind == "done":
                results[index] = value
                enders.discard(index)
            elif on_report is not None:
                on_report(kind, value, broker, stop, notes)
        broker_cpu = broker.cpu_seconds() - cpu
        t_end = time.monotonic()
        stop.set()
        while len(results) < len(roles):
            kind, index, value = _next(queue, time.monotonic() + DRAIN_TIMEOUT_S, "late results")
            if kind == "done":
                results[index] = value
    finally:
        stop.set()
        go.set()
        for proc in procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)
    return Measured([results[i] for i in range(len(roles))], t_go, t_end, broker_cpu, notes)


def _wait_ready(queue: Any, count: int) -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    ready = 0
    while ready < count:
        kind, _, _ = _next(queue, deadline, "set-up")
        if kind == "ready":
            ready += 1


def _next(queue: Any, deadline: float, phase: str) -> tuple[str, int, Any]:
    try:
        kind, index, value = queue.get(timeout=max(0.1, deadline - time.monotonic()))
    except queue_module.Empty:
        raise ScenarioFailed(
            f"generator processes silent past the deadline during {phase}"
        ) from None
    if kind == "error":
        raise ScenarioFailed(value)
    return kind, index, value
