"""The sans-IO broker of ``tests.broker.test_v5_core`` with one made-up clock, for the
5.0 statements about time (keep alive, will delay, session and message expiry): the
tests move the clock, so none waits."""

from __future__ import annotations

from mqttref.impl.broker.config import Config
from mqttref.impl.codec.packets import Publish
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import Client5


class Clock:
    """One made-up time for the whole sans-IO broker: the loop's ``now`` the tests pass,
    and the wall clock the session table reads for session expiry."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def at(self, now: float) -> float:
        self.now = now
        return now


def clocked_world(config: Config | None = None) -> tuple[World, Clock]:
    world = World(config if config is not None else Config(port=0))
    clock = Clock()
    world.table.clock = clock
    return world, clock


def publishes(client: Client5) -> list[Publish]:
    """The PUBLISH packets ``client`` was sent since it last looked."""
    return [p for p in client.received() if isinstance(p, Publish)]
