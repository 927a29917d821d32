"""The server as the receiver of a client's QoS 2 PUBLISH under MQTT 5.0: what a PUBREC
of 0x80 or more ends, and what message expiry does not end (4.3.3).

Theory of operation: ``QOS2_RECEIVER_5`` follows one Packet Identifier the client
uses for QoS 2 PUBLISHes, as the client sees the server's answers. 5.0 adds two things
to the 3.1.1 flow, both about when the identifier's exchange is over:

- a PUBREC with a Reason Code of 0x80 or more refuses the message and ends the
  exchange there: the server MUST treat the next PUBLISH with that identifier as a new
  Application Message [MQTT-4.3.3-9], which it answers afresh; once it accepted that
  one (PUBREC below 0x80) it knows the identifier, so the PUBREL gets PUBCOMP 0x00,
  never 0x92 (Packet Identifier not found), which would show it still held the
  refused exchange as the identifier's last word;
- a message the server accepted may expire before its PUBREL arrives: the server MUST
  continue the acknowledgement sequence even so [MQTT-4.3.3-13]: the PUBREL still gets
  its PUBCOMP, and as the identifier is one the server holds, with 0x00.

A PUBREL the server holds no exchange for may get 0x00 or 0x92 (3.7.2.1). The PUBCOMP
is owed from the PUBREL on [MQTT-4.3.3-11] (``obligations``).
"""

from __future__ import annotations

from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.obligations import Obligation

SUCCESS = 0x00
PACKET_IDENTIFIER_NOT_FOUND = 0x92


class Qos2ReceiverState5(StrEnum):
    FREE = "free"
    PUBREC_DUE = "pubrec_due"
    ACCEPTED = "accepted"
    PUBCOMP_DUE = "pubcomp_due"
    UNKNOWN_RELEASE = "unknown_release"


class Qos2ReceiverEvent5(StrEnum):
    PUBLISH = "publish"
    PUBREC_SUCCESS = "pubrec_success"
    PUBREC_ERROR = "pubrec_error"
    MESSAGE_EXPIRED = "message_expired"
    PUBREL = "pubrel"
    PUBCOMP_SUCCESS = "pubcomp_success"
    PUBCOMP_NOT_FOUND = "pubcomp_not_found"


R, RE = Qos2ReceiverState5, Qos2ReceiverEvent5

QOS2_RECEIVER_5 = Chart(
    name="qos2_receiver_5",
    title="QoS 2 receiver on the server (MQTT 5.0)",
    description="One Packet Identifier of a client's QoS 2 PUBLISHes, as the server answers "
    "them: a PUBREC of 0x80 or more ends the exchange, so the next PUBLISH is a new message; "
    "an accepted message that expires still gets its PUBCOMP.",
    states=states_of(
        Qos2ReceiverState5,
        {
            R.FREE: "no exchange for the identifier (none yet, completed, or refused)",
            R.PUBREC_DUE: "the client's PUBLISH is a new message; the server owes PUBREC",
            R.ACCEPTED: "PUBREC below 0x80 sent: the server owns the message",
            R.PUBCOMP_DUE: "the client released the message; the server owes PUBCOMP 0x00",
            R.UNKNOWN_RELEASE: "a PUBREL for no exchange; the server owes PUBCOMP",
        },
    ),
    events=events_of(
        Qos2ReceiverEvent5,
        {
            RE.PUBLISH: "the client sends a QoS 2 PUBLISH with the identifier",
            RE.PUBREC_SUCCESS: "the server sends PUBREC with a code below 0x80",
            RE.PUBREC_ERROR: "the server sends PUBREC with 0x80 or more",
            RE.MESSAGE_EXPIRED: "the message's Message Expiry Interval passes",
            RE.PUBREL: "the client sends PUBREL with the identifier",
            RE.PUBCOMP_SUCCESS: "the server sends PUBCOMP 0x00",
            RE.PUBCOMP_NOT_FOUND: "the server sends PUBCOMP 0x92 (Packet Identifier not found)",
        },
    ),
    initial=R.FREE,
    transitions=(
        Transition(R.FREE, RE.PUBLISH, R.PUBREC_DUE, ("MQTT-4.3.3-8", "MQTT-4.3.3-9")),
        Transition(R.PUBREC_DUE, RE.PUBREC_SUCCESS, R.ACCEPTED, ("MQTT-4.3.3-8",)),
        Transition(R.PUBREC_DUE, RE.PUBREC_ERROR, R.FREE, ("MQTT-4.3.3-9",)),
        Transition(R.PUBREC_DUE, RE.MESSAGE_EXPIRED, R.PUBREC_DUE, ("MQTT-4.3.3-13",)),
        Transition(R.ACCEPTED, RE.MESSAGE_EXPIRED, R.ACCEPTED, ("MQTT-4.3.3-13",)),
        Transition(R.ACCEPTED, RE.PUBREL, R.PUBCOMP_DUE, ("MQTT-4.3.3-11",)),
        Transition(R.PUBCOMP_DUE, RE.MESSAGE_EXPIRED, R.PUBCOMP_DUE, ("MQTT-4.3.3-13",)),
        Transition(R.PUBCOMP_DUE, RE.PUBCOMP_SUCCESS, R.FREE,
                   ("MQTT-4.3.3-11", "MQTT-4.3.3-12", "MQTT-4.3.3-13")),
        Transition(R.FREE, RE.PUBREL, R.UNKNOWN_RELEASE, ("MQTT-4.3.3-11",)),
        Transition(R.UNKNOWN_RELEASE, RE.PUBCOMP_SUCCESS, R.FREE, ("MQTT-3.7.2-1",)),
        Transition(R.UNKNOWN_RELEASE, RE.PUBCOMP_NOT_FOUND, R.FREE, ("MQTT-3.7.2-1",)),
    ),
    protocol="5.0",
)
"""A missing row is a violation: PUBCOMP 0x92 in ``pubcomp_due`` (the identifier is the
server's own), any server packet where nothing is owed."""

_CLIENT_EVENTS = frozenset({RE.PUBLISH, RE.PUBREL, RE.MESSAGE_EXPIRED})

_OWED: dict[Qos2ReceiverState5, tuple[str, tuple[str, ...]]] = {
    R.PUBREC_DUE: ("PUBREC", ("MQTT-4.3.3-8",)),
    R.PUBCOMP_DUE: ("PUBCOMP 0x00", ("MQTT-4.3.3-11",)),
    R.UNKNOWN_RELEASE: ("PUBCOMP", ("MQTT-4.3.3-11",)),
}
"""What the server owes in each state, and why."""


@attrs.define
class Qos2Receiver5:
    """``QOS2_RECEIVER_5`` for one Packet Identifier of one connection."""

    packet_id: int
    client: str = "client"
    state: str = R.FREE
    refused: bool = False
    """The exchange follows a PUBREC that refused a message (0x80 or more) with this
    identifier, and has not completed since."""
    expired: bool = False
    """The message in the exchange expired."""

    def publish(self) -> None:
        """The client sends a QoS 2 PUBLISH with the identifier (not a re-send within an
        exchange still open: that is 4.3.3-10's, not this chart's)."""
        if self.state != R.FREE:
            raise UsageError(f"PUBLISH {self.packet_id} while the exchange is {self.state}")
        self._fire(RE.PUBLISH, "PUBLISH")
        self.expired = False

    def message_expired(self) -> None:
        if self.state in (R.FREE, R.UNKNOWN_RELEASE):
            raise UsageError("no message of this identifier is held")
        self._fire(RE.MESSAGE_EXPIRED, "expiry")
        self.expired = True

    def pubrel(self) -> None:
        if self.state not in (R.FREE, R.ACCEPTED):
            raise UsageError(f"PUBREL {self.packet_id} while {self.state}")
        self._fire(RE.PUBREL, "PUBREL")

    def pubrec(self, code: int) -> None:
        event = RE.PUBREC_SUCCESS if code < 0x80 else RE.PUBREC_ERROR
        self._fire(event, f"PUBREC 0x{code:02X}")
        self.refused = self.refused or code >= 0x80

    def pubcomp(self, code: int) -> None:
        if code not in (SUCCESS, PACKET_IDENTIFIER_NOT_FOUND):
            raise UsageError("PUBCOMP has the codes 0x00 and 0x92 (3.7.2.1)")
        event = RE.PUBCOMP_SUCCESS if code == SUCCESS else RE.PUBCOMP_NOT_FOUND
        self._fire(event, f"PUBCOMP 0x{code:02X}")
        self.refused = False

    def obligations(self) -> list[Obligation]:
        owed = _OWED.get(R(self.state))
        if owed is None:
            return []
        what, refs = owed
        if self.state == R.PUBCOMP_DUE and self.expired:
            refs = (*refs, "MQTT-4.3.3-13")
        return [Obligation(self.client, f"{what} for {self.packet_id}", refs)]

    def _fire(self, event: str, arrived: str) -> None:
        try:
            row = QOS2_RECEIVER_5.fire(self.state, event)
        except NoTransition:
            if event in _CLIENT_EVENTS:
                raise UsageError(f"{arrived} from the client while {self.state}") from None
            raise Violation(self.client, f"{arrived} for {self.packet_id} while {self.state}",
                            refs=self._refs(event), allowed=self._allowed(),
                            arrived=arrived) from None
        self.state = row.target

    def _refs(self, event: str) -> tuple[str, ...]:
        if self.state == R.PUBCOMP_DUE and event == RE.PUBCOMP_NOT_FOUND:
            # The server holds this exchange: it accepted the PUBLISH that followed a
            # refusal as new [MQTT-4.3.3-9], or the message expired [MQTT-4.3.3-13].
            refs = ["MQTT-3.7.2-1"]
            if self.expired:
                refs.append("MQTT-4.3.3-13")
            if self.refused or not self.expired:
                refs.append("MQTT-4.3.3-9" if self.refused else "MQTT-4.3.3-11")
            return tuple(refs)
        return ("MQTT-4.3.3-8",) if self.state == R.PUBREC_DUE else ("MQTT-4.3.3-11",)

    def _allowed(self) -> tuple[str, ...]:
        return tuple(sorted(e for e in QOS2_RECEIVER_5.event_names
                            if e not in _CLIENT_EVENTS
                            and QOS2_RECEIVER_5.allows(self.state, e)))
