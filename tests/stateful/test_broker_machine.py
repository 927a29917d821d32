"""The broker, explored by the state machine and judged by the model.

The target is the in-process mqttref broker unless ``MQTTREF_TARGET=HOST:PORT``
names another; the budget comes from ``MQTTREF_PROFILE`` (``machine.BUDGETS``).
"""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from tests.stateful.machine import machine_for, machine_settings


def test_every_observation_is_one_the_model_allows_and_nothing_owed_goes_missing() -> None:
    run_state_machine_as_test(machine_for(), settings=machine_settings())
