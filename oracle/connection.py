"""How the oracle reaches the broker under test: transport, TLS, WebSocket and user names.

A run of ``mqttref check`` has one ``Connection``: the transport (``tcp``,
``tls``, ``ws`` or ``wss``), the client TLS context, the WebSocket path, and up
to two users. It is set for the run with ``use`` (a context variable), so every
client the oracle opens (the checks' probes, the profile learner, the
janitors) reaches the broker the same way without any check knowing about it.

Credentials are put in centrally: a CONNECT that names no user (``username``
None) gets the run's user (``with_credentials``). Within one check the users
alternate by client id: the first client id the check connects with gets user
1, the next user 2, and so on; a client id keeps its user for the whole check,
so a reconnection resumes its session as the same user. A CONNECT that names a
user itself (a check about user names) is sent as it is.

MQTT over WebSocket (chapter 6): the opening handshake offers the subprotocol
``mqtt`` [MQTT-6.0.0-3] and MQTT bytes travel in binary frames
[MQTT-6.0.0-1]. The WebSocket is hidden under an ``asyncio`` transport, so a
probe reads and writes a byte stream whatever the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import attrs
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import MQTTError
from mqttref.impl.codec.packets import Connect, ProtocolLevel
from mqttref.oracle.nodes import clustered

TRANSPORTS: Final = ("tcp", "tls", "ws", "wss")
SCHEMES: Final = {"mqtt": "tcp", "mqtts": "tls", "ws": "ws", "wss": "wss"}
"""The URL schemes ``-L`` takes, and the transport each names."""
DEFAULT_PORTS: Final = {"tcp": 1883, "tls": 8883, "ws": 80, "wss": 443}
TLS_VERSIONS: Final = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}
SUBPROTOCOL: Final = "mqtt"


class ConnectionOptionError(ValueError):
    """A connection option that cannot work (bad URL, unreadable file): one clear line."""


@attrs.frozen
class Credentials:
    username: str
    password: bytes | None = attrs.field(default=None, repr=False)
    """Never printed: the report says only whether one was given."""


@attrs.frozen
class Connection:
    """How every client of one run reaches the broker."""

    transport: str = attrs.field(default="tcp",
                                 validator=attrs.validators.in_(TRANSPORTS))
    tls: ssl.SSLContext | None = attrs.field(default=None, eq=False, repr=False)
    tls_note: str = ""
    """What the TLS context checks, for the report (``CA ca.pem, client certificate``)."""
    path: str = "/mqtt"
    """The WebSocket request target."""
    users: tuple[Credentials, ...] = ()

    @property
    def secure(self) -> bool:
        return self.transport in ("tls", "wss")

    @property
    def plain(self) -> bool:
        """Anonymous MQTT over TCP: what the model exploration can use."""
        return self.transport == "tcp" and not self.users

    def describe_transport(self) -> str:
        name = {"tcp": "TCP", "tls": "TLS", "ws": "WebSocket", "wss": "WebSocket over TLS"}
        details = [f"path {self.path}"] if self.transport in ("ws", "wss") else []
        if self.secure and self.tls_note:
            details.append(self.tls_note)
        text = name[self.transport]
        return f"{text} ({'; '.join(details)})" if details else text

    def describe_authentication(self) -> str:
        if not self.users:
            return "anonymous (no user name)"
        parts = [f"user {u.username!r}" + (" with password" if u.password is not None
                                            else " without password") for u in self.users]
        how = " and ".join(parts)
        if len(self.users) > 1:
            how += " (alternating between the clients of each check)"
        return how


PLAIN: Final = Connection()
_CURRENT: contextvars.ContextVar[Connection] = contextvars.ContextVar("mqttref_connection",
                                                                      default=PLAIN)


def current() -> Connection:
    """The connection settings of the run in progress (plain TCP, anonymous by default)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use(connection: Connection) -> Iterator[Connection]:
    """Make ``connection`` the run's settings within the block (``asyncio.run`` inherits it)."""
    token = _CURRENT.set(connection)
    identities = _IDENTITIES.set(None)
    try:
        yield connection
    finally:
        _IDENTITIES.reset(identities)
        _CURRENT.reset(token)


@attrs.define
class Identities:
    """Which user each client id of one check connects as (see the module docstring)."""

    users: tuple[Credentials, ...]
    by_client: dict[str, Credentials] = attrs.field(factory=dict)
    given: int = 0

    def for_client(self, client_id: str) -> Credentials | None:
        if not self.users:
            return None
        if client_id in self.by_client:
            return self.by_client[client_id]
        user = self.users[self.given % len(self.users)]
        self.given += 1
        if client_id:  # an empty client id is a new client each time
            self.by_client[client_id] = user
        return user


_IDENTITIES: contextvars.ContextVar[Identities | None] = contextvars.ContextVar(
    "mqttref_identities", default=None)


def new_check() -> None:
    """Start the alternation of users afresh: called as each check starts."""
    _IDENTITIES.set(Identities(current().users))


def _identities() -> Identities:
    identities = _IDENTITIES.get()
    if identities is None or identities.users != current().users:
        identities = Identities(current().users)
        _IDENTITIES.set(identities)
    return identities


def with_credentials(packet: Connect) -> Connect:
    """``packet`` with the run's user and password when it names no user itself.

    A CONNECT with a password but no user name is a deliberate violation
    [MQTT-3.1.2-22] a check sends on purpose: it is left alone.
    """
    if packet.username is not None or packet.password is not None:
        return packet
    user = _identities().for_client(packet.client_id)
    if user is None:
        return packet
    return attrs.evolve(packet, username=user.username, password=user.password)


def with_credentials_raw(data: bytes, level: ProtocolLevel) -> bytes:
    """Raw bytes starting with a CONNECT, with the run's user put into that CONNECT.

    Only a CONNECT that the codec reads and writes back byte for byte is
    changed: then nothing in its bytes was special, and the user added changes
    nothing a check means to test. Anything odd about it (and whatever follows
    it) is sent as it is.
    """
    if not data or data[0] != 0x10 or not current().users:
        return data
    try:
        packets = Decoder(role=Role.SERVER, protocol_level=level).feed(data)
    except MQTTError as exc:
        packets = list(getattr(exc, "packets", []))
    if not packets or not isinstance(packets[0], Connect):
        return data
    connect = packets[0]
    try:
        original = encode(connect, connect.protocol_level)
    except (MQTTError, ValueError):
        return data
    if not data.startswith(original):
        return data
    changed = with_credentials(connect)
    if changed is connect:
        return data
    return encode(changed, connect.protocol_level) + data[len(original):]


def tls_context(*, cafile: str | None = None, certfile: str | None = None,
                keyfile: str | None = None, insecure: bool = False,
                version: str | None = None) -> tuple[ssl.SSLContext, str]:
    """A client TLS context as ``mosquitto_pub`` builds one, and a note for the report.

    ``cafile`` is what the server certificate is checked against (the system's
    CAs without it); ``insecure`` skips only the host name check, as
    mosquitto's ``--insecure`` does; ``version`` pins the TLS version.
    """
    context = ssl.create_default_context()
    notes = []
    if cafile is not None:
        try:
            context.load_verify_locations(cafile=cafile)
        except FileNotFoundError as exc:
            raise ConnectionOptionError(f"--cafile: cannot read {cafile}: {exc.strerror}") \
                from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionOptionError(f"--cafile: {cafile}: not PEM CA certificates"
                                        f" ({getattr(exc, 'reason', None) or exc})") from None
        notes.append(f"server certificate checked against {cafile}")
    else:
        notes.append("server certificate checked against the system CAs")
    if (certfile is None) != (keyfile is None):
        raise ConnectionOptionError("--cert and --key go together: give both")
    if certfile is not None:
        try:
            context.load_cert_chain(certfile, keyfile)
        except FileNotFoundError as exc:
            raise ConnectionOptionError(f"--cert/--key: cannot read {exc.filename or certfile}:"
                                        f" {exc.strerror}") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionOptionError(f"--cert/--key: {certfile}, {keyfile}: not a PEM"
                                        f" certificate and its key"
                                        f" ({getattr(exc, 'reason', None) or exc})") from None
        notes.append(f"client certificate {certfile}")
    if insecure:
        context.check_hostname = False
        notes.append("host name not checked (--insecure)")
    if version is not None:
        if version not in TLS_VERSIONS:
            raise ConnectionOptionError(f"--tls-version: {version!r} is not one of"
                                        f" {', '.join(TLS_VERSIONS)} (older versions are"
                                        " broken, RFC 8996)")
        context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
        notes.append(version)
    return context, ", ".join(notes)


@attrs.frozen
class Address:
    """What ``-L`` names: where the broker is and how, with an optional user."""

    host: str
    port: int
    transport: str
    path: str
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)


def parse_url(text: str) -> Address:
    """``mqtt[s]://[user[:password]@]host[:port][/...]`` or ``ws[s]://...[/path]``.

    The path of a ``ws``/``wss`` URL is the WebSocket request target (``/mqtt``
    when there is none); the path of an ``mqtt``/``mqtts`` URL (mosquitto_pub's
    topic) is not used: the oracle chooses its own topics.
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConnectionOptionError(f"-L/--url: {text!r}: {exc}") from None
    transport = SCHEMES.get(parts.scheme.lower())
    if transport is None:
        raise ConnectionOptionError(f"-L/--url: {text!r}: the scheme must be one of"
                                    f" {', '.join(s + '://' for s in SCHEMES)}")
    if not parts.hostname:
        raise ConnectionOptionError(f"-L/--url: {text!r} names no host")
    if port == 0:
        raise ConnectionOptionError(f"-L/--url: {text!r}: port 0")
    path = parts.path or "/mqtt"
    if parts.query:
        path += "?" + parts.query
    return Address(parts.hostname, port or DEFAULT_PORTS[transport], transport, path,
                   unquote(parts.username) if parts.username is not None else None,
                   unquote(parts.password) if parts.password is not None else None)


async def open_stream(host: str, port: int, timeout: float,
                      connection: Connection | None = None, *, route: bool = True,
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A byte stream to the broker over the run's transport, within ``timeout`` seconds.

    When the broker is a cluster (``nodes``) and ``route`` holds, the stream goes to
    the node whose turn it is, not to ``host:port``: every connection of the oracle is
    placed here (``Probe.open`` places its own and passes ``route=False``).
    TLS and WebSocket handshake failures raise ``OSError`` (``ssl.SSLError`` or
    ``ConnectionError``), as a refused TCP connection does.
    """
    nodes = clustered()
    if route and nodes is not None:
        host, port = nodes.addresses[nodes.take_turn()]
    settings = connection if connection is not None else current()
    secure = settings.tls if settings.secure else None
    if settings.secure and secure is None:
        secure = ssl.create_default_context()
    if settings.transport in ("tcp", "tls"):
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=secure,
                                    server_hostname=host if secure else None), timeout)
    return await asyncio.wait_for(_open_websocket(host, port, settings.path, secure), timeout)


async def _open_websocket(host: str, port: int, path: str, secure: ssl.SSLContext | None,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    lower, client = await loop.create_connection(
        lambda: _WebSocketClient(f"{host}:{port}", path), host, port, ssl=secure,
        server_hostname=host if secure else None)
    try:
        await client.handshake
    except BaseException:
        lower.abort()
        raise
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport = _WebSocketTransport(lower, client.ws)
    client.attach(protocol, transport)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class _WebSocketClient(asyncio.Protocol):
    """The WebSocket client under the MQTT byte stream (wsproto, sans-IO)."""

    def __init__(self, host: str, path: str) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.host = host
        self.path = path
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upper: asyncio.Protocol | None = None
        self.early: list[bytes] = []
        self.refusal = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.ws.send(Request(host=self.host, target=self.path,
                                             subprotocols=[SUBPROTOCOL])))

    def attach(self, upper: asyncio.Protocol, transport: asyncio.Transport) -> None:
        self.upper = upper
        upper.connection_made(transport)
        for data in self.early:
            upper.data_received(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                self._event(event)
        except (LocalProtocolError, RemoteProtocolError) as exc:
            self._fail(ConnectionError(f"WebSocket protocol error: {exc}"))

    def _event(self, event: Event) -> None:
        assert self.transport is not None
        if isinstance(event, AcceptConnection):
            if event.subprotocol != SUBPROTOCOL:
                self._fail(ConnectionError(
                    f"the WebSocket handshake selected subprotocol {event.subprotocol!r},"
                    f" not {SUBPROTOCOL!r} [MQTT-6.0.0-4]"))
            elif not self.handshake.done():
                self.handshake.set_result(None)
        elif isinstance(event, RejectConnection):
            self.refusal = f"HTTP {event.status_code}".encode()
            if not event.has_body:
                self._refused()
        elif isinstance(event, RejectData):
            self.refusal += b" " + event.data
            if event.body_finished:
                self._refused()
        elif isinstance(event, BytesMessage):
            self._deliver(bytes(event.data))
        elif isinstance(event, TextMessage):
            # MQTT travels in binary frames only; a recipient of any other data frame
            # must close the network connection [MQTT-6.0.0-1].
            self.transport.abort()
        elif isinstance(event, Ping):
            self.transport.write(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                self.transport.write(self.ws.send(event.response()))
            self.transport.close()

    def _deliver(self, data: bytes) -> None:
        if self.upper is None:
            self.early.append(data)
        else:
            self.upper.data_received(data)

    def _refused(self) -> None:
        text = self.refusal.decode("utf-8", "replace").strip()[:200]
        self._fail(ConnectionError(f"WebSocket handshake refused: {text}"))

    def _fail(self, exc: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError(
                "the server closed the connection during the WebSocket handshake"))
        elif self.upper is not None:
            self.upper.connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self.upper is not None:
            self.upper.eof_received()
        return False

    def pause_writing(self) -> None:
        if self.upper is not None:
            self.upper.pause_writing()

    def resume_writing(self) -> None:
        if self.upper is not None:
            self.upper.resume_writing()


class _WebSocketTransport(asyncio.Transport):
    """Bytes written here leave as binary WebSocket frames [MQTT-6.0.0-1]."""

    def __init__(self, lower: asyncio.Transport, ws: WSConnection) -> None:
        super().__init__()
        self._lower = lower
        self._ws = ws

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._lower.is_closing() or self._ws.state is not ConnectionState.OPEN:
            return
        self._lower.write(self._ws.send(BytesMessage(bytes(data))))

    def is_closing(self) -> bool:
        return self._lower.is_closing()

    def abort(self) -> None:
        self._lower.abort()

    def close(self) -> None:
        if self._ws.state is ConnectionState.OPEN and not self._lower.is_closing():
            with contextlib.suppress(LocalProtocolError):
                self._lower.write(self._ws.send(CloseConnection(code=1000)))
        self._lower.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._lower.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._lower.pause_reading()

    def resume_reading(self) -> None:
        self._lower.resume_reading()

    def is_reading(self) -> bool:
        return self._lower.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._lower.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._lower.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return False
