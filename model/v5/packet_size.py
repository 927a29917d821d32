"""Maximum Packet Size (3.1.2.11.4, 3.2.2.3.6): one packet against the receiver's limit.

Theory of operation: in CONNECT the Client may give the largest packet it will
take, its Maximum Packet Size (the whole packet, fixed header included; absent:
only the protocol's own limit; 0 is a Protocol Error). The Server MUST NOT send
it a larger packet [MQTT-3.1.2-24]. A packet with a Reason String or User
Properties must leave them out rather than grow past the limit (each packet's
own statement: [MQTT-3.2.2-19] [MQTT-3.2.2-20] for CONNACK, [MQTT-3.4.2-2]
[MQTT-3.4.2-3] for PUBACK, and so on to AUTH); they are optional anyway, so
leaving them out is always allowed. A PUBLISH has nothing to leave out (its
User Properties are the message's, forwarded unaltered [MQTT-3.3.2-17]): one
that is too large is discarded, and the Server behaves as if it had completed
sending it [MQTT-3.1.2-25]. The same sentence covers any packet still too large
bare; the specification says nothing more of, say, a SUBACK for many filters.
In CONNACK the Server may give its own limit the same way; a Client packet
above it is a Protocol Error whose code is 0x95 (Packet too large), and the
Server MUST close on it [MQTT-4.13.1-1] (the Client broke [MQTT-3.2.2-15]).

``PACKET_SIZE_5`` is the life of one packet: ``composed`` as the sender would
send it whole, ``trimmed`` of its Reason String and User Properties, then
``sent``, ``discarded``, or ``oversized`` (sent above the limit: the sender's
fault; the receiver closes, DISCONNECT 0x95 first). ``PacketSizeLimit`` runs it
for one direction of one connection: for the Server's packets it lists the
allowed outcomes and judges what arrived; for the Client's it gives the
reactions allowed to the Server. Whether a packet that was allowed to arrive
but did not was owed is the other charts' business (a SUBACK [MQTT-3.8.4-1],
a message to a subscriber): only the size rules are judged here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5.reactions import Reactions, protocol_error

Side = Literal["server", "client"]

PACKET_TOO_LARGE = 0x95
PROTOCOL_LIMIT = 1 + 4 + 268_435_455
"""The largest packet the encoding allows: a type byte, four bytes of Remaining
Length, and the largest Remaining Length (1.5.5, 2.1.4)."""

PROBLEM_INFORMATION = {
    "CONNACK": ("MQTT-3.2.2-19", "MQTT-3.2.2-20"),
    "PUBACK": ("MQTT-3.4.2-2", "MQTT-3.4.2-3"),
    "PUBREC": ("MQTT-3.5.2-2", "MQTT-3.5.2-3"),
    "PUBREL": ("MQTT-3.6.2-2", "MQTT-3.6.2-3"),
    "PUBCOMP": ("MQTT-3.7.2-2", "MQTT-3.7.2-3"),
    "SUBACK": ("MQTT-3.9.2-1", "MQTT-3.9.2-2"),
    "UNSUBACK": ("MQTT-3.11.2-1", "MQTT-3.11.2-2"),
    "DISCONNECT": ("MQTT-3.14.2-3", "MQTT-3.14.2-4"),
    "AUTH": ("MQTT-3.15.2-2", "MQTT-3.15.2-3"),
}
"""The packets a Server sends that may carry a Reason String and User Properties,
with the statements that make it leave them out rather than pass the limit."""

SERVER_PACKETS = frozenset({*PROBLEM_INFORMATION, "PUBLISH", "PINGRESP"})
_ALL_PROBLEM_REFS = tuple(ref for pair in PROBLEM_INFORMATION.values() for ref in pair)


class SizeState(StrEnum):
    COMPOSED = "composed"
    TRIMMED = "trimmed"
    SENT = "sent"
    DISCARDED = "discarded"
    OVERSIZED = "oversized"
    CLOSED = "closed"


class SizeEvent(StrEnum):
    LEAVE_OUT = "leave_out"
    SEND = "send"
    DISCARD = "discard"
    RECEIVER_CLOSES = "receiver_closes"


class SizeOutcome(StrEnum):
    """What may become of one packet the Server has for a Client."""

    SEND = "send"
    SEND_TRIMMED = "send_trimmed"
    DISCARD = "discard"


Z, ZE = SizeState, SizeEvent
_SEND = ("MQTT-3.1.2-24", "MQTT-3.2.2-15")

PACKET_SIZE_5 = Chart(
    name="packet_size_5",
    title="Maximum Packet Size (MQTT 5.0)",
    description="One packet against the receiver's Maximum Packet Size (3.1.2.11.4, "
    "3.2.2.3.6): sent if it fits, else first its Reason String and User Properties "
    "left out, else discarded (a PUBLISH as if sent); one sent above the limit is the "
    "sender's fault, and the receiver closes (DISCONNECT 0x95 first).",
    states=states_of(
        SizeState,
        {
            Z.COMPOSED: "the packet as the sender would send it whole",
            Z.TRIMMED: "its Reason String and User Properties (or some) left out",
            Z.SENT: "sent within the receiver's Maximum Packet Size",
            Z.DISCARDED: "not sent: too large even bare (a PUBLISH counts as sent)",
            Z.OVERSIZED: "sent above the receiver's Maximum Packet Size: the receiver "
            "closes, DISCONNECT 0x95 (Packet too large) first",
            Z.CLOSED: "the receiver closed the Network Connection",
        },
        finals=[Z.SENT, Z.DISCARDED, Z.CLOSED],
    ),
    events=events_of(
        SizeEvent,
        {
            ZE.LEAVE_OUT: "the sender leaves out the Reason String and User Properties",
            ZE.SEND: "the sender sends the packet",
            ZE.DISCARD: "the sender drops the packet unsent",
            ZE.RECEIVER_CLOSES: "the receiver closes the Network Connection",
        },
    ),
    initial=Z.COMPOSED,
    guards=("within_maximum", "above_maximum", "problem_information", "cannot_fit"),
    protocol="5.0",
    transitions=(
        Transition(Z.COMPOSED, ZE.SEND, Z.SENT, _SEND, "within_maximum"),
        Transition(Z.COMPOSED, ZE.SEND, Z.OVERSIZED, _SEND, "above_maximum"),
        Transition(Z.COMPOSED, ZE.LEAVE_OUT, Z.TRIMMED, _ALL_PROBLEM_REFS, "problem_information"),
        Transition(Z.TRIMMED, ZE.SEND, Z.SENT, _SEND, "within_maximum"),
        Transition(Z.TRIMMED, ZE.SEND, Z.OVERSIZED, _SEND, "above_maximum"),
        Transition(Z.COMPOSED, ZE.DISCARD, Z.DISCARDED, ("MQTT-3.1.2-25",), "cannot_fit"),
        Transition(Z.TRIMMED, ZE.DISCARD, Z.DISCARDED, ("MQTT-3.1.2-25",), "cannot_fit"),
        Transition(Z.OVERSIZED, ZE.RECEIVER_CLOSES, Z.CLOSED, ("MQTT-4.13.1-1",)),
    ),
)


def maximum_packet_size(value: int | None) -> int:
    """The limit a CONNECT or CONNACK Maximum Packet Size stands for."""
    if value is None:
        return PROTOCOL_LIMIT
    if value < 1:
        raise UsageError(f"Maximum Packet Size {value}: 0 is a Protocol Error (3.1.2.11.4)")
    return min(value, PROTOCOL_LIMIT)


@attrs.frozen
class _Packet:
    """The sizes the guards look at: ``size`` now, ``bare`` with nothing left to leave out."""

    kind: str
    size: int
    bare: int


@attrs.frozen
class PacketSizeLimit:
    """The receiver's Maximum Packet Size for one direction of one connection."""

    maximum: int = attrs.field(converter=maximum_packet_size)
    sender: Side
    client: str = "?"

    @classmethod
    def server_to_client(cls, client_maximum: int | None, client: str = "?") -> PacketSizeLimit:
        """The limit of the Server's packets: the Client's CONNECT Maximum Packet Size."""
        return cls(client_maximum, "server", client)

    @classmethod
    def client_to_server(cls, server_maximum: int | None, client: str = "?") -> PacketSizeLimit:
        """The limit of a Client's packets: the Server's CONNACK Maximum Packet Size."""
        return cls(server_maximum, "client", client)

    def _holds(self, packet: _Packet) -> dict[str, bool]:
        return {
            "within_maximum": packet.size <= self.maximum,
            "above_maximum": packet.size > self.maximum,
            "problem_information": packet.kind in PROBLEM_INFORMATION and packet.bare < packet.size,
            "cannot_fit": packet.bare > self.maximum,
        }

    def _allows(self, state: str, event: SizeEvent, packet: _Packet) -> str | None:
        """The target the chart gives ``event`` from ``state``, if any."""
        holds = self._holds(packet)
        if not PACKET_SIZE_5.allows(state, event, holds.__getitem__):
            return None
        return PACKET_SIZE_5.fire(state, event, holds.__getitem__).target

    def _server_packet(self, kind: str, size: int, bare: int | None) -> _Packet:
        if self.sender != "server":
            raise UsageError("this limit is the Server's; a Client's packet goes to received()")
        if kind not in SERVER_PACKETS:
            raise UsageError(f"a Server sends no {kind} packet (2.1.2)")
        bare = size if bare is None or kind not in PROBLEM_INFORMATION else bare
        if not 2 <= bare <= size:
            raise UsageError(f"sizes {size} (whole) and {bare} (bare) are no packet's")
        return _Packet(kind, size, bare)

    def outcomes(
        self, kind: str, size: int, bare_size: int | None = None
    ) -> frozenset[SizeOutcome]:
        """What may become of a Server packet of ``size`` bytes whole, ``bare_size``
        with its Reason String and User Properties left out."""
        packet = self._server_packet(kind, size, bare_size)
        found: set[SizeOutcome] = set()
        if self._allows(Z.COMPOSED, ZE.SEND, packet) == Z.SENT:
            found.add(SizeOutcome.SEND)
        if self._allows(Z.COMPOSED, ZE.LEAVE_OUT, packet) == Z.TRIMMED and self._allows(
            Z.TRIMMED, ZE.SEND, _Packet(kind, packet.bare, packet.bare)
        ) == Z.SENT:
            found.add(SizeOutcome.SEND_TRIMMED)
        if self._allows(Z.COMPOSED, ZE.DISCARD, packet) == Z.DISCARDED:
            found.add(SizeOutcome.DISCARD)
        return frozenset(found)

    def sent(self, kind: str, size: int, *, problem_information: bool = False) -> None:
        """A Server packet of ``size`` bytes arrived; ``problem_information``: it carried
        a Reason String or User Properties. Raises ``Violation`` above the limit."""
        packet = self._server_packet(kind, size, None)
        if self._allows(Z.COMPOSED, ZE.SEND, packet) != Z.OVERSIZED:
            return
        extra = problem_information and kind in PROBLEM_INFORMATION
        raise Violation(
            self.client,
            f"the Server sent a {kind} of {size} bytes, above the Client's Maximum Packet "
            f"Size ({self.maximum})"
            + (": its Reason String and User Properties had to be left out first" if extra
               else ""),
            refs=("MQTT-3.1.2-24", *(PROBLEM_INFORMATION[kind] if extra else ())),
            allowed=[f"a {kind} of at most {self.maximum} bytes",
                     "no packet (discarded, if too large even bare) [MQTT-3.1.2-25]"],
            arrived=f"{kind} of {size} bytes",
        )

    def received(self, size: int) -> Reactions | None:
        """A Client packet of ``size`` bytes: None within the Server's limit, else the
        reactions allowed to the Server [MQTT-4.13.1-1]."""
        if self.sender != "client":
            raise UsageError("this limit is the Client's; the Server's packets go to sent()")
        packet = _Packet("", size, size)
        if self._allows(Z.COMPOSED, ZE.SEND, packet) != Z.OVERSIZED:
            return None
        return protocol_error(
            PACKET_TOO_LARGE,
            f"was {size} bytes, above the Server's Maximum Packet Size ({self.maximum}) "
            "[MQTT-3.2.2-15]",
        )
