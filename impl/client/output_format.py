"""``mqttref sub -F``: mosquitto_sub's output format specifiers.

Supported: ``%t`` topic, ``%p`` payload, ``%q`` QoS, ``%r`` retain flag (0/1),
``%m`` message id (the packet id, 0 at QoS 0), ``%l`` payload length, ``%x``
and ``%X`` payload as lower/upper case hex, ``%U`` Unix time with
nanoseconds, ``%I`` ISO 8601 local time, ``%%`` a percent sign; the MQTT v5
properties ``%A`` topic alias, ``%C`` content type, ``%D`` correlation data,
``%E`` message expiry interval, ``%F`` payload format indicator, ``%P`` user
properties as ``key:value`` separated by spaces, ``%R`` response topic, ``%S``
subscription identifiers (each empty when absent); escapes
``\\n``, ``\\t``, ``\\r``, ``\\a``, ``\\e``, ``\\v``, ``\\0`` and ``\\\\``.
Anything else is reported as a bad format before connecting.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.client.events import Message

_ESCAPES = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "a": b"\a",
    "e": b"\x1b",
    "v": b"\v",
    "0": b"\0",
    "\\": b"\\",
}


def _unix_time(_: Message) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    return f"{now.timestamp():.9f}".encode()


def _iso_time(_: Message) -> bytes:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds").encode()


def _number(value: int | None) -> bytes:
    return b"" if value is None else str(value).encode()


def _text(value: str | None) -> bytes:
    return b"" if value is None else value.encode("utf-8")


def _user_properties(message: Message) -> bytes:
    pairs = message.properties.user_properties
    return " ".join(f"{key}:{value}" for key, value in pairs).encode("utf-8")


_SPECIFIERS: dict[str, Callable[[Message], bytes]] = {
    "A": lambda m: _number(m.properties.topic_alias),
    "C": lambda m: _text(m.properties.content_type),
    "D": lambda m: m.properties.correlation_data or b"",
    "E": lambda m: _number(m.properties.message_expiry_interval),
    "F": lambda m: _number(m.properties.payload_format_indicator),
    "P": _user_properties,
    "R": lambda m: _text(m.properties.response_topic),
    "S": lambda m: ",".join(map(str, m.properties.subscription_identifiers)).encode(),
    "t": lambda m: m.topic.encode("utf-8"),
    "p": lambda m: m.payload,
    "q": lambda m: str(int(m.qos)).encode(),
    "r": lambda m: b"1" if m.retain else b"0",
    "m": lambda m: str(m.packet_id or 0).encode(),
    "l": lambda m: str(len(m.payload)).encode(),
    "x": lambda m: m.payload.hex().encode(),
    "X": lambda m: m.payload.hex().upper().encode(),
    "U": _unix_time,
    "I": _iso_time,
    "%": lambda m: b"%",
}

Piece = bytes | Callable[[Message], bytes]


class OutputFormat:
    """A compiled ``-F`` format: parse once, render each message."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._pieces: list[Piece] = []
        literal = bytearray()
        index = 0
        while index < len(spec):
            char = spec[index]
            if char in "%\\" and index + 1 == len(spec):
                raise InvalidArgument(f"format {spec!r} ends with a lone {char!r}")
            if char == "%":
                key = spec[index + 1]
                if key not in _SPECIFIERS:
                    raise InvalidArgument(f"unknown format specifier %{key} in {spec!r}")
                if literal:
                    self._pieces.append(bytes(literal))
                    literal.clear()
                self._pieces.append(_SPECIFIERS[key])
                index += 2
            elif char == "\\":
                key = spec[index + 1]
                if key not in _ESCAPES:
                    raise InvalidArgument(f"unknown escape \\{key} in {spec!r}")
                literal += _ESCAPES[key]
                index += 2
            else:
                literal += char.encode("utf-8")
                index += 1
        if literal:
            self._pieces.append(bytes(literal))

    def render(self, message: Message) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(message) for p in self._pieces)
