"""Fixtures for the client tests: real brokers on free loopback ports.

``broker`` runs every test against mosquitto and against the mqttref broker
(each as its own process, so tests can restart it under a connected client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.client.brokers import BROKER_KINDS, Broker, running_broker
from tests.client.proxy import Proxy


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def broker(broker_kind: str, tmp_path: Path) -> Iterator[Broker]:
    with running_broker(broker_kind, tmp_path) as running:
        yield running


@pytest.fixture
def closed_broker(broker_kind: str, tmp_path: Path) -> Iterator[Broker]:
    """A broker that refuses anonymous clients (CONNACK return code 5)."""
    directory = tmp_path / "closed"
    directory.mkdir()
    with running_broker(broker_kind, directory, allow_anonymous=False) as running:
        yield running


@pytest.fixture
async def proxy(broker: Broker) -> AsyncIterator[Proxy]:
    """A cuttable TCP proxy in front of ``broker``."""
    proxy = Proxy(broker.port)
    await proxy.start()
    yield proxy
    await proxy.stop()
