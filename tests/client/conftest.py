"""Fixtures for the client tests: real brokers on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.client.brokers import Mosquitto, mosquitto_available, running_mosquitto
from tests.client.proxy import Proxy


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


@pytest.fixture
async def proxy(broker: Mosquitto) -> AsyncIterator[Proxy]:
    """A cuttable TCP proxy in front of ``broker``."""
    proxy = Proxy(broker.port)
    await proxy.start()
    yield proxy
    await proxy.stop()
