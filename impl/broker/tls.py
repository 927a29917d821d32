"""TLS at the broker's edge, done by the broker itself (sans-IO, like wsproto).

The server context comes from the listener's keys (``listeners.server_context``,
built and checked when the configuration loads).

``TLSLayer`` is the event loop's protocol for one accepted connection of a
``tls`` or ``wss`` listener, for the connection's whole life. It runs an
``ssl.SSLObject`` over two ``ssl.MemoryBIO``\\ s: the TCP bytes read go into the
incoming BIO, the handshake and ``SSLObject.read`` turn them into MQTT (or
WebSocket) bytes for the connection's edge; what the edge writes goes through
``SSLObject.write`` into the outgoing BIO and on to the TCP transport. To the
edge (``SocketEdge``, ``IdentifiedEdge``, or ``WebSocketEdge``, which frames
inside TLS) the layer is its transport; the plain TCP listener does not pass
through here at all, and its path has no TLS work on it.

Why not the loop's TLS (``create_server(ssl=...)`` or ``loop.start_tls``):

- both drop a failed server-side handshake silently (``SSLError`` is an
  ``OSError``, logged only in debug mode), so an operator would never learn
  that clients fail against an expired certificate or a missing client
  certificate: here the failure is one log line with OpenSSL's reason,
  rate-limited by kind (``logtext``), and costs nothing after it (no session,
  no supervisor entry);
- uvloop's server-side ``start_tls`` loses bytes that arrive around the
  handshake (uvloop issue 707): a client connecting just after another closed
  often stalled in its handshake, until it gave up. Here every byte read goes
  into the incoming BIO, and the bytes decrypted in the read that completes the
  handshake (a CONNECT sent with TLS 1.3's Finished) go straight on to the
  edge, on any loop.

The handshake must end within ``connect_timeout``; the edge (and the core,
whose own ``connect_timeout`` then waits for CONNECT) is made only when it has
ended, with ``identity`` (the client certificate's Common Name, for
``use_identity_as_username``) set before the first MQTT byte reaches the core.
Decrypted reads are gathered into the supervisor's one read buffer and handed
to the edge as a read of its own (``buffer_updated``), so the edge's
back-pressure (a full read yields; ``pause_reading`` while the core waits) is
the same as on TCP; while the edge has reading paused, what is already
decrypted or buffered stays in the ``SSLObject``. Closing sends TLS
``close_notify`` before the TCP close.
"""

from __future__ import annotations

import asyncio
import contextlib
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

TLS_ERROR: Final = "TLS error"
"""The limiter's kind for a TLS record the broker cannot read after the handshake."""


def common_name(certificate: Any) -> str | None:
    """The Common Name of a client certificate checked in the handshake
    (``getpeercert()``'s form), if any."""
    if not certificate:
        return None
    for rdn in certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _reason(exc: BaseException | None) -> str:
    """What a log line says of a failed handshake: OpenSSL's reason, not its noise."""
    if exc is None:
        return "the client closed the connection during the handshake"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        # OpenSSL's reason, readable: PEER_DID_NOT_RETURN_A_CERTIFICATE, TLSV1_ALERT_UNKNOWN_CA
        return exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    if isinstance(exc, TimeoutError):
        return "no handshake within connect_timeout"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class TLSLayer(asyncio.BufferedProtocol):
    """One accepted connection of a TLS listener: the loop's protocol for the TCP
    transport, and the transport of the connection's edge once the handshake has
    ended (``edge`` is None until then)."""

    __slots__ = ("buffer", "edge", "incoming", "make_edge", "outgoing", "over", "paused",
                 "raw", "serving", "timeout", "timer", "tls", "use_identity")

    raw: asyncio.Transport
    """The TCP transport; set by ``connection_made``."""

    def __init__(self, context: ssl.SSLContext, make_edge: Callable[[], SocketEdge],
                 *, buffer: memoryview, timeout: float, use_identity: bool,
                 serving: Callable[[], bool]) -> None:
        self.make_edge = make_edge
        self.buffer = buffer
        """The supervisor's one read buffer (``Shared``): TCP reads land in it, and
        decrypted reads are gathered in it for the edge, which reads it as its own."""
        self.serving = serving
        """False once the broker is stopping: a handshake that ends then is dropped."""
        self.timeout = timeout
        self.use_identity = use_identity
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.edge: SocketEdge | None = None
        self.timer: asyncio.TimerHandle | None = None
        """The handshake's deadline (``connect_timeout``)."""
        self.over = False
        """Closed by the broker, or failed: nothing more is read or written."""
        self.paused = False
        """The edge has reading paused: nothing decrypted is handed to it."""

    # The event loop calls these (the TCP side) -------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._timed_out)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        """TCP bytes: the handshake's, or records to decrypt for the edge."""
        if self.over:
            return
        self.incoming.write(self.buffer[:nbytes])
        if self.edge is None:
            self._handshake()
        else:
            self._decrypt()
        if nbytes == len(self.buffer) and not self.paused and not self.over:
            # As SocketEdge does for a full read: let this batch's writes go out
            # before the next read, so that no busy publisher starves the others.
            self.raw.pause_reading()
            asyncio.get_running_loop().call_soon(self._resume_after_yield)

    def eof_received(self) -> bool:
        """The client ended TCP without (or after) TLS's close_notify."""
        edge = self.edge
        if edge is None:
            self._failed(None)
        elif not self.over:
            self.over = True
            edge.eof_received()
        return False  # the loop closes the TCP transport

    def connection_lost(self, exc: Exception | None) -> None:
        edge = self.edge
        if edge is None:
            self._failed(exc)
        else:
            self.over = True
            edge.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.edge is not None:
            self.edge.pause_writing()

    def resume_writing(self) -> None:
        if self.edge is not None:
            self.edge.resume_writing()

    # TLS ------------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._failed(exc)
            return
        self._flush()  # the server's last flight, TLS 1.3's session tickets
        self._cancel_timer()
        if not self.serving():
            self.over = True
            self.raw.abort()  # the broker is stopping: nothing to hand over
            return
        edge = self.edge = self.make_edge()
        if self.use_identity and isinstance(edge, IdentifiedEdge | WebSocketEdge):
            edge.identity = common_name(self.tls.getpeercert())
        edge.connection_made(cast(asyncio.Transport, self))
        self._decrypt()  # a CONNECT sent with the client's last handshake flight

    def _decrypt(self) -> None:
        """Hand the edge what the records read so far hold, gathered into reads of
        at most the buffer's size, while it reads (not paused, not closed)."""
        edge = self.edge
        assert edge is not None
        tls = self.tls
        buffer = self.buffer
        size = len(buffer)
        while not self.paused and not self.over:
            filled = 0
            end: ssl.SSLError | None = None
            while filled < size:
                try:
                    # With a buffer, read returns the count (typeshed says bytes).
                    got = cast(int, tls.read(size - filled, buffer[filled:]))
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLError as exc:  # close_notify (SSLZeroReturnError), or a bad record
                    end = exc
                    break
                if not got:
                    break
                filled += got
            if filled:
                edge.buffer_updated(filled)
            if end is not None:
                self._ended(end)
                return
            if filled < size:
                break
        self._flush()  # what reading produced: answers to key updates

    def _ended(self, exc: ssl.SSLError) -> None:
        """The client's close_notify (the end of the connection, as a TCP end is), or
        a record that does not decrypt (logged, rate-limited; the connection ends)."""
        if self.over:
            return
        if not isinstance(exc, ssl.SSLZeroReturnError):
            broker_log.warning(TLS_ERROR, "TLS error from %s: %s", self._peer(),
                               clip_text(_reason(exc)))
        edge = self.edge
        assert edge is not None
        edge.eof_received()
        self.close()  # our close_notify; ``connection_lost`` tells the edge

    def _flush(self) -> None:
        """What OpenSSL has to send (handshake flights, alerts, tickets), if it can go."""
        if self.outgoing.pending and not self.raw.is_closing():
            self.raw.write(self.outgoing.read())

    def _failed(self, exc: BaseException | None) -> None:
        """A handshake that did not end: one line (rate-limited), then nothing more."""
        if self.over:
            return
        self.over = True
        self._cancel_timer()
        broker_log.warning(HANDSHAKE_FAILED, "TLS handshake with %s on port %d failed: %s",
                           self._peer(), self._port(), clip_text(_reason(exc)))
        if isinstance(exc, TimeoutError):
            self.raw.abort()
        elif not self.raw.is_closing():
            self._flush()  # OpenSSL's alert, so the client learns why
            self.raw.close()

    def _timed_out(self) -> None:
        self.timer = None
        if self.edge is None:
            self._failed(TimeoutError())

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _resume_after_yield(self) -> None:
        if not self.paused and not self.over:
            self.raw.resume_reading()

    def _peer(self) -> str:
        info: Any = self.raw.get_extra_info("peername")
        return f"{info[0]}:{info[1]}" if isinstance(info, tuple) else str(info)

    def _port(self) -> int:
        local: Any = self.raw.get_extra_info("sockname")
        return local[1] if isinstance(local, tuple) else 0

    # The edge calls these (its transport) ----------------------------------------------

    def write(self, data: bytes) -> None:
        """MQTT (or WebSocket) bytes, encrypted, to the TCP transport."""
        if self.over:
            return
        tls = self.tls
        view = memoryview(data)
        try:
            while view:
                view = view[tls.write(view):]
        except ssl.SSLError as exc:
            broker_log.warning(TLS_ERROR, "TLS error writing to %s: %s", self._peer(),
                               clip_text(_reason(exc)))
            self.abort()
            return
        self.raw.write(self.outgoing.read())

    def close(self) -> None:
        """TLS's close_notify, then the TCP close (after what is buffered is written)."""
        if self.over:
            return
        self.over = True
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: the client's
            self.tls.unwrap()  # close_notify is not waited for
        self._flush()
        self.raw.close()

    def abort(self) -> None:
        self.over = True
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.over or self.raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peercert":
            return self.tls.getpeercert()
        if name == "ssl_object":
            return self.tls
        if name == "cipher":
            return self.tls.cipher()
        return self.raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        if not self.over:
            self.paused = True
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        """Read again: first what is already decrypted or buffered (on the next turn of
        the loop, never inside the core's call), then from TCP."""
        if not self.paused or self.over:
            return
        self.paused = False
        self.raw.resume_reading()
        if self.tls.pending() or self.incoming.pending:
            asyncio.get_running_loop().call_soon(self._decrypt_later)

    def _decrypt_later(self) -> None:
        if self.edge is not None and not self.paused and not self.over:
            self._decrypt()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()
