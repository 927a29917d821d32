"""MQTT over WebSocket at the broker's edge (MQTT 3.1.1 and 5.0, chapter 6).

``WebSocketEdge`` is a ``SocketEdge`` whose reads pass through wsproto (the
sans-IO WebSocket of the h11 family) before the protocol core sees them, and
whose writes leave as binary frames: the core, the supervisor, the outbox and
the timers are the same objects as on plain TCP, and the TCP edge does no
WebSocket work at all (it is a different class).

- The opening handshake must offer the subprotocol ``mqtt`` [MQTT-6.0.0-3]; the
  answer selects ``mqtt`` [MQTT-6.0.0-4]. A request without it is refused with
  HTTP 400 and a line saying why; so is a request that is no WebSocket upgrade.
  Any path is accepted: the URI has no impact on MQTT (chapter 6).
- Only binary data frames carry MQTT: a text frame closes the WebSocket with
  1003 (unsupported data, RFC 6455 7.4.1) [MQTT-6.0.0-1].
- A frame may hold several packets or part of one [MQTT-6.0.0-2]: the payloads
  of one read are joined and fed to the core, which frames packets itself.
- A data frame beyond the listener's ``max_frame_size`` closes with 1009
  (message too big); frames are streamed, never buffered whole.
- A ping is answered with a pong; a close is answered and ends the connection,
  as the end of the TCP connection would (a will is published).

The core's ``connect_timeout`` runs from the TCP accept, so a client that never
finishes the WebSocket handshake is closed like one that never sends CONNECT.
Errors are logged once per kind and interval (``logtext.broker_log``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState as WSState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from mqttref.impl.broker.outbox import Outbox
from mqttref.impl.broker.ports import BrokerPorts
from mqttref.impl.broker.supervisor import ConnectionSupervisor
from mqttref.impl.broker.transport import SocketEdge
from mqttref.impl.logtext import broker_log, clip

SUBPROTOCOL: Final = "mqtt"
"""The WebSocket subprotocol of MQTT (6.1, IANA)."""


class FramedTransport:
    """What ``SocketEdge`` writes, sent as one binary frame per write; everything
    else is the TCP (or TLS) transport's. ``SocketEdge`` holds this as its
    ``transport``, so its write, close and back-pressure code serves both."""

    __slots__ = ("raw", "ws")

    def __init__(self, raw: asyncio.Transport, ws: WSConnection) -> None:
        self.raw = raw
        self.ws = ws

    def write(self, data: bytes) -> None:
        """MQTT bytes, in a binary frame [MQTT-6.0.0-1]; nothing once the WebSocket closes."""
        if self.ws.state is WSState.OPEN:
            self.raw.write(self.ws.send(BytesMessage(data=data)))

    def close(self) -> None:
        """The MQTT connection ends: a close frame (1000, normal), then the socket."""
        if self.ws.state is WSState.OPEN:
            self.raw.write(self.ws.send(CloseConnection(code=CloseReason.NORMAL_CLOSURE)))
        self.raw.close()

    def abort(self) -> None:
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()


class WebSocketEdge(SocketEdge):
    """One accepted connection of a ``ws`` or ``wss`` listener."""

    __slots__ = ("_frame_bytes", "identity", "max_frame_size", "raw", "ws")

    raw: asyncio.Transport
    """The TCP (or TLS) transport under the WebSocket; set by ``connection_made``."""

    def __init__(self, ports: BrokerPorts, supervisor: ConnectionSupervisor,
                 outbox: Outbox, *, max_frame_size: int) -> None:
        super().__init__(ports, supervisor, outbox)
        self.ws = WSConnection(ConnectionType.SERVER)
        self.max_frame_size = max_frame_size
        self._frame_bytes = 0
        """Bytes of the data frame being received, so far."""
        self.identity = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = raw = transport  # type: ignore[assignment]  # uvloop's is no subclass
        super().connection_made(FramedTransport(raw, self.ws))  # type: ignore[arg-type]

    def buffer_updated(self, nbytes: int) -> None:
        """One read: the WebSocket's events, and the MQTT bytes they carry to the core."""
        if self.core.is_closed or self._closed:
            return
        read_buffer = self.shared.supervisor.read_buffer
        data = self._unwrap(bytes(read_buffer[:nbytes]))
        if data and not self._closed:
            self.handle_read(data, full=nbytes == len(read_buffer))

    # The WebSocket ---------------------------------------------------------------

    def _unwrap(self, data: bytes) -> bytes:
        """Feed wsproto; answer the handshake, pings and closes; return the MQTT bytes."""
        ws = self.ws
        try:
            ws.receive_data(data)
        except RemoteProtocolError as exc:
            self._refuse(400, f"not a WebSocket upgrade: {exc}")
            return b""
        mqtt: list[bytes] = []
        for event in ws.events():
            if isinstance(event, BytesMessage):
                self._frame_bytes += len(event.data)
                if self._frame_bytes > self.max_frame_size:
                    self._fail(CloseReason.MESSAGE_TOO_BIG,
                               f"a data frame over max_frame_size ({self.max_frame_size} bytes)")
                    break
                if event.frame_finished:
                    self._frame_bytes = 0
                mqtt.append(bytes(event.data))
            elif isinstance(event, Request):
                if not self._handshake(event):
                    break
            elif isinstance(event, TextMessage):
                self._fail(CloseReason.UNSUPPORTED_DATA,
                           "a text frame: MQTT is sent in binary frames [MQTT-6.0.0-1]")
                break
            elif isinstance(event, Ping):
                self.raw.write(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._closed_by_peer(event)
                break
        return b"".join(mqtt)

    def _handshake(self, request: Request) -> bool:
        """Accept an upgrade offering ``mqtt`` [MQTT-6.0.0-3], answering with it
        [MQTT-6.0.0-4]; refuse any other. Any path (``request.target``) will do."""
        if SUBPROTOCOL not in request.subprotocols:
            offered = ", ".join(request.subprotocols) or "none"
            self._refuse(400, "the WebSocket subprotocol mqtt was not offered "
                              f"(offered: {clip(offered)}) [MQTT-6.0.0-3]")
            return False
        self.raw.write(self.ws.send(AcceptConnection(subprotocol=SUBPROTOCOL)))
        return True

    def _refuse(self, status: int, why: str) -> None:
        """An HTTP answer to a handshake that is refused, saying why; then close."""
        body = f"{why}\n".encode()
        ws = self.ws
        # After a request h11 could not parse, no answer can be sent: just close.
        with contextlib.suppress(LocalProtocolError, h11.LocalProtocolError):
            self.raw.write(ws.send(RejectConnection(
                status_code=status, has_body=True,
                headers=[(b"content-type", b"text/plain; charset=utf-8"),
                         (b"content-length", str(len(body)).encode())],
            )) + ws.send(RejectData(data=body)))
        broker_log.warning("websocket handshake refused",
                           "refused a WebSocket handshake from %s: %s", self.peer, why)
        self._closed = True
        self.raw.close()

    def _fail(self, code: int, why: str) -> None:
        """A bad frame: close the WebSocket with ``code`` and end the connection; the
        core learns it from ``connection_lost`` (the will, if any, is published)."""
        broker_log.warning("websocket protocol error", "closing %s: %s (WebSocket close %d)",
                           self.peer, why, code)
        if self.ws.state is WSState.OPEN:
            self.raw.write(self.ws.send(CloseConnection(code=code, reason=why[:100])))
        self._closed = True
        self.raw.close()

    def _closed_by_peer(self, event: CloseConnection) -> None:
        """The client's close frame (or wsproto's verdict on a malformed frame:
        1002, 1007): answer it, then end the connection."""
        if event.code not in (CloseReason.NORMAL_CLOSURE, CloseReason.GOING_AWAY):
            broker_log.warning("websocket protocol error", "closing %s: WebSocket close %d %s",
                               self.peer, event.code, clip(event.reason))
        if self.ws.state is WSState.REMOTE_CLOSING:
            self.raw.write(self.ws.send(event.response()))
        elif self.ws.state is WSState.OPEN:  # wsproto found the frame malformed
            self.raw.write(self.ws.send(CloseConnection(code=event.code,
                                                        reason=(event.reason or "")[:100])))
        self._closed = True
        self.raw.close()
