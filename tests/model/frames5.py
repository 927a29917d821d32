"""Building MQTT 5.0 frames by hand, and a socket that hands back whole frames: for the
tests of ``model/v5/frames.py``, which must not lean on the codec under test."""

from __future__ import annotations

import socket
import time

CLOSED = b""
"""What ``WireClient.frames`` lists when the server closed the connection."""


def vbi(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def s(text: str | bytes) -> bytes:
    """A UTF-8 Encoded String (or Binary Data): two length bytes, then the bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return vbi(len(body)) + body


def frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + vbi(len(body)) + body


def connect(client_id: str = "c1", *, flags: int = 0x02, name: str = "MQTT",
            properties: bytes = b"\x00") -> bytes:
    return frame(0x10, s(name) + b"\x05" + bytes([flags]) + b"\x00\x3c" + properties
                 + s(client_id))


class WireClient:
    """One TCP connection: raw bytes out, whole frames back."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), 5.0)
        self.buffer = b""
        self.closed = False

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _frame(self) -> bytes | None:
        if len(self.buffer) < 2:
            return None
        length, shift, at = 0, 0, 1
        while True:
            if at >= len(self.buffer):
                return None
            byte = self.buffer[at]
            length += (byte & 0x7F) << shift
            at += 1
            if not byte & 0x80 or at > 4:
                break
            shift += 7
        if len(self.buffer) < at + length:
            return None
        whole, self.buffer = self.buffer[:at + length], self.buffer[at + length:]
        return whole

    def next(self, timeout: float = 5.0) -> bytes:
        """The next whole frame, ``CLOSED`` once the server closed, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            whole = self._frame()
            if whole is not None:
                return whole
            if self.closed:
                return CLOSED
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                data = b""
            if not data:
                self.closed = True
            self.buffer += data
