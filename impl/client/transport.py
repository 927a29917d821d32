"""The byte pipes under the client: TCP (with or without TLS) and WebSocket, one interface.

The sans-IO core speaks MQTT bytes and knows nothing of sockets; the asyncio
shell reads and writes those bytes through a ``Transport``. TLS is the
stdlib's (``asyncio.open_connection(ssl=...)``); WebSocket (MQTT chapter 6)
is a thin adapter around ``wsproto``, itself sans-IO:

- the opening handshake offers the subprotocol ``mqtt`` [MQTT-6.0.0-3] and
  an answer selecting anything else is refused [MQTT-6.0.0-4];
- MQTT bytes go out in binary frames of at most 64 KiB [MQTT-6.0.0-1]; a text
  frame from the server closes the connection (1003, unsupported data);
- frames are not packet boundaries [MQTT-6.0.0-2]: their payloads are joined
  into the byte stream the core reads;
- a ping is answered, a close frame is answered and ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from typing import Protocol

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

from mqttref.impl.client.errors import (
    BrokerUnreachable,
    ConnectionClosed,
    TLSHandshakeFailed,
    WebSocketRefused,
)

READ_SIZE = 65_536
MQTT_SUBPROTOCOL = "mqtt"
FRAME_SIZE = 65_536
"""The largest binary frame sent: servers bound frames (mqttref's ``max_frame_size``)."""
UNSUPPORTED_DATA = 1003
"""RFC 6455 7.4.1: the endpoint received data it cannot accept (a text frame)."""


class Transport(Protocol):
    """What the client shell needs from a connection: bytes in, bytes out, close."""

    async def read(self) -> bytes:
        """Some received bytes; ``b""`` once the peer ended the stream. Raises
        ``ConnectionClosed`` when the connection broke."""
        ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...


class StreamTransport:
    """TCP, or TLS over TCP: the stream is the MQTT byte stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(READ_SIZE)
        except OSError as exc:
            raise ConnectionClosed(f"connection lost: {_os_reason(exc)}") from exc

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def close(self) -> None:
        self._writer.close()


class WebSocketTransport(StreamTransport):
    """MQTT over a WebSocket over that stream (MQTT chapter 6)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._received = bytearray()
        self._ended = False

    async def handshake(self, host: str, path: str) -> None:
        """Ask for ``path`` with the ``mqtt`` subprotocol [MQTT-6.0.0-3]; wait for the answer."""
        request = Request(host=host, target=path, subprotocols=[MQTT_SUBPROTOCOL])
        self._writer.write(self._ws.send(request))
        refused: RejectConnection | None = None
        while True:
            data = await StreamTransport.read(self)
            if not data:
                detail = f"HTTP {refused.status_code}" if refused else "the server closed it"
                raise WebSocketRefused(f"WebSocket handshake for {path!r} failed: {detail}")
            self._receive(data)
            for event in self._ws.events():
                if isinstance(event, AcceptConnection):
                    if event.subprotocol != MQTT_SUBPROTOCOL:
                        raise WebSocketRefused(
                            "the server opened the WebSocket without the 'mqtt' "
                            f"subprotocol (it chose {event.subprotocol!r}) [MQTT-6.0.0-4]"
                        )
                    self._on_events(self._ws.events())
                    return
                if isinstance(event, RejectConnection):
                    refused = event
                    if not event.has_body:
                        raise WebSocketRefused(
                            f"WebSocket handshake for {path!r} refused: HTTP {event.status_code}"
                        )
                elif isinstance(event, RejectData) and event.body_finished and refused:
                    raise WebSocketRefused(
                        f"WebSocket handshake for {path!r} refused: HTTP {refused.status_code}"
                    )

    async def read(self) -> bytes:
        while not self._received:
            if self._ended:
                return b""
            data = await StreamTransport.read(self)
            if not data:
                return b""
            self._receive(data)
            self._on_events(self._ws.events())
        data = bytes(self._received)
        self._received.clear()
        return data

    def _receive(self, data: bytes) -> None:
        try:
            self._ws.receive_data(data)
        except RemoteProtocolError as exc:
            raise ConnectionClosed(f"the server broke the WebSocket protocol: {exc}") from exc

    def _on_events(self, events: Iterable[Event]) -> None:
        for event in events:
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, BytesMessage):
            self._received += event.data  # frames are not packets [MQTT-6.0.0-2]
        elif isinstance(event, TextMessage):
            self._send(CloseConnection(UNSUPPORTED_DATA, "MQTT needs binary frames"))
            raise ConnectionClosed(
                "the server sent a WebSocket text frame: MQTT is sent in binary frames "
                "[MQTT-6.0.0-1]"
            )
        elif isinstance(event, Ping):
            self._send(event.response())
        elif isinstance(event, CloseConnection):
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                self._send(event.response())
            self._ended = True

    def _send(self, event: Event) -> None:
        if not self._writer.is_closing():
            # LocalProtocolError: the WebSocket is already closing, nothing more may be sent.
            with contextlib.suppress(LocalProtocolError):
                self._writer.write(self._ws.send(event))

    def write(self, data: bytes) -> None:
        """MQTT bytes in binary frames [MQTT-6.0.0-1] of at most ``FRAME_SIZE`` bytes, which
        the frame limit of any listener allows (packets may span frames [MQTT-6.0.0-2]);
        nothing once the WebSocket closes."""
        for start in range(0, len(data), FRAME_SIZE):
            if self._ws.state is not ConnectionState.OPEN:
                return
            self._send(BytesMessage(data=data[start : start + FRAME_SIZE]))

    def close(self) -> None:
        if self._ws.state is ConnectionState.OPEN:
            self._send(CloseConnection(1000))
        super().close()


async def open_transport(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    websocket_path: str | None = None,
    timeout: float,
) -> Transport:
    """Connect (TCP, TLS handshake, WebSocket handshake) within ``timeout`` seconds.

    Failures are ``BrokerUnreachable`` with the address and the reason in words;
    a failed TLS handshake is ``TLSHandshakeFailed``, a refused WebSocket
    ``WebSocketRefused`` (both are ``BrokerUnreachable``).
    """
    where = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, ssl_handshake_timeout=timeout if tls else None
            )
            if websocket_path is None:
                return StreamTransport(reader, writer)
            transport = WebSocketTransport(reader, writer)
            try:
                await transport.handshake(f"{host}:{port}", websocket_path)
            except BaseException:
                transport.close()
                raise
            return transport
    except TimeoutError as exc:
        raise BrokerUnreachable(f"cannot connect to {where}: timed out") from exc
    except ConnectionClosed as exc:
        raise WebSocketRefused(f"WebSocket handshake with {where} failed: {exc}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise TLSHandshakeFailed(
            f"TLS handshake with {where} failed: the server's certificate was not accepted: "
            f"{exc.verify_message}"
        ) from exc
    except ssl.SSLError as exc:
        reason = (exc.reason or str(exc)).lower().replace("_", " ")
        hint = " (is it a TLS listener?)" if "wrong version number" in reason else ""
        raise TLSHandshakeFailed(f"TLS handshake with {where} failed: {reason}{hint}") from exc
    except ConnectionRefusedError as exc:
        raise BrokerUnreachable(f"cannot connect to {where}: connection refused") from exc
    except OSError as exc:
        raise BrokerUnreachable(f"cannot connect to {where}: {_os_reason(exc)}") from exc


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or str(exc)).lower().replace("_", " ")
    return exc.strerror or str(exc)
