"""Listeners: where the broker accepts connections, and over which transport.

A configuration may name several, as mosquitto's ``listener`` blocks do: each has
its own address, port and transport (plain TCP, TLS, WebSocket, WebSocket over
TLS) with the transport's settings. The transports live at the I/O edge
(``tls.py``, ``websocket.py``): the protocol core sees MQTT packets and never
learns which listener brought them. ``host``/``port`` of ``Config`` stay the
simple case: with no ``listeners`` the broker listens there over TCP.

A listener is checked whole when it is made: a TLS setting on a plain listener,
a ``require_certificate`` without the ``cafile`` to check certificates against,
a certificate file that cannot be read or loaded, each is a ``ConfigError``
naming the key (and the file), so a bad file stops ``mqttref broker`` at start
rather than the first client's handshake.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Final

import attrs

from mqttref.impl.codec.errors import ConfigError

TRANSPORTS = ("tcp", "tls", "ws", "wss")
"""``tcp`` MQTT over TCP; ``tls`` over TLS (mqtts, port 8883 by convention); ``ws`` over
WebSocket (subprotocol ``mqtt``); ``wss`` WebSocket over TLS."""

SECURE: Final = frozenset({"tls", "wss"})
"""The transports that run TLS (and take its keys)."""

WEBSOCKET: Final = frozenset({"ws", "wss"})
"""The transports that run WebSocket (and take its keys)."""

TLS_VERSIONS: Final = ("tlsv1.2", "tlsv1.3")
"""The lowest TLS version a listener may accept; older versions are broken (RFC 8996)."""

TLS_KEYS: Final = ("certfile", "keyfile", "cafile", "require_certificate",
                   "use_identity_as_username", "tls_version")
WEBSOCKET_KEYS: Final = ("max_frame_size",)


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


def _path(_instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: a file path (PEM), got {value!r}")


def _flag(_instance: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: true or false, got {value!r}")


def _tls_version(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in TLS_VERSIONS:
        raise ConfigError(f"{attribute.name}: one of {', '.join(TLS_VERSIONS)}, got {value!r}")


def _frame_size(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 31:
        raise ConfigError(f"{attribute.name}: bytes, 1 to {1 << 31}, got {value!r}")


@attrs.frozen
class Listener:
    """One address and port, and the transport spoken there with its settings."""

    port: int = attrs.field(validator=_port)
    host: str = attrs.field(default="127.0.0.1", validator=_host)
    transport: str = attrs.field(default="tcp", validator=_transport)

    certfile: str | None = attrs.field(default=None, validator=_path)
    """TLS (``tls``, ``wss``): the server's certificate chain, PEM (required)."""
    keyfile: str | None = attrs.field(default=None, validator=_path)
    """TLS: the server's private key, PEM; none when ``certfile`` holds it too."""
    cafile: str | None = attrs.field(default=None, validator=_path)
    """TLS: the certificate authorities client certificates are checked against; with
    it (and without ``require_certificate``) a client may present one or not."""
    require_certificate: bool = attrs.field(default=False, validator=_flag)
    """TLS: a client without a valid certificate (signed by ``cafile``, in date) fails
    the handshake, before it can send a byte of MQTT."""
    use_identity_as_username: bool = attrs.field(default=False, validator=_flag)
    """TLS: the Common Name of the client's certificate is its user name for CONNECT
    admission, whatever user name (and password) the CONNECT carries, as mosquitto's
    option of that name. Needs ``require_certificate``."""
    tls_version: str = attrs.field(default="tlsv1.2", validator=_tls_version)
    """TLS: the lowest version accepted (``tlsv1.2`` or ``tlsv1.3``)."""

    max_frame_size: int = attrs.field(default=2_097_152, validator=_frame_size)
    """WebSocket (``ws``, ``wss``): the largest data frame accepted, in bytes; a larger
    one closes the WebSocket with 1009 (message too big, RFC 6455 7.4.1). A frame may
    hold several MQTT packets, each bounded by ``max_packet_size`` on its own."""

    def __attrs_post_init__(self) -> None:
        """The settings that only make sense together (each error names its key)."""
        given = attrs.asdict(self)
        defaults = {field.name: field.default for field in attrs.fields(Listener)}
        if self.transport not in SECURE:
            for key in TLS_KEYS:
                if given[key] != defaults[key]:
                    raise ConfigError(f"{key}: only for tls and wss listeners, "
                                      f"not {self.transport}")
        if self.transport not in WEBSOCKET:
            for key in WEBSOCKET_KEYS:
                if given[key] != defaults[key]:
                    raise ConfigError(f"{key}: only for ws and wss listeners, "
                                      f"not {self.transport}")
        if self.transport not in SECURE:
            return
        if self.certfile is None:
            raise ConfigError(f"certfile: a {self.transport} listener needs the server's "
                              "certificate (PEM)")
        if self.require_certificate and self.cafile is None:
            raise ConfigError("require_certificate: needs a cafile to check client "
                              "certificates against")
        if self.use_identity_as_username and not self.require_certificate:
            raise ConfigError("use_identity_as_username: needs require_certificate = true "
                              "(a client without a certificate would have no identity)")
        server_context(self)  # the files exist, load and match: a ConfigError if not

    @property
    def loopback(self) -> bool:
        """Only this machine can reach it (mosquitto 2.0's local-only rule looks at this)."""
        return self.host in ("127.0.0.1", "::1", "localhost") or self.host.startswith("127.")

    @property
    def secure(self) -> bool:
        """The transport runs TLS."""
        return self.transport in SECURE

    @property
    def websocket(self) -> bool:
        """The transport runs WebSocket."""
        return self.transport in WEBSOCKET


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
        raise ConfigError(f"listeners[{index}].{exc}") from exc


def listeners_from_value(value: Any) -> tuple[Listener, ...]:
    """The ``listeners`` key: a list of tables (or Listener objects, from code)."""
    if isinstance(value, tuple) and all(isinstance(v, Listener) for v in value):
        return value
    if not isinstance(value, list | tuple):
        raise ConfigError("listeners: expected a list of tables ([[listeners]])")
    return tuple(
        v if isinstance(v, Listener) else listener_from_mapping(v, i) for i, v in enumerate(value)
    )


VERSIONS: Final = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


def _readable(key: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from exc


def server_context(listener: Listener) -> ssl.SSLContext:
    """The server-side context of a ``tls``/``wss`` listener: the server's certificate
    and key, the lowest TLS version, and, with ``cafile``, the client certificates it
    checks (``require_certificate``: one is required). ConfigError naming the key (and
    file) of what is wrong; built when the configuration loads, so a broker never starts
    with a key it cannot use."""
    certfile = listener.certfile
    if certfile is None:
        raise ConfigError("certfile: a TLS listener needs the server's certificate (PEM)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[listener.tls_version]
    _readable("certfile", certfile)
    if listener.keyfile is not None:
        _readable("keyfile", listener.keyfile)
    try:
        context.load_cert_chain(certfile, listener.keyfile)
    except ssl.SSLError as exc:
        which = f"certfile {certfile}" + (
            f" / keyfile {listener.keyfile}" if listener.keyfile is not None else ""
        )
        raise ConfigError(f"certfile: {which}: not a PEM certificate chain and its private "
                          f"key ({exc.reason or exc})") from exc
    if listener.cafile is not None:
        _readable("cafile", listener.cafile)
        try:
            context.load_verify_locations(cafile=listener.cafile)
        except ssl.SSLError as exc:
            raise ConfigError(f"cafile: {listener.cafile}: not PEM CA certificates "
                              f"({exc.reason or exc})") from exc
        context.verify_mode = (
            ssl.CERT_REQUIRED if listener.require_certificate else ssl.CERT_OPTIONAL
        )
    return context
