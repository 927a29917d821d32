"""What a check saw: the ledger that verdicts are earned from.

A verdict is only as good as the observation behind it, so a check does not
return "pass" or "fail"; it writes down, as it goes, what it observed:

- an ``Observation`` each time a requirement that cites statements held
  (``require(True, "... [MQTT-x]")``, an ``expect`` whose reason cites one):
  the evidence a PASS rests on;
- a ``Finding`` each time an observation contradicted the statements it cites
  (a ``Deviation``): the only thing a FAIL rests on, blamed on exactly those
  statements, whether or not the check lists them;
- a ``Choice`` when the broker made a choice the specification allows that
  leaves a statement without a scenario to judge it (``NotApplicable``);
- an inconclusive note when a scenario could not reach its situation for a
  reason that is neither.

Each check runs with its own ``Ledger`` in a context variable, so the steps of
``flows`` and ``Probe`` record into it without being handed it. A check with
several scenarios runs each inside ``Context.scenario``: a deviation ends that
scenario, not the check, so the scenarios that would decide other statements
still run.
"""

from __future__ import annotations

from contextvars import ContextVar

import attrs

from mqttref.oracle.statements import cited, judgeable


class Deviation(Exception):
    """An observation that contradicts the statements its message cites.

    The message must cite at least one statement as ``[MQTT-x.y.z-n]``: a
    deviation that cites none cannot be blamed on anything, and the runner
    reports it as a gap of the oracle, never as the broker's FAIL.
    """

    @property
    def ids(self) -> tuple[str, ...]:
        return cited(str(self))


class NotApplicable(Exception):
    """The broker made a choice the specification allows; the statement cannot be judged.

    ``choice`` says what the broker chose in words a reader checks against the
    spec ("grants at most QoS 1 for a QoS 2 request [MQTT-3.9.3-?]"). ``ids``
    names the statements the choice leaves untestable; none means every
    statement of the check that was not observed yet.
    """

    def __init__(self, choice: str, *ids: str) -> None:
        super().__init__(choice)
        self.choice = choice
        self.ids = tuple(ids)


class Inconclusive(Exception):
    """The scenario could not reach the situation the statement is about.

    For example, a check of what a server does after refusing a CONNECT cannot
    judge a server that accepted it (that acceptance is judged by another
    check). The statements of the check are then NOT RUN, with this reason.
    """


@attrs.frozen
class Observation:
    """A requirement that held: evidence for the statements it cites."""

    ids: tuple[str, ...]
    text: str
    scenario: str = ""


@attrs.frozen
class Finding:
    """A requirement that did not hold, blamed on the statements it cites."""

    ids: tuple[str, ...]
    message: str
    scenario: str = ""


@attrs.frozen
class Choice:
    """A legal choice of the broker that leaves ``ids`` (or the check) untestable."""

    choice: str
    ids: tuple[str, ...] = ()
    scenario: str = ""


@attrs.define
class Ledger:
    """Everything one check observed, in order."""

    observations: list[Observation] = attrs.Factory(list)
    findings: list[Finding] = attrs.Factory(list)
    choices: list[Choice] = attrs.Factory(list)
    inconclusive: list[str] = attrs.Factory(list)
    scenario: str = ""
    protocol: str = "3.1.1"
    """The protocol of the run: 3.1.1 and 5.0 number their statements independently,
    so every id a message cites is resolved against this protocol's list."""

    def deviated(self, exc: Deviation) -> Finding:
        finding = Finding(judgeable(exc.ids, self.protocol), str(exc), self.scenario)
        self.findings.append(finding)
        return finding

    def chose(self, exc: NotApplicable) -> Choice:
        choice = Choice(exc.choice, tuple(exc.ids), self.scenario)
        self.choices.append(choice)
        return choice


LEDGER: ContextVar[Ledger] = ContextVar("ledger")


def observe(text: str) -> None:
    """Record that the requirement ``text`` describes was seen to hold.

    Only the statements ``text`` cites get evidence from it; text that cites
    none is a note, not evidence.
    """
    ledger = LEDGER.get(None)
    if ledger is None:
        return
    ids = judgeable(cited(text), ledger.protocol)
    if ids:
        ledger.observations.append(Observation(ids, text, ledger.scenario))
