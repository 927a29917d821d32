"""TLS at the broker's edge: the handshake.

The server context comes from the listener's keys (``listeners.server_context``,
built and checked when the configuration loads).

Why the handshake runs here and not in ``create_server(ssl=...)``: asyncio
(and uvloop) drop a failed server-side handshake silently (``SSLError`` is an
``OSError``, logged only in debug mode), so an operator would never learn that
clients fail against an expired certificate or a missing client certificate.
``TLSHandshake`` accepts the TCP connection, runs ``loop.start_tls`` with the
handshake bounded by ``connect_timeout``, and only then hands the TLS
transport to the connection's edge (``SocketEdge`` or ``WebSocketEdge``). A
failed handshake costs the broker nothing after it: no session, no
supervisor entry, one log line, rate-limited by kind (``logtext``). The plain
TCP listener does not pass through here at all.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, Final, cast

from mqttref.impl.broker.transport import IdentifiedEdge, SocketEdge
from mqttref.impl.broker.websocket import WebSocketEdge
from mqttref.impl.logtext import broker_log, clip_text

log = logging.getLogger("mqttref.broker")

HANDSHAKE_FAILED: Final = "TLS handshake failed"
"""The limiter's kind for failed handshakes (any client can fail one at will)."""


def common_name(transport: asyncio.BaseTransport) -> str | None:
    """The Common Name of the client certificate checked in the handshake, if any."""
    certificate: Any = transport.get_extra_info("peercert")
    if not certificate:
        return None
    for rdn in certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _reason(exc: BaseException) -> str:
    """What a log line says of a failed handshake: OpenSSL's reason, not its noise."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        # OpenSSL's reason, readable: PEER_DID_NOT_RETURN_A_CERTIFICATE, TLSV1_ALERT_UNKNOWN_CA
        return exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    if isinstance(exc, TimeoutError):
        return "no handshake within connect_timeout"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_HANDSHAKES: Final[set[asyncio.Task[None]]] = set()
"""Handshakes in progress (the loop keeps only weak references to tasks)."""


class TLSHandshake(asyncio.Protocol):
    """One accepted TCP connection of a TLS listener, until its handshake ends.

    It is the application protocol of the TLS transport while the handshake runs,
    and until its task has made the edge and handed the transport over: bytes the
    client sent with its last handshake flight (a CONNECT right after TLS 1.3's
    Finished) arrive before that, and are kept for the edge."""

    __slots__ = ("context", "early", "ended", "make_edge", "serving", "timeout",
                 "use_identity")

    def __init__(self, context: ssl.SSLContext, make_edge: Callable[[], SocketEdge],
                 *, timeout: float, use_identity: bool, serving: Callable[[], bool]) -> None:
        self.context = context
        self.make_edge = make_edge
        self.serving = serving
        """False once the broker is stopping: a handshake that ends then is dropped."""
        self.timeout = timeout
        self.use_identity = use_identity
        self.early: list[bytes] = []
        """Bytes decrypted before the edge took over."""
        self.ended = False
        """The client closed (or the connection was lost) before the edge took over."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)
        tcp.pause_reading()  # the ClientHello is start_tls's to read
        task = asyncio.get_running_loop().create_task(self._handshake(tcp))
        _HANDSHAKES.add(task)
        task.add_done_callback(_HANDSHAKES.discard)

    def data_received(self, data: bytes) -> None:
        self.early.append(data)

    def eof_received(self) -> bool:
        self.ended = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Lost during the handshake (``start_tls`` fails, and says so) or just after."""
        self.ended = True

    async def _handshake(self, tcp: asyncio.Transport) -> None:
        try:
            secure = await asyncio.get_running_loop().start_tls(
                tcp, self, self.context, server_side=True,
                ssl_handshake_timeout=self.timeout,
            )
        except (OSError, TimeoutError, RuntimeError, ssl.SSLError, ConnectionError) as exc:
            info: Any = tcp.get_extra_info("peername")
            peer = f"{info[0]}:{info[1]}" if isinstance(info, tuple) else str(info)
            local: Any = tcp.get_extra_info("sockname")
            port = local[1] if isinstance(local, tuple) else 0
            broker_log.warning(HANDSHAKE_FAILED, "TLS handshake with %s on port %d failed: %s",
                               peer, port, clip_text(_reason(exc)))
            tcp.abort()
            return
        if secure is None or self.ended or not self.serving():
            tcp.abort()  # gone at once, or the broker stopped meanwhile: nothing to hand over
            return
        edge = self.make_edge()
        if self.use_identity and isinstance(edge, IdentifiedEdge | WebSocketEdge):
            edge.identity = common_name(secure)
        secure.set_protocol(edge)
        edge.connection_made(secure)
        for data in self.early:
            _feed(edge, data)
        self.early.clear()


def _feed(edge: SocketEdge, data: bytes) -> None:
    """Hand ``data`` to the edge as the loop would, one buffer-full at a time."""
    view = memoryview(data)
    while view and not edge.core.is_closed:
        buffer = edge.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        edge.buffer_updated(size)
        view = view[size:]
