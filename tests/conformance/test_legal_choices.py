"""A broker that makes a choice the specification allows gets no FAIL, and the choice is named.

Each configuration of ``tests.helpers.legal_choices`` makes the in-process
mqttref broker behave legally but unlike the default one: a lower maximum QoS,
0x80 for some filters, no empty client ids, closes on control characters,
short topics, QoS 0 kept or not for offline clients. ``mqttref check`` must
judge each with 0 FAIL, learn the choice in its broker profile, and name it.
Each runs in a process of its own, three at a time: they mostly wait on sockets.
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
from collections.abc import Callable

import pytest

from mqttref.oracle.capabilities import BrokerProfile
from mqttref.oracle.report import Report, write_text
from mqttref.oracle.runner import Verdict
from mqttref.oracle.target import evaluate
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.legal_choices import DESCRIPTIONS, legal_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROFILE_SHOWS: dict[str, Callable[[BrokerProfile], bool]] = {
    "max_qos_1": lambda p: p.max_qos == 1,
    "max_qos_0": lambda p: p.max_qos == 0,
    "refuse_wildcards": lambda p: not p.wildcards,
    "refuse_space_filters": lambda p: " " in p.refused_characters,
    "no_empty_client_id": lambda p: not p.empty_client_id,
    "close_on_control_characters": lambda p: "\u007f" in p.closing_characters,
    "short_topics": lambda p: not p.long_topics,
    "no_offline_qos0": lambda p: p.queues_qos0_offline is False,
    "offline_qos0": lambda p: p.queues_qos0_offline is True,
}
"""How the broker profile shows each choice (``short_queue``, a storage limit that drops
queued QoS 1 messages, is no choice the profile can see; it is left out)."""


def _judge(name: str) -> Report:
    with BrokerThread(legal_config(name, port=0)) as running:
        return evaluate(running.host, running.port, seed=3, budget=400.0, explore=False)


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    """Each configuration judged in a process of its own, three at a time: in one process
    the brokers' and the oracle's event loops would share one interpreter lock, and a
    stalled loop would eat the one timing margin the keep-alive check allows."""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        futures = {name: pool.submit(_judge, name) for name in PROFILE_SHOWS}
        return {name: future.result() for name, future in futures.items()}


def _text(report: Report) -> str:
    out = io.StringIO()
    write_text(report, out)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(PROFILE_SHOWS))
def test_a_legal_choice_gets_no_fail_and_the_profile_names_it(
    reports: dict[str, Report], name: str,
) -> None:
    report = reports[name]
    text = _text(report)
    assert report.count(Verdict.FAIL) == 0, f"{DESCRIPTIONS[name]}\n{text}"
    assert not report.oracle_errors, text
    profile = report.profile
    assert isinstance(profile, BrokerProfile), profile  # these runs judge 3.1.1
    assert PROFILE_SHOWS[name](profile), "\n".join(profile.lines())
    named = report.profile.choices() or ["(the default choice)"]
    assert named, text


def test_a_statement_a_choice_makes_untestable_is_not_applicable_with_the_choice(
    reports: dict[str, Report],
) -> None:
    report = reports["max_qos_1"]
    reasons = {v.statement.id: v.reason for v in report.verdicts
               if v.verdict is Verdict.NOT_APPLICABLE}
    assert "grants QoS 1 for a QoS 2 request" in reasons.get("MQTT-4.3.3-1", ""), _text(report)
