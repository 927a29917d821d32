"""One oracle run against one target: reachability, the suite, the exploration, the report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from mqttref.impl.oracle.exploration import (
    ExplorationOutcome,
    load_explorer,
    not_available,
)
from mqttref.impl.oracle.flows import first_packet_is_connack
from mqttref.impl.oracle.probe import Deviation, Probe, Timing, Trace
from mqttref.impl.oracle.report import Report
from mqttref.impl.oracle.runner import judge, run_suite, select
from mqttref.impl.oracle.scenario import V311
from mqttref.impl.packets import Connect, Disconnect

MIN_EXPLORATION = 10.0
"""Seconds the exploration needs at least to be worth starting."""


class Unreachable(Exception):
    """The target does not accept TCP connections or does not answer CONNECT."""


async def ensure_reachable(host: str, port: int, timing: Timing) -> None:
    """Connect once and get a CONNACK, or raise ``Unreachable`` with one clear line."""
    try:
        probe = await Probe.open("hello", host, port, Trace(), timing)
    except (OSError, TimeoutError) as exc:
        raise Unreachable(f"cannot connect to {host}:{port}: {exc or type(exc).__name__}") from exc
    try:
        await probe.send(Connect(V311, "mqttrefhello", True, 60))
        connack = await first_packet_is_connack(probe)
        await probe.send(Disconnect())
    except (Deviation, OSError) as exc:
        raise Unreachable(f"{host}:{port} does not answer CONNECT like an MQTT broker: {exc}") \
            from exc
    finally:
        await probe.close()
    if connack.return_code != 0:
        raise Unreachable(f"{host}:{port} refuses a plain CONNECT (return code"
                          f" 0x{connack.return_code:02X}); the oracle needs anonymous access")


def evaluate(
    host: str,
    port: int,
    *,
    protocol: str = "3.1.1",
    only: Sequence[str] | None = None,
    budget: float = 150.0,
    seed: int = 0,
    timing: Timing | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    explore: bool = True,
) -> Report:
    """Run the suite, then the exploration with what is left of ``budget``."""
    timing = timing or Timing()
    start = time.monotonic()
    asyncio.run(ensure_reachable(host, port, timing))
    results = asyncio.run(run_suite(host, port, select(only), budget=budget, timing=timing,
                                    seed=seed, progress=progress))
    remaining = budget - (time.monotonic() - start)
    if only:
        exploration = ExplorationOutcome(False, "model exploration not run (--only selects"
                                         " suite checks)")
    elif not explore:
        exploration = ExplorationOutcome(False, "model exploration not run (--no-exploration)")
    else:
        exploration = _explore(host, port, remaining, seed)
    verdicts = judge(results, exploration, only, protocol)
    return Report(f"{host}:{port}", protocol, seed, time.monotonic() - start, tuple(verdicts),
                  tuple(results), exploration)


def _explore(host: str, port: int, remaining: float, seed: int) -> ExplorationOutcome:
    explorer = load_explorer()
    if isinstance(explorer, str):
        return not_available(reason=explorer)
    if remaining < MIN_EXPLORATION:
        return ExplorationOutcome(False, f"model exploration not run: {remaining:.0f}s of budget"
                                  " left after the suite")
    return explorer(host, port, budget=remaining, seed=seed)
