"""The ``[cluster]`` table of the broker's configuration (``mqttref broker --cluster``).

Plain data with checks, no ``nats`` import: the broker's configuration holds one
of these (or None, the single node) without loading any cluster code. A bad value
raises ``ConfigError`` naming the key under ``cluster.``, as every other key does.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from mqttref.impl.codec.errors import ConfigError

SCHEMES = ("nats", "tls", "ws", "wss")
"""The URL schemes nats-py connects with."""
NODE_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
"""A node name is one NATS subject token and one key-value key token, unescaped."""


def default_node_name() -> str:
    """The host name and process id: unique on one machine, readable in logs."""
    host = "".join(c if c in NODE_NAME_CHARACTERS else "-" for c in socket.gethostname())
    return f"{host or 'node'}-{os.getpid()}"


def _servers(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError("cluster.servers: expected a list of nats:// URLs, got "
                          f"{value!r}")
    servers: list[str] = []
    for server in value:
        if not isinstance(server, str):
            raise ConfigError(f"cluster.servers: expected a URL string, got {server!r}")
        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"cluster.servers: not a URL: {server!r} ({exc})") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ConfigError(f"cluster.servers: expected nats://HOST:PORT, got {server!r}")
        del port  # read only to check it
        servers.append(server)
    return tuple(servers)


def _node_name(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value or not set(value) <= NODE_NAME_CHARACTERS:
        raise ConfigError("cluster.node_name: letters, digits, '-' and '_' only (it names the "
                          f"node in NATS subjects), got {value!r}")


def _optional_string(_instance: object, attribute: attrs.Attribute[str | None],
                     value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"cluster.{attribute.name}: expected a string, got {value!r}")


def _seconds(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e6:
        raise ConfigError(f"cluster.{attribute.name}: expected a positive number of seconds, "
                          f"got {value!r}")


def _max_pending(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000_000:
        raise ConfigError(f"cluster.{attribute.name}: expected an integer from 1 to "
                          f"10000000, got {value!r}")


@attrs.frozen(kw_only=True)
class ClusterConfig:
    """Where the NATS servers are, how to log in, and who this node is."""

    servers: tuple[str, ...] = attrs.field(converter=_servers)
    """NATS server URLs (``nats://HOST:PORT``); the client moves between them."""
    node_name: str = attrs.field(factory=default_node_name, validator=_node_name)
    """This node's name, unique in the cluster (messages carry it, so a node knows
    its own)."""
    user: str | None = attrs.field(default=None, validator=_optional_string)
    password: str | None = attrs.field(default=None, validator=_optional_string, repr=False)
    creds: str | None = attrs.field(default=None, validator=_optional_string)
    """A NATS credentials file (JWT and NKey seed), instead of user and password."""
    lease: float = attrs.field(default=10.0, validator=_seconds)
    """Seconds a dead node keeps the sessions it owned (docs/cluster.md)."""
    max_pending: int = attrs.field(default=100_000, validator=_max_pending)
    """Messages held for other nodes while NATS is away; beyond it they are dropped
    for other nodes (local subscribers still get them), docs/cluster.md."""

    def __attrs_post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ConfigError("cluster.user and cluster.password: give both or neither")
        if self.creds is not None and self.user is not None:
            raise ConfigError("cluster.creds: either a credentials file or user and "
                              "password, not both")
        if self.creds is not None:
            try:
                with open(self.creds, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"cluster.creds: cannot read {self.creds}: "
                                  f"{exc.strerror}") from None


CLUSTER_KEYS = frozenset(field.name for field in attrs.fields(ClusterConfig))


def cluster_from_value(value: Any) -> ClusterConfig | None:
    """The ``cluster`` key: a ``[cluster]`` table, a ClusterConfig (from code) or None."""
    if value is None or isinstance(value, ClusterConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError("cluster: expected a table ([cluster])")
    for key in value:
        if key not in CLUSTER_KEYS:
            raise ConfigError(f"cluster.{key}: unknown key (known: "
                              f"{', '.join(sorted(CLUSTER_KEYS))})")
    if "servers" not in value:
        raise ConfigError("cluster.servers: required (nats://HOST:PORT, one or more)")
    try:
        return ClusterConfig(**value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cluster: {exc}") from None
