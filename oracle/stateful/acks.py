"""The acknowledgements the example's clients owe the server, and may send or withhold.

The driver enters one when the server's PUBLISH, PUBREC or PUBREL asks for it and
clears it when the client sends it, or when a CONNACK without a session ends what its
client owed; the machine's rules draw from what is owed (``Flight``). Packet ids are
the server's for its messages (``in``) and the client's own for the PUBRELs of its
QoS 2 messages (``out``): two spaces, kept apart.
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.packets import Packet
from mqttref.oracle.stateful.adapters import acknowledgement_owed


@attrs.frozen
class Flight:
    """An acknowledgement the client owes and may send or withhold.

    ``direction`` is ``in`` for a message the server sent (the client acks with
    PUBACK, PUBREC, PUBCOMP) and ``out`` for the client's own QoS 2 message
    (the client releases it with PUBREL): the two packet id spaces are separate.
    """

    client_id: str
    direction: str
    packet_id: int
    kind: str

    def __repr__(self) -> str:
        return f"Flight({self.kind} {self.client_id} #{self.packet_id})"


@attrs.define
class OwedAcks:
    """What each client owes, in the order it became owed."""

    owed: dict[tuple[str, str, int], str] = attrs.field(factory=dict)
    """(client id, direction, packet id) -> the acknowledgement the client owes."""

    def owe(self, client_id: str | None, packet: Packet) -> None:
        """``packet`` from the server asks ``client_id`` for an acknowledgement."""
        kind = acknowledgement_owed(packet)
        packet_id = getattr(packet, "packet_id", None)
        if kind is None or client_id is None or packet_id is None:
            return
        direction = "out" if kind == "PUBREL" else "in"
        self.owed[(client_id, direction, packet_id)] = kind

    def forget(self, client_id: str) -> None:
        """The client's session is new: it owes nothing of the old one."""
        for key in [k for k in self.owed if k[0] == client_id]:
            del self.owed[key]

    def sent(self, client_id: str, packet: Packet) -> None:
        """The client sent ``packet``: the acknowledgement it was is owed no more."""
        kind = type(packet).__name__.upper()
        for key, owed in list(self.owed.items()):
            same_id = key[2] == getattr(packet, "packet_id", None)
            if key[0] == client_id and owed == kind and same_id:
                del self.owed[key]

    def is_owed(self, flight: Flight) -> bool:
        return self.owed.get((flight.client_id, flight.direction, flight.packet_id)) == (
            flight.kind)

    def offered(self, connected: set[str | None]) -> list[Flight]:
        """What the ``connected`` clients owe and may send next: all but a PUBREL
        behind an older one of the same client (``Driver.owed_by_connected``)."""
        released: set[str] = set()
        offered = []
        for (c, d, p), kind in self.owed.items():  # in the order they became owed
            if c not in connected or (kind == "PUBREL" and c in released):
                continue
            if kind == "PUBREL":
                released.add(c)
            offered.append(Flight(c, d, p, kind))
        return sorted(offered, key=lambda f: (f.client_id, f.direction, f.packet_id))

    def of(self, client_id: str | None) -> list[Flight]:
        """Every acknowledgement ``client_id`` owes, in the order they became owed."""
        return [Flight(c, d, p, kind) for (c, d, p), kind in self.owed.items()
                if c == client_id]

    def releases_owed(self, client_id: str) -> int:
        """How many of the client's own QoS 2 messages await its PUBREL."""
        return sum(1 for (c, d, _) in self.owed if c == client_id and d == "out")


__all__ = ["Flight", "OwedAcks"]
