"""Broker URLs: ``mqtt://``, ``mqtts://``, ``ws://`` and ``wss://``, with a user and password.

``mqtt(s)://[user[:password]@]host[:port]/topic`` is mosquitto_pub's ``-L``: the
path is the topic, taken as it is written (no percent-decoding, so ``#`` and
``+`` need no escaping). ``ws(s)://[user[:password]@]host[:port]/path`` is the
URL of a WebSocket (RFC 6455 3): its path is the resource asked for in the
handshake, ``/mqtt`` when the URL has none (paho's default); the topic then
comes from ``-t``.

Default ports: 1883 for ``mqtt``, 8883 for ``mqtts`` (mosquitto_pub(1)), 80 for
``ws`` and 443 for ``wss`` (RFC 6455 3, as MQTT.js and paho take them).
"""

from __future__ import annotations

import attrs

from mqttref.impl.client.errors import InvalidArgument

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
DEFAULT_WEBSOCKET_PATH = "/mqtt"
"""The resource a WebSocket URL without a path asks for (paho's and mosquitto's listeners')."""


@attrs.frozen
class BrokerUrl:
    """The parts of a broker URL; ``path`` is as written after the host (``""`` if none)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    path: str = ""

    @property
    def secure(self) -> bool:
        return self.scheme in ("mqtts", "wss")

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def topic(self) -> str | None:
        """mosquitto's ``-L``: the topic of an ``mqtt(s)`` URL (None without one)."""
        if self.websocket or len(self.path) <= 1:
            return None
        return self.path[1:]

    @property
    def websocket_path(self) -> str:
        return self.path or DEFAULT_WEBSOCKET_PATH


def parse_url(url: str) -> BrokerUrl:
    """Split a broker URL; a malformed one is an ``InvalidArgument`` saying what is wrong."""
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise InvalidArgument(
            f"bad URL {url!r}: it must start with mqtt://, mqtts://, ws:// or wss://"
        )
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        username, colon, secret = userinfo.partition(":")
        password = secret if colon else None
        if not username:
            raise InvalidArgument(f"bad URL {url!r}: empty user name before '@'")
    host, port = _host_and_port(url, hostport, DEFAULT_PORTS[scheme])
    return BrokerUrl(scheme, host, port, username, password, path)


def _host_and_port(url: str, hostport: str, default: int) -> tuple[str, int]:
    if hostport.startswith("["):  # an IPv6 literal, RFC 3986 3.2.2
        end = hostport.find("]")
        if end < 0:
            raise InvalidArgument(f"bad URL {url!r}: no ']' after the IPv6 address")
        host, after = hostport[1:end], hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise InvalidArgument(f"bad URL {url!r}: unexpected {after!r} after the host")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    if not host:
        raise InvalidArgument(f"bad URL {url!r}: no host")
    if port_text is None:
        return host, default
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65_535:
        raise InvalidArgument(f"bad URL {url!r}: port must be 1..65535, not {port_text!r}")
    return host, int(port_text)
