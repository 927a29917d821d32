"""One oracle run against one target: reachability, the suite, the exploration, the report."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import attrs

from mqttref.impl.codec.packets import Connect, Disconnect, ProtocolLevel
from mqttref.oracle.capabilities import (
    BrokerProfile,
    BrokerProfile5,
    learn_profile,
    learn_profile5,
)
from mqttref.oracle.connection import Connection, Credentials, current, use
from mqttref.oracle.evidence import Finding
from mqttref.oracle.exploration import (
    EXPLORERS,
    ExplorationOutcome,
    Explorer,
    load_explorer,
    not_available,
)
from mqttref.oracle.flows import first_packet_is_connack
from mqttref.oracle.nodes import DEFAULT_PROPAGATION, Nodes
from mqttref.oracle.nodes import new_check as nodes_new_check
from mqttref.oracle.nodes import use as use_nodes
from mqttref.oracle.probe import Deviation, Probe, Timing, Trace
from mqttref.oracle.report import Report
from mqttref.oracle.runner import CheckResult, Outcome, judge, run_suite, select
from mqttref.oracle.scenario import LEVELS, REGISTRIES

PROTOCOLS: dict[str, str] = {"3.1.1": "3.1.1", "5": "5.0", "5.0": "5.0"}
"""The spellings ``--protocol`` takes, and the statement list each names."""

NO_EXPLORATION_SECURED = ("model exploration not available over TLS/WebSocket/with credentials yet"
                          " (it opens anonymous TCP connections of its own): the suite only")

REFUSALS = {
    0x01: "unacceptable protocol version", 0x02: "identifier rejected",
    0x03: "server unavailable", 0x04: "bad user name or password", 0x05: "not authorized",
    0x84: "unsupported protocol version", 0x85: "client identifier not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable",
    0x8A: "banned", 0x8C: "bad authentication method",
}
"""CONNACK refusals by name (3.1.1 Table 3.1; 5.0 3.2.2.2), for the one line of an exit 2."""

ACCEPTS_CONNECT = {"3.1.1": "MQTT-3.1.4-4", "5.0": "MQTT-3.1.4-5"}
"""The statement a CONNACK to a valid CONNECT observes, in each protocol's numbering."""


def protocol_name(text: str) -> str:
    """``5`` and ``5.0`` -> ``5.0``; ``3.1.1`` -> ``3.1.1``; ``ValueError`` otherwise."""
    try:
        return PROTOCOLS[text.strip()]
    except KeyError:
        raise ValueError(f"no MQTT protocol {text!r} (choose 3.1.1 or 5)") from None

MIN_EXPLORATION = 10.0
"""Seconds the exploration needs at least to be worth starting."""

EXPLORATION_GRACE = 20.0
"""Seconds past its budget after which a running exploration is stopped."""


class Unreachable(Exception):
    """The target does not accept TCP connections or does not answer CONNECT."""


class Silent(Exception):
    """The target takes the TCP connection and a valid CONNECT, and answers nothing.

    That is an observation against [MQTT-3.1.4-4] (a valid CONNECT is acknowledged),
    and every other check would need the CONNACK first: the run reports that FAIL
    and blocks the rest, instead of refusing to judge.

    A valid CONNECT answered by an MQTT packet that no accepting server sends first (a
    DISCONNECT, a CONNACK with a reserved flag or a code of no table) is the same kind
    of observation, against the statements its deviation cites (``ids``).
    """

    def __init__(self, message: str, ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.ids = ids


ANSWERS_TO_CONNECT = frozenset({0x2, 0xE, 0xF})
"""CONNACK, DISCONNECT, AUTH: a first frame of one of these types comes from an MQTT
server, so what is wrong with it is that server's FAIL, not an unreachable target."""


async def ensure_reachable(host: str, port: int, timing: Timing,
                           level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1) -> None:
    """Connect once per user of the run and get CONNACK 0, or raise ``Unreachable``
    (``Silent`` when a valid CONNECT gets no answer at all) with one clear line."""
    for n, user in enumerate(current().users or (None,), start=1):
        await _hello(host, port, timing, level, user=user, n=n)


async def _hello(host: str, port: int, timing: Timing, level: ProtocolLevel, *,
                 user: Credentials | None, n: int) -> None:
    try:
        probe = await Probe.open("hello", host, port, Trace(), timing, level=level)
    except (OSError, TimeoutError) as exc:
        raise Unreachable(f"cannot connect to {host}:{port}"
                          f" ({current().describe_transport()}):"
                          f" {exc or type(exc).__name__}") from exc
    try:
        await probe.send(Connect(level, f"mqttrefhello{n}", True, 60,
                                 username=user.username if user else None,
                                 password=user.password if user else None))
        sid = ACCEPTS_CONNECT["5.0" if level is ProtocolLevel.MQTT_5 else "3.1.1"]
        connack = await first_packet_is_connack(probe, f"[{sid}]")
        await probe.send(Disconnect())
    except Deviation as exc:
        if probe.closed is None and "no CONNACK within" in str(exc):
            raise Silent(str(exc)) from exc
        if exc.ids and probe.frames and probe.frames[0][0] >> 4 in ANSWERS_TO_CONNECT:
            raise Silent(str(exc), exc.ids) from exc
        raise Unreachable(f"{host}:{port} does not answer CONNECT like an MQTT broker: {exc}") \
            from exc
    except OSError as exc:
        raise Unreachable(f"{host}:{port} does not answer CONNECT like an MQTT broker: {exc}") \
            from exc
    finally:
        await probe.close()
    code = connack.return_code
    if code == 0:
        return
    why = REFUSALS.get(code, "refused")
    if user is None:
        raise Unreachable(f"{host}:{port}: CONNECT refused: 0x{code:02X} {why} (anonymous);"
                          " the oracle needs a user the broker accepts: give -u/-P")
    option = "-u/-P" if n == 1 else "--user2/--password2"
    raise Unreachable(f"{host}:{port}: CONNECT refused: 0x{code:02X} {why} (user"
                      f" {user.username!r}); check {option}")


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
    probe_profile: bool = True,
    connection: Connection | None = None,
    denied_filters: Sequence[str] = (),
    other_nodes: Sequence[tuple[str, int]] = (),
    propagation: float = DEFAULT_PROPAGATION,
) -> Report:
    """Learn the broker profile, run the whole suite, then explore with what is left.

    The suite is the statement-by-statement part, so it runs to its end before
    the exploration takes any of the budget; when the budget cannot hold even
    the suite, the report says how long a full run needs.

    ``connection`` (transport, TLS, users) holds for every client of the run;
    without it, the one in force (``connection.current()``: plain TCP, anonymous).
    ``other_nodes``: the broker is a cluster of ``host:port`` and these nodes, judged
    as one broker; the clients are spread over the nodes and a client waits
    ``propagation`` seconds (times the timing's multiplier) after a change
    acknowledged on another node before it acts (``oracle.nodes``).
    """
    addresses = ((host, port), *other_nodes)
    nodes = Nodes(addresses, propagation * (timing or Timing()).multiplier)
    with use(connection if connection is not None else current()) as settings:
        return _evaluate(nodes, protocol=protocol, only=only, budget=budget, seed=seed,
                         timing=timing or Timing(), progress=progress, explore=explore,
                         probe_profile=probe_profile, connection=settings,
                         denied_filters=tuple(denied_filters))


def _evaluate(nodes: Nodes, *, protocol: str, only: Sequence[str] | None,
              budget: float, seed: int, timing: Timing,
              progress: Callable[[int, int, str], None] | None, explore: bool,
              probe_profile: bool, connection: Connection,
              denied_filters: tuple[str, ...]) -> Report:
    protocol = protocol_name(protocol)
    start = time.monotonic()
    (host, port), name = nodes.addresses[0], nodes.describe()
    try:
        for node_host, node_port in nodes.addresses:  # each node answers on its own
            asyncio.run(ensure_reachable(node_host, node_port, timing, LEVELS[protocol]))
    except Silent as silent:
        return _silent_report(node_host, node_port, protocol, seed, start=start, only=only,
                              message=str(silent), connection=connection, ids=silent.ids)
    with use_nodes(nodes):
        return _judge(host, port, name, protocol=protocol, only=only, budget=budget,
                      seed=seed, timing=timing, progress=progress, explore=explore,
                      probe_profile=probe_profile, connection=connection,
                      denied_filters=denied_filters, start=start)


def _judge(host: str, port: int, name: str, *, protocol: str, only: Sequence[str] | None,
           budget: float, seed: int, timing: Timing,
           progress: Callable[[int, int, str], None] | None, explore: bool,
           probe_profile: bool, connection: Connection,
           denied_filters: tuple[str, ...], start: float) -> Report:
    """The run proper, once every node answered: profile, suite, exploration."""
    nodes_new_check(seed, "profile")
    profile, profile5 = BrokerProfile(), BrokerProfile5()
    if probe_profile and protocol == "5.0":
        profile5 = asyncio.run(learn_profile5(host, port, timing))
    elif probe_profile:
        profile = asyncio.run(learn_profile(host, port, timing))
    chosen = select(only, protocol)
    results = asyncio.run(run_suite(host, port, chosen, budget=budget - (time.monotonic() - start),
                                    timing=timing, seed=seed, progress=progress,
                                    profile=profile, profile5=profile5,
                                    denied_filters=denied_filters))
    remaining = budget - (time.monotonic() - start)
    full_run = _full_run_estimate(results, time.monotonic() - start)
    if only:
        exploration = ExplorationOutcome(False, "model exploration not run (--only selects"
                                         " suite checks)")
    elif not explore:
        exploration = ExplorationOutcome(False, "model exploration not run (--no-exploration)")
    elif not connection.plain:
        exploration = ExplorationOutcome(False, NO_EXPLORATION_SECURED)
    else:
        exploration = _explore(host, port, remaining, seed, protocol=protocol,
                               profile5=profile5)
    verdicts = judge(results, exploration, only, protocol)
    return Report(name, protocol, seed, time.monotonic() - start, tuple(verdicts),
                  tuple(results), exploration, profile5 if protocol == "5.0" else profile,
                  full_run, connection.describe_transport(),
                  connection.describe_authentication())


def _silent_report(host: str, port: int, protocol: str, seed: int, *, start: float,
                   only: Sequence[str] | None, message: str,
                   connection: Connection, ids: tuple[str, ...] = ()) -> Report:
    """A broker that never answers a valid CONNECT, or answers it with what breaks
    ``ids``: that FAIL, and every check blocked by it."""
    sid = ACCEPTS_CONNECT[protocol]
    blamed = ids or (sid,)
    finding = Finding(blamed, f"{message} (if {host}:{port} is no MQTT broker,"
                      " check the address)")
    blocked = (f"blocked by {sid}: no CONNACK to a valid CONNECT" if not ids else
               f"blocked by {' '.join(ids)}: the answer to a valid CONNECT")
    results = []
    for check in select(only, protocol):
        if set(blamed) & set(check.ids):
            results.append(CheckResult(check, Outcome.FAIL, finding.message, findings=(finding,)))
        else:
            results.append(CheckResult(check, Outcome.NOT_RUN, blocked))
    if not any(r.findings for r in results):
        acceptor = next(c for c in REGISTRIES[protocol].values() if sid in c.ids)
        results = [r for r in results if r.check is not acceptor]
        results.append(CheckResult(acceptor, Outcome.FAIL, finding.message, findings=(finding,)))
    exploration = ExplorationOutcome(False, "model exploration not run: the broker answers no"
                                     " CONNECT" + (" with an acceptable CONNACK" if ids else ""))
    verdicts = judge(results, exploration, only, protocol)
    return Report(f"{host}:{port}", protocol, seed, time.monotonic() - start, tuple(verdicts),
                  tuple(results), exploration, transport=connection.describe_transport(),
                  authentication=connection.describe_authentication())


def _full_run_estimate(results: Sequence[CheckResult], elapsed: float) -> float | None:
    """Seconds a run of every selected check would take, when the budget cut some."""
    cut = [r for r in results if r.outcome is Outcome.NOT_RUN and r.message == "budget exhausted"]
    ran = [r for r in results if r not in cut]
    if not cut or not ran:
        return None
    per_check = sum(r.seconds for r in ran) / len(ran)
    return elapsed + per_check * len(cut)


def _explore(host: str, port: int, remaining: float, seed: int, *, protocol: str = "3.1.1",
             profile5: BrokerProfile5 | None = None) -> ExplorationOutcome:
    """The exploration at ``protocol``'s level; at 5.0 the machine keeps to the profile
    the broker's CONNACK declared (``mqttref.oracle.stateful.explore5``)."""
    module = EXPLORERS[protocol]
    explorer = load_explorer(module)
    if isinstance(explorer, str):
        return not_available(module, reason=explorer)
    if protocol == "5.0":
        explorer = cast(Explorer, functools.partial(cast(Any, explorer), profile=profile5))
    if remaining < MIN_EXPLORATION:
        return ExplorationOutcome(False, f"model exploration not run: {remaining:.0f}s of budget"
                                  " left after the suite")
    return _within_budget(explorer, host, port, remaining, seed)


def _run_explorer(explorer: Explorer, results: multiprocessing.SimpleQueue[ExplorationOutcome],
                  host: str, port: int, *, budget: float, seed: int) -> None:
    try:
        outcome = explorer(host, port, budget=budget, seed=seed, partial=results.put)
    except Exception as exc:  # an explorer bug is reported, not a verdict
        first = str(exc).splitlines()[0] if str(exc) else ""
        outcome = ExplorationOutcome(
            False, f"model exploration failed with {type(exc).__name__}: {first[:300]}")
    results.put(outcome)


def _within_budget(explorer: Explorer, host: str, port: int, budget: float,
                   seed: int) -> ExplorationOutcome:
    """Run the explorer in a child process and stop it at the budget plus a grace.

    The explorer is asked to keep to ``budget``, but shrinking a failing program can
    take longer than any estimate; ``--budget`` is a promise of the command, so the
    child is ended when it runs over. What its finished rounds found (each handed
    over as it ends) is kept, and the report says the last round was cut short.
    """
    context = multiprocessing.get_context("fork")
    results: multiprocessing.SimpleQueue[ExplorationOutcome] = context.SimpleQueue()
    child = context.Process(target=_run_explorer, args=(explorer, results, host, port),
                            kwargs={"budget": budget, "seed": seed}, daemon=True)
    started = time.monotonic()
    child.start()
    last: ExplorationOutcome | None = None
    deadline = started + budget + EXPLORATION_GRACE
    while child.is_alive() and time.monotonic() < deadline:
        child.join(min(0.5, max(0.0, deadline - time.monotonic())))
        while not results.empty():
            last = results.get()
    stopped = child.is_alive()
    if stopped:
        child.terminate()
        child.join(5)
    while not results.empty():
        last = results.get()
    if not stopped:
        if last is None:
            return ExplorationOutcome(False, f"model exploration ended without a result"
                                      f" (exit code {child.exitcode})")
        return last
    cut = (f"model exploration stopped after {time.monotonic() - started:.0f}s, over its"
           f" budget of {budget:.0f}s")
    if last is None:
        return ExplorationOutcome(
            ran=False,
            note=f"{cut}, before its first round ended (rerun with a larger --budget or"
            " --no-exploration)",
        )
    return attrs.evolve(last, note=f"{last.note}; {cut}: the round in progress is lost",
                        seconds=time.monotonic() - started)
