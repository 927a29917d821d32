"""A will's Message Expiry Interval is its lifetime once published (3.1.3.2.4: "sent as
the Publication Expiry Interval when the Server publishes the Will Message"), so a Will
Delay Interval does not eat into it, whether the will goes out when the delay ends or
earlier, when its session ends."""

from __future__ import annotations

from mqttref.impl.codec.packets import Properties, Will
from tests.broker.test_protocol_core import World
from tests.broker.test_v5_core import connect5, will_watcher, wills, world

__all__ = ["world"]

SESSION = Properties(session_expiry_interval=600)


def delayed_will(delay: int, lifetime: int) -> Will:
    return Will("wills/w", b"gone", properties=Properties(
        will_delay_interval=delay, message_expiry_interval=lifetime))


def test_a_will_delayed_longer_than_its_lifetime_is_still_published(world: World) -> None:
    watcher = will_watcher(world)
    client, _ = connect5(world, "w", properties=SESSION, will=delayed_will(10, 5))
    client.core.connection_lost(1.0)
    world.table.tick(11.0)
    [will] = wills(watcher)
    assert will.properties.message_expiry_interval == 5  # its whole lifetime, from now


def test_a_will_published_early_by_its_session_ending_keeps_its_whole_lifetime(
    world: World,
) -> None:
    watcher = will_watcher(world)  # Session Expiry 0: the session ends with the connection
    client, _ = connect5(world, "w", will=delayed_will(10, 5))
    client.core.connection_lost(1.0)
    [will] = wills(watcher)
    assert will.properties.message_expiry_interval == 5


def test_a_will_published_when_its_session_expires_keeps_its_whole_lifetime(
    world: World,
) -> None:
    watcher = will_watcher(world)
    client, _ = connect5(world, "w", properties=SESSION, will=delayed_will(1000, 5))
    client.core.connection_lost(1.0)
    world.table.end_session(world.table.sessions["w"])  # as expiry does, before the delay
    [will] = wills(watcher)
    assert will.properties.message_expiry_interval == 5
