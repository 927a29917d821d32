"""Checks and the context they run in.

A *check* is one black-box scenario: an ``async`` function that drives one or
more ``Probe``s against the broker and raises ``Deviation`` when what arrived
is not in the set of outcomes the specification allows. It is registered with
``@check(ids...)``, naming the normative statements it verifies; the ids are
normalised and looked up when the module is imported, so a check can never
cite a statement that does not exist.

The ``Context`` isolates checks from each other and from other users of the
broker: every client id and topic carries a per-run token, retained messages a
check sets are cleared afterwards, and persistent sessions it creates are
ended with a clean-session connect.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import attrs

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    Will,
)
from mqttref.oracle.capabilities import BrokerProfile, BrokerProfile5
from mqttref.oracle.evidence import (
    LEDGER,
    Deviation,
    Inconclusive,
    Ledger,
    NotApplicable,
)
from mqttref.oracle.flows import first_packet_is_connack, require, subscribe
from mqttref.oracle.probe import Probe, Timing, Trace
from mqttref.oracle.statements import normalise_id, statements

V311 = ProtocolLevel.MQTT_3_1_1
V5 = ProtocolLevel.MQTT_5

LEVELS: dict[str, ProtocolLevel] = {"3.1.1": V311, "5.0": V5}
"""The protocol level a run at each statement list's protocol speaks."""

CheckFn = Callable[["Context"], Awaitable[None]]
F = TypeVar("F", bound=CheckFn)


@attrs.frozen
class Check:
    name: str
    ids: tuple[str, ...]
    summary: str
    run: CheckFn
    group: str
    protocol: str = "3.1.1"
    """The protocol whose statement list ``ids`` are resolved against."""


REGISTRIES: dict[str, dict[str, Check]] = {"3.1.1": {}, "5.0": {}}
"""The checks of each protocol: 3.1.1 and 5.0 number their statements independently,
so a check judges one protocol and its ids mean nothing in the other."""

REGISTRY = REGISTRIES["3.1.1"]
"""The 3.1.1 checks (the default protocol)."""


def check(*ids: str, summary: str, robustness: bool = False,
          protocol: str = "3.1.1") -> Callable[[F], F]:
    """Register a check that verifies the statements ``ids`` of MQTT ``protocol``.

    A *robustness* check guards against a known attack (``BAD-INPUTS.md``) for
    which the specification has no normative statement; it cites none and is
    reported on its own.
    """
    registry = REGISTRIES[protocol]

    def register(fn: F) -> F:
        known = statements(protocol)
        normalised = tuple(normalise_id(raw) for raw in ids)
        unknown = [sid for sid in normalised if sid not in known]
        if unknown or not (normalised or robustness):
            raise ValueError(f"check {fn.__name__} cites unknown statements {unknown}")
        unjudgeable = [sid for sid in normalised
                       if not (known[sid].testable and known[sid].server_side)]
        if unjudgeable:
            raise ValueError(f"check {fn.__name__} lists statements no client can judge a"
                             f" server on: {unjudgeable}")
        if fn.__name__ in registry:
            raise ValueError(f"two checks named {fn.__name__}")
        group = fn.__module__.rsplit(".", 1)[-1]
        registry[fn.__name__] = Check(fn.__name__, normalised, summary, fn, group, protocol)
        return fn

    return register


class Context:
    """What a check needs: an address, timing, a trace, and isolation."""

    def __init__(self, host: str, port: int, timing: Timing, token: str, rng: random.Random,
                 *, profile: BrokerProfile | None = None, ledger: Ledger | None = None,
                 protocol: str = "3.1.1", profile5: BrokerProfile5 | None = None,
                 denied_filters: tuple[str, ...] = ()):
        self.host = host
        self.denied_filters = denied_filters
        """Filters the run's (first) user may not subscribe to (``--denied-filter``):
        what the ACL checks judge the broker's refusal with."""
        self.protocol = protocol
        self.level = LEVELS[protocol]
        """The protocol level every client of the check speaks."""
        self.profile = profile or BrokerProfile()
        """What the broker chose where the spec lets it (learned once per run)."""
        self.profile5 = profile5 or BrokerProfile5()
        """At 5.0: what the broker declared in its CONNACK (learned once per run)."""
        self.ledger = ledger or Ledger()
        self.port = port
        self.timing = timing
        self.token = token
        self.rng = rng
        self.trace = Trace()
        self.probes: list[Probe] = []
        self.retained: set[str] = set()
        self.persistent: set[str] = set()
        self._ids = 0

    @contextlib.asynccontextmanager
    async def scenario(self, name: str) -> AsyncIterator[None]:
        """Run one scenario of a check and judge it on its own.

        A deviation, a legal choice or an inconclusive end is recorded in the
        ledger and ends this scenario only: the check goes on with the next one,
        so a failure of one statement cannot hide the verdicts of the others.
        Each scenario opens its own clients.
        """
        ledger = LEDGER.get(self.ledger)
        previous, ledger.scenario = ledger.scenario, name
        self.trace.note(f"scenario: {name}")
        try:
            yield
        except Deviation as exc:
            ledger.deviated(exc)
            self.trace.note(f"scenario {name!r} deviated: {exc}")
        except NotApplicable as exc:
            ledger.chose(exc)
            self.trace.note(f"scenario {name!r} not applicable: {exc.choice}")
        except Inconclusive as exc:
            ledger.inconclusive.append(f"{name}: {exc}")
            self.trace.note(f"scenario {name!r} inconclusive: {exc}")
        finally:
            ledger.scenario = previous

    def topic(self, *levels: str) -> str:
        """A topic under this run's prefix: ``mqttref-check/<token>/<levels>``."""
        return "/".join(("mqttref-check", self.token, *levels))

    def client_id(self, label: str = "") -> str:
        """A fresh client id, at most 23 alphanumeric characters [MQTT-3.1.3-5]."""
        self._ids += 1
        return f"mqr{self.token}{label[:6]}{self._ids}"[:23]

    async def open(self, name: str) -> Probe:
        """A connection (over the run's transport: ``connection.current()``) and nothing else."""
        probe = await Probe.open(name, self.host, self.port, self.trace, self.timing,
                                 level=self.level)
        self.probes.append(probe)
        return probe

    async def client(
        self,
        name: str,
        client_id: str | None = None,
        *,
        clean: bool = True,
        keep_alive: int = 60,
        will: Will | None = None,
        session_present: bool | None = None,
    ) -> Probe:
        """A connected client: CONNECT answered by CONNACK 0 as the first packet."""
        cid = client_id if client_id is not None else self.client_id(name)
        if not clean:
            self.persistent.add(cid)
        probe = await self.open(name)
        await probe.send(Connect(V311, cid, clean, keep_alive, will))
        connack = await first_packet_is_connack(probe)
        if connack.return_code in (0x03, 0x04, 0x05):
            raise NotApplicable(f"refuses a valid CONNECT with return code"
                                f" 0x{connack.return_code:02X} (allowed by Table 3.1,"
                                " section 3.2.2.3)")
        require(
            connack.return_code == 0,
            f"{name}: a valid CONNECT must be accepted with return code 0 [MQTT-3.1.4-4]",
        )
        if session_present is not None:
            if session_present:
                rule = "[MQTT-3.2.2-2]"
            elif clean:
                rule = "[MQTT-3.2.2-1]"
            else:
                rule = "[MQTT-3.2.2-3] [MQTT-3.1.2-6]"
            require(
                connack.session_present == session_present,
                f"{name}: CONNACK session present must be {int(session_present)} {rule}",
            )
        return probe

    async def subscriber(
        self, name: str, *filters: tuple[str, QoS], client_id: str | None = None,
        clean: bool = True,
    ) -> Probe:
        """A connected client subscribed to ``filters``, all granted as requested.

        A lower grant or a refusal is the broker's right: the check is then NOT
        APPLICABLE with that choice (``flows.subscribe``). Checks that can go on
        at what was granted subscribe with ``exact=False`` instead.
        """
        probe = await self.client(name, client_id, clean=clean)
        await subscribe(probe, *filters)
        return probe

    async def cleanup(self) -> None:
        """Close every probe, clear retained messages, end persistent sessions."""
        for probe in self.probes:
            await probe.close()
        self.probes.clear()
        if not self.retained and not self.persistent:
            return
        janitor = await Probe.open("janitor", self.host, self.port, Trace(), self.timing,
                                   level=self.level)
        try:
            await janitor.send(Connect(self.level, self.client_id("jan"), True, 60))
            connack = await janitor.expect(ConnAck)
            # A 5.0 server declaring Maximum QoS 0 takes no QoS 1 PUBLISH [MQTT-3.2.2-11]:
            # there the clearing goes at QoS 0 and a PINGREQ round trip shows it was read.
            qos = QoS.AT_MOST_ONCE if connack.properties.maximum_qos == 0 else QoS.AT_LEAST_ONCE
            for n, topic in enumerate(sorted(self.retained), start=1):
                await janitor.send(Publish(topic, b"", qos, True, False, n if qos else None))
                if qos:
                    await janitor.expect(PubAck)
            if not qos:
                await janitor.settle()
            await janitor.send(Disconnect())
        finally:
            await janitor.close()
        for cid in sorted(self.persistent):
            probe = await Probe.open("janitor", self.host, self.port, Trace(), self.timing,
                                     level=self.level)
            try:
                # At 5.0 Clean Start 1 with no Session Expiry Interval (0) ends the session
                # when this connection closes [MQTT-3.1.2-4].
                await probe.send(Connect(self.level, cid, True, 60))
                await probe.expect(ConnAck)
                await probe.send(Disconnect())
            finally:
                await probe.close()
        self.retained.clear()
        self.persistent.clear()
