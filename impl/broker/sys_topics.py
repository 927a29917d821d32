"""The broker's own status under ``$SYS/broker/...``, as mosquitto publishes it.

Theory of operation. Every ``sys_interval`` seconds (``Config``; 0: never) the
broker takes a ``BrokerStatus`` snapshot of its counts (``status_of``) and asks its
``SysTopics`` what to publish: the ``(topic, payload)`` pairs whose payload changed
since the last time, so the version goes out once and a quiet broker publishes
little more than its uptime. The broker routes each pair as a QoS 0 message of
its own (no client session sends it) and makes it its topic's retained message, so
a client that subscribes later gets the current values at once [MQTT-3.3.1-6]; read
access is checked per subscriber at delivery like any message (``security.py``).
They are this run's status, so they are not written to the store.

The topic names and payloads are mosquitto's where the meaning is the same
(mosquitto(8), "BROKER STATUS"): numbers in decimal ASCII, ``$SYS/broker/uptime``
as ``N seconds``, ``$SYS/broker/version`` as ``mqttref version X``. Nothing here
does I/O or reads a clock: the caller passes the counts and the time.

Topics starting with ``$`` are not matched by a filter starting with ``#`` or ``+``
[MQTT-4.7.2-1] (``matching.py``), so a ``#`` subscriber sees none of these; and a
client may not publish into the ``$SYS`` tree (``is_sys_topic``, enforced in
``inbound_publish``), so the values are the broker's alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from mqttref.impl.broker.session import Session

SYS_ROOT: Final = "$SYS"
"""The broker's own topic tree (4.7.2: topics starting with ``$`` are the server's)."""

SYS_PREFIX: Final = "$SYS/"


def is_sys_topic(topic: str) -> bool:
    """Whether ``topic`` is in the ``$SYS`` tree: ``$SYS`` itself or below it. A client's
    PUBLISH there is refused as not authorized, as mosquitto refuses it (it answers
    a 5.0 client's with 0x87), so no client can overwrite the broker's values."""
    return topic == SYS_ROOT or topic.startswith(SYS_PREFIX)


@attrs.frozen
class BrokerStatus:
    """What the broker counts, at one instant."""

    uptime: float
    """Seconds since the broker started."""
    clients_connected: int
    """Sessions with a connection now."""
    clients_disconnected: int
    """Persistent sessions kept without a connection."""
    clients_maximum: int
    """The most sessions seen connected at once (sampled at each update)."""
    bytes_received: int
    """MQTT bytes received since start (after TLS or WebSocket unwrapping)."""
    bytes_sent: int
    """MQTT bytes written since start."""
    messages_sent: int
    """MQTT packets of any type written since start."""
    messages_received: int
    """Well-formed MQTT packets of any type read since start."""
    subscriptions: int
    """Subscriptions of every session, shared ones included."""
    retained: int
    """Retained messages held."""
    store_messages: int
    """Messages held: the retained ones and those queued for sessions."""
    store_bytes: int
    """Bytes those hold: retained payloads, and what queued messages count against
    ``memory_high_water`` (payload, topic and a fixed overhead)."""

    @property
    def clients_total(self) -> int:
        """Every session, connected or not (mosquitto's ``clients/total``)."""
        return self.clients_connected + self.clients_disconnected


def payloads(status: BrokerStatus, version: str) -> dict[str, bytes]:
    """Each ``$SYS`` topic with its payload for ``status``, by mosquitto's names."""
    values: dict[str, int | str] = {
        "version": f"mqttref version {version}",
        "uptime": f"{int(status.uptime)} seconds",
        "clients/connected": status.clients_connected,
        "clients/disconnected": status.clients_disconnected,
        "clients/total": status.clients_total,
        "clients/maximum": status.clients_maximum,
        "bytes/received": status.bytes_received,
        "bytes/sent": status.bytes_sent,
        "messages/received": status.messages_received,
        "messages/sent": status.messages_sent,
        "subscriptions/count": status.subscriptions,
        "retained messages/count": status.retained,
        "store/messages/count": status.store_messages,
        "store/messages/bytes": status.store_bytes,
    }
    return {f"{SYS_PREFIX}broker/{name}": str(value).encode("ascii")
            for name, value in values.items()}


@attrs.define
class SysTopics:
    """What was last published under ``$SYS``, to publish only what changed."""

    version: str
    last: dict[str, bytes] = attrs.field(factory=dict)
    """Topic -> the payload published last."""

    def due(self, status: BrokerStatus) -> list[tuple[str, bytes]]:
        """The ``(topic, payload)`` pairs to publish now: those whose payload differs
        from the last one published (all of them the first time). They are recorded
        as published."""
        changed = [(topic, payload) for topic, payload in payloads(status, self.version).items()
                   if self.last.get(topic) != payload]
        self.last.update(changed)
        return changed


@attrs.define
class ClientsMaximum:
    """The most clients connected at once, sampled at each update (as mosquitto's
    ``clients/maximum`` was documented: short-lived connections may be missed)."""

    value: int = 0

    def sample(self, connected: int) -> int:
        self.value = max(self.value, connected)
        return self.value


def status_of(
    sessions: Iterable[Session], *, uptime: float, maximum: ClientsMaximum,
    retained: Iterable[int], queued_bytes: int, bytes_received: int, bytes_sent: int,
    messages_sent: int, messages_received: int,
) -> BrokerStatus:
    """A snapshot from the session table's sessions and the broker's counts.

    ``retained`` is the payload size of each retained message. One pass over the
    sessions: this runs once per ``sys_interval``, never per packet."""
    connected = disconnected = subscriptions = queued = 0
    for session in sessions:
        if session.connection is None:
            disconnected += 1
        else:
            connected += 1
        subscriptions += len(session.subscriptions)
        if session.queued_bytes:  # ``queue`` would make an empty deque for an idle one
            queued += len(session.queue)
    sizes = list(retained)
    return BrokerStatus(
        uptime=uptime,
        clients_connected=connected,
        clients_disconnected=disconnected,
        clients_maximum=maximum.sample(connected),
        bytes_received=bytes_received,
        bytes_sent=bytes_sent,
        messages_sent=messages_sent,
        messages_received=messages_received,
        subscriptions=subscriptions,
        retained=len(sizes),
        store_messages=len(sizes) + queued,
        store_bytes=sum(sizes) + queued_bytes,
    )
