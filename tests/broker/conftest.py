"""Fixtures: the mqttref broker on a free loopback port, in a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mqttref.impl.broker.config import Config
from tests.helpers.broker_thread import BrokerThread

TEST_CONFIG = Config(port=0, connect_timeout=2.0)


@pytest.fixture
def start_broker() -> Iterator[Callable[..., BrokerThread]]:
    """Start a broker with config fields overridden; every one is stopped afterwards."""
    started: list[BrokerThread] = []

    def start(**overrides: Any) -> BrokerThread:
        fields = {"port": 0, "connect_timeout": 2.0, **overrides}
        running = BrokerThread(Config(**fields)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def broker(start_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return start_broker()
