"""The broker, explored by the state machine and judged by the model.

The target is the in-process mqttref broker unless ``MQTTREF_TARGET=HOST:PORT``
names another; the budget comes from ``MQTTREF_PROFILE`` (``settings.BUDGETS``).
A failure prints the model's verdict, the transcript of client actions and
packets, the shrunk rule sequence and a ``@reproduce_failure`` blob; shrinking
replays real traffic, so it stops after ``MQTTREF_SHRINK_SECONDS`` (60).
"""

from __future__ import annotations

import os

from hypothesis.stateful import run_state_machine_as_test

from mqttref.oracle.stateful.machine import machine_for
from mqttref.oracle.stateful.settings import machine_settings, shrinking_limited_to
from tests.stateful.inprocess import target_from_environment


def test_every_observation_is_one_the_model_allows_and_nothing_owed_goes_missing() -> None:
    with shrinking_limited_to(float(os.environ.get("MQTTREF_SHRINK_SECONDS", "60"))):
        machine = machine_for(target_from_environment())
        run_state_machine_as_test(machine, settings=machine_settings())
