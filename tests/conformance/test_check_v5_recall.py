"""Faults of the 5.0 power matrix that a check used to miss, each FAILed by the step that
observes it, blamed on the statement it breaks (issue 17).

Each fault of ``oracle_faults5`` here once left its declared statement PASSed or unjudged:
the queue of an absent client lost or reversed, sessions told apart by 12 characters of the
ClientID, a message given to one matching subscriber, matching that folds case, a RETAIN 0
PUBLISH taken as the retained message, an UNSUBSCRIBE that removes its first filter only.
Only the check that judges the fault runs, with a short obligation bound (the faults make
messages that never come).
"""

from __future__ import annotations

import pytest

from mqttref.impl.broker.config import Config
from mqttref.oracle.probe import Timing
from tests.conformance.judged5 import assert_judged, verdicts5
from tests.stateful.oracle_faults5 import by_name5

CASES = (
    ("lose the offline queue on reconnect", "session_v5_expiry_and_clean_start",
     ("MQTT-3.1.2-5",), ("MQTT-4.1.0-2", "MQTT-3.1.2-4")),
    ("reorder queued messages (last in, first out)", "ordered_per_qos_v5",
     ("MQTT-4.6.0-5",), ()),
    ("persistent sessions keyed by 12 characters of the client id",
     "client_identifier_names_the_session_v5", ("MQTT-3.1.3-2",), ("MQTT-3.1.3-5",)),
    ("message delivered to the first matching subscriber only", "every_matching_subscriber_v5",
     ("MQTT-4.5.0-1",), ()),
    ("topic matching ignores case", "no_normalisation_v5", ("MQTT-4.7.3-4",), ()),
    ("RETAIN 0 publish replaces the retained message", "retained_messages_v5",
     ("MQTT-3.3.1-8",), ("MQTT-3.3.1-5", "MQTT-3.3.1-6", "MQTT-3.3.1-7")),
    ("only the first filter of an UNSUBSCRIBE removed", "unsubscribe_many_filters_v5",
     ("MQTT-3.10.4-6",), ()),
)
"""(fault, the check that must catch it, statements it must FAIL, statements it must PASS)."""


@pytest.mark.parametrize(("fault", "check", "failed", "passed"), CASES,
                         ids=[case[0] for case in CASES])
def test_the_fault_fails_its_statement_in_the_check_that_observes_it(
        monkeypatch: pytest.MonkeyPatch, fault: str, check: str, failed: tuple[str, ...],
        passed: tuple[str, ...]) -> None:
    inject = by_name5(fault).inject
    assert inject is not None
    inject(monkeypatch)
    verdicts = verdicts5(Config(port=0), check, timing=Timing(obligation=1.0))
    assert_judged(verdicts, failed=failed, passed=passed)


@pytest.mark.parametrize("check", sorted({case[1] for case in CASES}))
def test_the_mqttref_broker_passes_them(check: str) -> None:
    verdicts = verdicts5(Config(port=0), check, timing=Timing(obligation=1.0))
    assert_judged(verdicts, failed=(), passed=[sid for case in CASES if case[1] == check
                                              for sid in (*case[2], *case[3])])
