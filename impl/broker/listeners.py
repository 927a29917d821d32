"""Listeners: where the broker accepts connections, and over which transport.

A configuration may name several, as mosquitto's ``listener`` blocks do: each has
its own address, port and transport (plain TCP, TLS, WebSocket, WebSocket over
TLS) with the transport's settings. The transports live at the I/O edge: the
protocol core sees MQTT packets and never learns which listener brought them.
``host``/``port`` of ``Config`` stay the simple case: with no ``listeners`` the
broker listens there over TCP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from mqttref.impl.codec.errors import ConfigError

TRANSPORTS = ("tcp", "tls", "ws", "wss")
"""``tcp`` MQTT over TCP; ``tls`` over TLS (mqtts, port 8883 by convention); ``ws`` over
WebSocket (subprotocol ``mqtt``); ``wss`` WebSocket over TLS."""


def _transport(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in TRANSPORTS:
        raise ConfigError(f"{attribute.name}: one of {', '.join(TRANSPORTS)}, "
                          f"got {value!r}")


def _port(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name}: a port 0-65535, got {value!r}")


def _host(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{attribute.name}: a host name or address, got {value!r}")


@attrs.frozen
class Listener:
    """One address and port, and the transport spoken there."""

    port: int = attrs.field(validator=_port)
    host: str = attrs.field(default="127.0.0.1", validator=_host)
    transport: str = attrs.field(default="tcp", validator=_transport)

    @property
    def loopback(self) -> bool:
        """Only this machine can reach it (mosquitto 2.0's local-only rule looks at this)."""
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")


LISTENER_KEYS = frozenset(field.name for field in attrs.fields(Listener))


def listener_from_mapping(values: Any, index: int) -> Listener:
    """One ``[[listeners]]`` table of the TOML file, naming the key of any problem."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"listeners[{index}]: expected a table")
    for key in values:
        if key not in LISTENER_KEYS:
            raise ConfigError(f"listeners[{index}].{key}: unknown key "
                              f"(known: {', '.join(sorted(LISTENER_KEYS))})")
    if "port" not in values:
        raise ConfigError(f"listeners[{index}]: needs a port")
    try:
        return Listener(**values)
    except ConfigError as exc:
        raise ConfigError(f"listeners[{index}]: {exc}") from exc


def listeners_from_value(value: Any) -> tuple[Listener, ...]:
    """The ``listeners`` key: a list of tables (or Listener objects, from code)."""
    if isinstance(value, tuple) and all(isinstance(v, Listener) for v in value):
        return value
    if not isinstance(value, list | tuple):
        raise ConfigError("listeners: expected a list of tables ([[listeners]])")
    return tuple(
        v if isinstance(v, Listener) else listener_from_mapping(v, i) for i, v in enumerate(value)
    )
