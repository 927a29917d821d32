"""Fixtures for the client tests: real brokers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.brokers import Mosquitto, mosquitto_available, running_mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    with running_mosquitto(tmp_path) as broker:
        yield broker


@pytest.fixture
def broker(mosquitto: Mosquitto) -> Mosquitto:
    """The broker the client is tested against (mosquitto; mqttref's joins when ready)."""
    return mosquitto
