"""The shared record of one check: what every client sent and received, with times.

A failing verdict prints the ``Trace``; ``describe`` gives each packet a short readable
form for it (with its 5.0 properties when it has any).
"""

from __future__ import annotations

import time

import attrs

from mqttref.impl.codec.packets import ConnAck, Connect, Packet, Publish, Subscribe, Subscription


def describe(packet: Packet) -> str:
    """A short readable form of a packet for traces, with its 5.0 properties when it has any."""
    text = _describe(packet)
    properties = getattr(packet, "properties", None)
    if properties is None or not attrs.asdict(properties, recurse=False):
        return text
    shown = {key: value for key, value in attrs.asdict(properties, recurse=False).items()
             if value not in (None, ())}
    if not shown:
        return text
    return text + " {" + ", ".join(f"{key}={value!r}" for key, value in shown.items()) + "}"


def _options(sub: Subscription) -> str:
    """A subscription's 5.0 options, when any is set (3.8.3.1)."""
    parts = [f"nl={int(sub.no_local)}" if sub.no_local else "",
             f"rap={int(sub.retain_as_published)}" if sub.retain_as_published else "",
             f"rh={sub.retain_handling}" if sub.retain_handling else ""]
    return "".join(f" {part}" for part in parts if part)


def _describe(packet: Packet) -> str:
    if isinstance(packet, Publish):
        payload = packet.payload if len(packet.payload) <= 24 else packet.payload[:24] + b"..."
        pid = f" id={packet.packet_id}" if packet.packet_id is not None else ""
        return (
            f"PUBLISH {packet.topic!r} qos={int(packet.qos)} retain={int(packet.retain)}"
            f" dup={int(packet.dup)}{pid} payload={payload!r}"
        )
    if isinstance(packet, Connect):
        will = ""
        if packet.will is not None:
            w = packet.will
            will = f" will={w.topic!r}/qos={int(w.qos)}/retain={int(w.retain)}"
        user = f" user={packet.username!r}" if packet.username is not None else ""
        return (
            f"CONNECT id={packet.client_id!r} clean={int(packet.clean_session)}"
            f" keepalive={packet.keep_alive}{will}{user}"
        )
    if isinstance(packet, Subscribe):
        pairs = ", ".join(f"{sub.topic_filter!r} qos={int(sub.qos)}{_options(sub)}"
                          for sub in packet.subscriptions)
        return f"SUBSCRIBE id={packet.packet_id} [{pairs}]"
    if isinstance(packet, ConnAck):
        present = int(packet.session_present)
        return f"CONNACK rc=0x{packet.return_code:02X} session_present={present}"
    fields = attrs.asdict(packet, recurse=False)
    fields.pop("properties", None)
    if not fields.get("reason_codes", True):
        fields.pop("reason_codes")
    if fields.get("reason_code") == 0:
        fields.pop("reason_code")
    inner = " ".join(f"{key}={value!r}" for key, value in fields.items())
    return f"{packet.packet_type.name} {inner}".rstrip()


class Trace:
    """What every client of one check sent and received, with times."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.lines: list[str] = []
        self.published: set[bytes] = set()
        """Every payload the check's clients published or gave as a will: what a
        delivery may carry, so that one carrying two more bytes is recognised."""

    def add(self, actor: str, arrow: str, text: str) -> None:
        elapsed = time.monotonic() - self._start
        self.lines.append(f"{elapsed:7.3f}s {actor:>6} {arrow} {text}")

    def note(self, text: str) -> None:
        self.add("oracle", "::", text)

