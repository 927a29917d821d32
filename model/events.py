"""What the harness tells the model: events clients cause, and observations.

Events are what a test does on the wire, named by *client*: the harness's
name for one network connection slot (one socket at a time). Packets are the
shared packet types of ``mqttref.impl.codec.packets`` (types only: the model never
calls the codec). Observations are packets the server sent to a client, or
``Closed``: the server closed that client's network connection (a TCP FIN and
a TCP RST are the same observation).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeAlias

import attrs

from mqttref.impl.codec.packets import Packet


@attrs.frozen
class Open:
    """The client opens a network connection (no packet yet)."""

    client: str


@attrs.frozen
class Send:
    """The client sends ``packet`` to the server.

    A ``Connect`` on a client without an open connection opens one first.
    """

    client: str
    packet: Packet


@attrs.frozen
class SendMalformed:
    """The client sends bytes that are no valid packet, or that break a rule the
    packet types cannot express (QoS 3, reserved flags): the server must close
    [MQTT-4.8.0-1]."""

    client: str
    description: str = "malformed packet"


@attrs.frozen
class Drop:
    """The client closes its network connection without DISCONNECT."""

    client: str


@attrs.frozen
class SendUnjudged:
    """The client sent a packet the model does not follow: on a broker other clients
    use, its acknowledgement of another client's message. The model knows only that
    the client was heard from, which restarts the keep alive [MQTT-3.1.2-23]."""

    client: str


@attrs.frozen
class TimePasses:
    """Time passes for every connection; the model has no clock of its own."""

    seconds: float


ClientEvent: TypeAlias = Open | Send | SendMalformed | SendUnjudged | Drop | TimePasses


@attrs.frozen
class Closed:
    """Observation: the server closed the client's network connection."""

    def __str__(self) -> str:
        return "close"


Observation: TypeAlias = Packet | Closed


def describe(observation: Observation) -> str:
    """A short, readable rendering of an observation for verdicts."""
    if isinstance(observation, Closed):
        return "close"
    fields = []
    for field in attrs.fields(type(observation)):
        value = getattr(observation, field.name)
        if field.name == "properties" or value == field.default:
            continue
        if isinstance(value, IntEnum):
            value = int(value)
        fields.append(f"{field.name}={value!r}")
    return f"{type(observation).__name__.upper()}({', '.join(fields)})"
