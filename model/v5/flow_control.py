"""Flow control (4.9): the receiver's Receive Maximum as the sender's send quota.

Theory of operation: in CONNECT and CONNACK each side says how many QoS 1 and
QoS 2 PUBLISHes it will process at once, its Receive Maximum (65,535 when
absent; 0 is a Protocol Error, 3.1.2.11.3 and 3.2.2.3.3). The other side uses
it as a send quota: each QoS > 0 PUBLISH it sends takes one, and at zero it
MUST NOT send another [MQTT-4.9.0-2] [MQTT-3.3.4-9] [MQTT-3.3.4-7]; a PUBACK
or a PUBCOMP (whatever its Reason Code) or a PUBREC with a Reason Code of 0x80
or more gives one back, never above the initial quota (4.9). QoS 0 is not
counted (the sender MAY go on with it), and every other packet flows whatever
the quota [MQTT-4.9.0-3] [MQTT-3.3.4-10]. The quota is not session state: each
Network Connection starts again (4.9), so one ``SendQuota`` lives for one
direction of one connection, and ``closed`` is final.

``FLOW_CONTROL_5`` serves both directions: ``open`` (quota left), ``exhausted``
(quota zero), ``exceeded`` (the sender sent beyond it), ``closed``.

- Server to Client, bounded by the Client's Receive Maximum: entering
  ``exceeded`` is the Server's fault. The count follows 4.9's arithmetic, which
  returns quota even for an acknowledgement of a previous connection's flow (a
  re-sent PUBREL's PUBCOMP), so it is never stricter than [MQTT-3.3.4-9]; and
  the Client (the observer) knows every acknowledgement it sent, while the
  Server may not have read some of them yet, so an excess seen here is an
  excess the Server saw too.
- Client to Server, bounded by the Server's Receive Maximum: the Client is at
  fault and the Server is judged on its reaction. 4.13.1 lists 0x93 (Receive
  Maximum exceeded) among the Reason Codes of Protocol Errors, which a Server
  that detects one MUST close on [MQTT-4.13.1-1]. The Server counts the
  PUBLISHes "where it has not sent a PUBACK or PUBCOMP in response" (3.3.4),
  and some of those answers may be on the wire, so going on is allowed too,
  unless the excess is certain: Receive Maximum QoS 2 PUBLISHes whose PUBREC
  the Client holds and whose PUBREL it has not sent (the Server cannot have
  sent their PUBCOMP). A DISCONNECT 0x93 is judged against the most the
  Server can ever have counted on this connection (``peak``); as that
  sentence of 3.3.4 does not name a PUBREC of 0x80 or more, a QoS 2 PUBLISH
  refused that way stays in the count for that judgement.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation
from mqttref.model.v5.reactions import Reactions, protocol_error

Side = Literal["server", "client"]
Acknowledgement = Literal["PUBACK", "PUBREC", "PUBCOMP"]

DEFAULT_RECEIVE_MAXIMUM = 65_535
"""Receive Maximum when the property is absent (3.1.2.11.3, 3.2.2.3.3)."""
RECEIVE_MAXIMUM_EXCEEDED = 0x93


class QuotaState(StrEnum):
    OPEN = "open"
    EXHAUSTED = "exhausted"
    EXCEEDED = "exceeded"
    CLOSED = "closed"


class QuotaEvent(StrEnum):
    PUBLISH_QOS0 = "publish_qos0"
    PUBLISH_QOS1_2 = "publish_qos1_2"
    QUOTA_RETURNED = "quota_returned"
    PUBREC_ACCEPTED = "pubrec_accepted"
    OTHER_PACKET = "other_packet"
    RECEIVE_MAXIMUM_EXCEEDED = "receive_maximum_exceeded"
    CONNECTION_CLOSED = "connection_closed"


Q, QE = QuotaState, QuotaEvent
_LIVE = (Q.OPEN, Q.EXHAUSTED, Q.EXCEEDED)
_QOS0 = ("MQTT-4.9.0-2",)
_SEND = ("MQTT-4.9.0-2", "MQTT-3.3.4-9", "MQTT-3.3.4-7")
_RETURN = ("MQTT-3.3.4-9", "MQTT-3.3.4-7")
_OTHER = ("MQTT-4.9.0-3", "MQTT-3.3.4-10")


def _loops() -> tuple[Transition, ...]:
    """What never moves the quota: QoS 0, a PUBREC below 0x80, any other packet."""
    rows: list[Transition] = []
    for state in _LIVE:
        rows += [
            Transition(state, QE.PUBLISH_QOS0, state, _QOS0),
            Transition(state, QE.PUBREC_ACCEPTED, state, _RETURN),
            Transition(state, QE.OTHER_PACKET, state, _OTHER),
            Transition(state, QE.CONNECTION_CLOSED, Q.CLOSED, ("MQTT-4.9.0-1",)),
        ]
    return tuple(rows)


FLOW_CONTROL_5 = Chart(
    name="flow_control_5",
    title="Flow control (MQTT 5.0)",
    description="The send quota of one direction of one Network Connection (4.9): "
    "the receiver's Receive Maximum, less the sender's QoS 1 and 2 PUBLISHes that "
    "no PUBACK, PUBCOMP or PUBREC of 0x80 or more has answered. `exceeded` is the "
    "sender's fault; the receiver may then close with DISCONNECT 0x93.",
    states=states_of(
        QuotaState,
        {
            Q.OPEN: "fewer than Receive Maximum QoS 1 and 2 PUBLISHes unacknowledged",
            Q.EXHAUSTED: "the quota is zero: no QoS 1 or 2 PUBLISH may be sent; "
            "QoS 0 and every other packet may",
            Q.EXCEEDED: "the sender sent more than Receive Maximum: the receiver may "
            "close with DISCONNECT 0x93 (Receive Maximum exceeded)",
            Q.CLOSED: "the Network Connection is closed: the quota does not outlive it",
        },
        finals=[Q.CLOSED],
    ),
    events=events_of(
        QuotaEvent,
        {
            QE.PUBLISH_QOS0: "the sender sends a QoS 0 PUBLISH",
            QE.PUBLISH_QOS1_2: "the sender sends a QoS 1 or QoS 2 PUBLISH",
            QE.QUOTA_RETURNED: "the sender receives a PUBACK or a PUBCOMP (any Reason "
            "Code) or a PUBREC with a Reason Code of 0x80 or more",
            QE.PUBREC_ACCEPTED: "the sender receives a PUBREC below 0x80: the message "
            "stays unacknowledged until its PUBCOMP",
            QE.OTHER_PACKET: "any other packet either way (PUBREL, SUBSCRIBE, PINGREQ...)",
            QE.RECEIVE_MAXIMUM_EXCEEDED: "the receiver sends DISCONNECT 0x93 "
            "(Receive Maximum exceeded)",
            QE.CONNECTION_CLOSED: "the Network Connection closes for any other reason",
        },
    ),
    initial=Q.OPEN,
    guards=("room_left", "last_slot", "still_over", "back_to_limit", "was_exceeded"),
    actions=("take_quota", "return_quota"),
    protocol="5.0",
    transitions=(
        Transition(Q.OPEN, QE.PUBLISH_QOS1_2, Q.OPEN, _SEND, "room_left", "take_quota"),
        Transition(Q.OPEN, QE.PUBLISH_QOS1_2, Q.EXHAUSTED, _SEND, "last_slot", "take_quota"),
        Transition(Q.EXHAUSTED, QE.PUBLISH_QOS1_2, Q.EXCEEDED, _SEND, action="take_quota"),
        Transition(Q.EXCEEDED, QE.PUBLISH_QOS1_2, Q.EXCEEDED, _SEND, action="take_quota"),
        Transition(Q.OPEN, QE.QUOTA_RETURNED, Q.OPEN, _RETURN, action="return_quota"),
        Transition(Q.EXHAUSTED, QE.QUOTA_RETURNED, Q.OPEN, _RETURN, action="return_quota"),
        Transition(
            Q.EXCEEDED, QE.QUOTA_RETURNED, Q.EXCEEDED, _RETURN, "still_over", "return_quota"
        ),
        Transition(
            Q.EXCEEDED, QE.QUOTA_RETURNED, Q.EXHAUSTED, _RETURN, "back_to_limit", "return_quota"
        ),
        Transition(Q.EXCEEDED, QE.RECEIVE_MAXIMUM_EXCEEDED, Q.CLOSED, ("MQTT-4.13.1-1",)),
        Transition(
            Q.OPEN, QE.RECEIVE_MAXIMUM_EXCEEDED, Q.CLOSED, ("MQTT-4.13.1-1",), "was_exceeded"
        ),
        Transition(
            Q.EXHAUSTED, QE.RECEIVE_MAXIMUM_EXCEEDED, Q.CLOSED, ("MQTT-4.13.1-1",), "was_exceeded"
        ),
        *_loops(),
    ),
)


def receive_maximum(value: int | None) -> int:
    """The Receive Maximum a CONNECT or CONNACK property stands for."""
    if value is None:
        return DEFAULT_RECEIVE_MAXIMUM
    if not 1 <= value <= DEFAULT_RECEIVE_MAXIMUM:
        raise UsageError(
            f"Receive Maximum {value}: 0 is a Protocol Error (3.1.2.11.3, 3.2.2.3.3) and a "
            "Two Byte Integer stops at 65535, so no connection runs with it"
        )
    return value


@attrs.define
class SendQuota:
    """One direction's send quota on one Network Connection; see the module docstring.

    ``sender`` is the side that sends the PUBLISHes: "server" (bounded by the
    Client's Receive Maximum) or "client" (bounded by the Server's).
    """

    maximum: int = attrs.field(converter=receive_maximum)
    sender: Side
    client: str = "?"
    state: str = QuotaState.OPEN
    used: int = 0
    """The quota taken, by 4.9's arithmetic: the quota is ``maximum - used``."""
    unacknowledged: dict[int, int] = attrs.field(factory=dict)
    """This connection's QoS 1 and 2 PUBLISHes not yet answered, packet id -> QoS."""
    awaiting_pubrel: set[int] = attrs.field(factory=set)
    """QoS 2 ids whose PUBREC (below 0x80) the sender holds and whose PUBREL it has not sent."""
    refused_qos2: int = 0
    peak: int = 0
    """The most PUBLISHes the receiver can have counted at once on this connection."""

    @classmethod
    def server_to_client(cls, client_receive_maximum: int | None, client: str = "?") -> SendQuota:
        """The Server's quota towards a Client that sent ``client_receive_maximum`` in CONNECT."""
        return cls(client_receive_maximum, "server", client)

    @classmethod
    def client_to_server(cls, server_receive_maximum: int | None, client: str = "?") -> SendQuota:
        """A Client's quota towards a Server that sent ``server_receive_maximum`` in CONNACK."""
        return cls(server_receive_maximum, "client", client)

    @property
    def quota(self) -> int:
        return max(0, self.maximum - self.used)

    def may_publish(self, qos: int) -> bool:
        """Whether the sender may send a PUBLISH at ``qos`` now: QoS 0 always may."""
        return qos == 0 or self.used < self.maximum

    def refusal(self, qos: int) -> Violation | None:
        """The Violation a PUBLISH at ``qos`` sent now would be (None: it is allowed)."""
        if self.may_publish(qos):
            return None
        who = "Server" if self.sender == "server" else "Client"
        refs = ("MQTT-3.3.4-9",) if self.sender == "server" else ("MQTT-3.3.4-7",)
        return Violation(
            self.client,
            f"the {who} sent a QoS {qos} PUBLISH with its send quota at zero: "
            f"{self.used} QoS 1 and 2 PUBLISHes unacknowledged, Receive Maximum {self.maximum}",
            refs=(*refs, "MQTT-4.9.0-2"),
            allowed=[
                "QoS 0 PUBLISH",
                "any packet other than PUBLISH",
                "a QoS 1 or 2 PUBLISH once a PUBACK, PUBCOMP or PUBREC >= 0x80 returns quota",
            ],
            arrived=f"QoS {qos} PUBLISH",
        )

    def _holds(self, guard: str) -> bool:
        return {
            "room_left": self.used + 1 < self.maximum,
            "last_slot": self.used + 1 == self.maximum,
            "still_over": self.used - 1 > self.maximum,
            "back_to_limit": self.used - 1 == self.maximum,
            "was_exceeded": self.peak > self.maximum,
        }[guard]

    def _fire(self, event: QuotaEvent) -> Transition:
        row = FLOW_CONTROL_5.fire(self.state, event, self._holds)
        self.state = row.target
        return row

    def publish(self, qos: int, packet_id: int | None = None) -> Reactions | None:
        """The sender sent a PUBLISH.

        Server to Client: raises ``Violation`` when it breaks the quota. Client
        to Server: returns the reactions allowed to the Server when it breaks
        the quota, None when it does not. A QoS > 0 PUBLISH under an id already
        unacknowledged on this connection takes no more quota: it is not a new
        message, and whether it may be re-sent at all is the QoS flows' rule
        [MQTT-4.4.0-1].
        """
        if qos == 0:
            self._fire(QE.PUBLISH_QOS0)
            return None
        if packet_id is None:
            raise UsageError("a QoS 1 or 2 PUBLISH has a Packet Identifier (2.2.1)")
        if packet_id in self.unacknowledged:
            return None
        FLOW_CONTROL_5.fire(self.state, QE.PUBLISH_QOS1_2, self._holds)  # a closed quota: none
        violation = self.refusal(qos)
        if violation is not None and self.sender == "server":
            raise violation
        certain = len(self.awaiting_pubrel) >= self.maximum
        self._fire(QE.PUBLISH_QOS1_2)
        self.used += 1
        self.unacknowledged[packet_id] = qos
        self.peak = max(self.peak, len(self.unacknowledged) + self.refused_qos2)
        if self.state != QuotaState.EXCEEDED:
            return None
        return protocol_error(
            RECEIVE_MAXIMUM_EXCEEDED,
            f"took the Client beyond the Server's Receive Maximum ({self.maximum}) [MQTT-3.3.4-7]",
            detected=certain,
        )

    def acknowledged(self, packet: Acknowledgement, packet_id: int, reason_code: int = 0) -> None:
        """The sender received a PUBACK, PUBREC or PUBCOMP for ``packet_id``."""
        qos = self.unacknowledged.get(packet_id)
        if packet == "PUBREC" and reason_code < 0x80:
            self._fire(QE.PUBREC_ACCEPTED)
            if qos == 2:
                self.awaiting_pubrel.add(packet_id)
            return
        self._fire(QE.QUOTA_RETURNED)
        self.used = max(0, self.used - 1)
        self.unacknowledged.pop(packet_id, None)
        self.awaiting_pubrel.discard(packet_id)
        if packet == "PUBREC" and qos == 2:
            self.refused_qos2 += 1

    def released(self, packet_id: int) -> None:
        """The sender sent a PUBREL: the receiver may now answer with PUBCOMP."""
        self._fire(QE.OTHER_PACKET)
        self.awaiting_pubrel.discard(packet_id)

    def other_packet(self) -> None:
        """Any packet that is neither a PUBLISH nor an acknowledgement of one."""
        self._fire(QE.OTHER_PACKET)

    def server_disconnected(self, reason_code: int) -> None:
        """The Server sent DISCONNECT to a Client whose PUBLISHes this quota counts.

        A 0x93 (Receive Maximum exceeded) must have grounds: the Server can
        never have counted more PUBLISHes than ``peak``. Without them it closed
        on PUBLISHes it owed an answer [MQTT-3.3.4-1].
        """
        if self.sender != "client":
            raise UsageError("only the Client's PUBLISHes give the Server grounds for 0x93")
        if reason_code != RECEIVE_MAXIMUM_EXCEEDED:
            self._fire(QE.CONNECTION_CLOSED)
            return
        if self.state == QuotaState.CLOSED:
            raise NoTransition(FLOW_CONTROL_5.name, self.state, QE.RECEIVE_MAXIMUM_EXCEEDED)
        try:
            self._fire(QE.RECEIVE_MAXIMUM_EXCEEDED)
        except NoTransition:
            raise Violation(
                self.client,
                "DISCONNECT 0x93 (Receive Maximum exceeded), though the Client never had more "
                f"than {self.peak} QoS 1 and 2 PUBLISHes unanswered (Receive Maximum "
                f"{self.maximum}): the Server closed on PUBLISHes it owed an answer",
                refs=("MQTT-3.3.4-1",),
                allowed=["PUBACK / PUBREC for each PUBLISH as its QoS says"],
                arrived="DISCONNECT 0x93",
            ) from None

    def closed(self) -> None:
        """The Network Connection closed: the next one starts a new quota (4.9)."""
        self._fire(QE.CONNECTION_CLOSED)
