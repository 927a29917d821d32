"""What an MQTT 3.1.1 client must do, judged from the packets it sends and receives.

Theory of operation: the client side of the QoS charts (``SideFlows``) plus the
client's share of the connection rules. A checker feeds every packet the client
under test sends (``sent``) and receives (``received``), and the loss of the
network connection (``connection_lost``); a packet the rules forbid raises
``Violation`` naming its statements, and ``obligations()`` lists what the
client still owes (acknowledgements, and re-sends after a persistent session
resumes). The server side is judged by ``BrokerModel``; this class judges a
client library such as ``mqttref.client`` (issue 7).

A level-5 CONNECT opens a ``ClientConnection5`` (``model.client5``) for that
Network Connection: the server's CONNACK terms (Receive Maximum as a send
quota, Topic Alias Maximum, Maximum QoS, Retain Available) and the aliases
both ways (issue 16). 5.0 also ends a QoS exchange on a PUBREC of 0x80 or
more: no PUBREL follows and the packet id is free again [MQTT-4.4.0-2]
[MQTT-4.3.3-9]; and a client whose Clean Start 0 met Session Present 0 must
discard its session state if it goes on [MQTT-3.2.2-5]. The rules both levels
share cite each level's own statement ids (``_cite``): 5.0 renumbered them.
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from mqttref.model.client5 import DUE_REFS_5, ClientConnection5
from mqttref.model.errors import NoTransition, Violation
from mqttref.model.events import describe
from mqttref.model.flows import SideFlows
from mqttref.model.qos import ReceiverState
from mqttref.model.records import Obligation

_ACK_REFS = ["MQTT-2.3.1-6", "MQTT-4.3.2-2", "MQTT-4.3.3-1", "MQTT-4.3.3-2"]
_ACK_REFS_5 = ["MQTT-2.2.1-5", "MQTT-4.3.2-4", "MQTT-4.3.3-4", "MQTT-4.3.3-8", "MQTT-4.3.3-11"]
"""What an acknowledgement no flow allows breaks, at 3.1.1 and at 5.0."""

_ORDERED_ACKS: dict[type, tuple[str, str]] = {
    PubAck: (ReceiverState.PUBACK_DUE, "MQTT-4.6.0-2"),
    PubRec: (ReceiverState.PUBREC_DUE, "MQTT-4.6.0-3"),
}


@attrs.define
class ClientModel:
    """The rules one client must keep; ``name`` labels its verdicts."""

    name: str = "client"
    flows: SideFlows = attrs.field(factory=SideFlows)
    connecting: bool = False
    connected: bool = False
    disconnected: bool = False
    in_use: dict[int, str] = attrs.field(factory=dict)
    """SUBSCRIBE and UNSUBSCRIBE packet ids awaiting their acknowledgement."""
    arrivals: list[int] = attrs.field(factory=list)
    """Incoming QoS 1/2 packet ids in the order their PUBLISH arrived."""
    v5: ClientConnection5 | None = None
    """This Network Connection's 5.0 terms, when its CONNECT was level 5."""

    def _cite(self, v311: list[str], v5: list[str]) -> list[str]:
        """The statement ids of one rule at this connection's level."""
        return v5 if self.v5 is not None else v311

    def _violation(self, message: str, refs: list[str], packet: Packet) -> Violation:
        due = [f"{d.packet} {d.packet_id}" for d in self.flows.due()]
        return Violation(self.name, message, refs=refs, allowed=due, arrived=describe(packet))

    # ------------------------------------------------------------ client sends

    def sent(self, packet: Packet, size: int | None = None) -> None:
        """The client sent ``packet``; raises ``Violation`` if it may not.

        ``size``: its encoded length, when the harness knows it (5.0's Maximum
        Packet Size; a packet alone does not tell it)."""
        if self.disconnected:
            refs = self._cite(["MQTT-3.14.4-2"], ["MQTT-3.14.4-1"])
            raise self._violation("a packet after DISCONNECT", refs, packet)
        if isinstance(packet, Connect):
            if self.connecting or self.connected:
                raise self._violation("a second CONNECT", ["MQTT-3.1.0-2"], packet)
            self.connecting = True
            level5 = packet.protocol_level is ProtocolLevel.MQTT_5
            self.v5 = ClientConnection5(packet, self.name) if level5 else None
            if packet.clean_session:
                self.flows.clear()  # [MQTT-3.1.2-6]
                self.arrivals.clear()
            return
        if not self.connecting and not self.connected:
            raise self._violation("the first packet must be CONNECT", ["MQTT-3.1.0-1"], packet)
        if self.v5 is not None and size is not None:
            self.v5.sent_size(packet, size)
        if isinstance(packet, Disconnect):
            self.disconnected = True
        elif isinstance(packet, (Subscribe, Unsubscribe)):
            self._sent_request(packet)
        elif isinstance(packet, Publish):
            if self.v5 is not None:
                self.v5.sent_publish(packet)
            self._sent_publish(packet)
        elif isinstance(packet, (PubAck, PubRec, PubRel, PubComp)):
            self._sent_ack(packet)
            if self.v5 is not None:
                self._sent_ack5(packet)

    def _sent_ack5(self, packet: PubAck | PubRec | PubRel | PubComp) -> None:
        assert self.v5 is not None
        if isinstance(packet, PubRel):
            self.v5.released(packet.packet_id)
            return
        self.v5.sent_ack(packet)
        if isinstance(packet, PubRec) and packet.reason_code >= 0x80:
            # The refusal ends the exchange: the next PUBLISH under this id is a new
            # message [MQTT-4.3.3-9], and no PUBREL is to come.
            self.flows.incoming.pop(packet.packet_id, None)
            if packet.packet_id in self.arrivals:
                self.arrivals.remove(packet.packet_id)

    def _sent_request(self, packet: Subscribe | Unsubscribe) -> None:
        if not packet.packet_id or packet.packet_id in self.in_use:
            raise self._violation(
                "SUBSCRIBE/UNSUBSCRIBE needs an unused non-zero packet id",
                self._cite(["MQTT-2.3.1-1", "MQTT-2.3.1-2"], ["MQTT-2.2.1-3"]),
                packet,
            )
        self.in_use[packet.packet_id] = type(packet).__name__.upper()

    def _sent_publish(self, packet: Publish) -> None:
        if packet.qos == 0:
            if packet.dup or packet.packet_id is not None:
                raise self._violation(
                    "QoS 0 has DUP=0 and no packet id",
                    self._cite(["MQTT-3.3.1-2", "MQTT-2.3.1-5"], ["MQTT-3.3.1-2", "MQTT-2.2.1-2"]),
                    packet,
                )
            return
        if not packet.packet_id:
            refs = self._cite(["MQTT-2.3.1-1"], ["MQTT-2.2.1-3"])
            raise self._violation("QoS > 0 needs a packet id", refs, packet)
        try:
            self.flows.sent(packet)
        except NoTransition as error:
            raise self._violation(
                f"no PUBLISH allowed under this packet id ({error.state})",
                self._cite(
                    ["MQTT-2.3.1-2", "MQTT-3.3.1-1", "MQTT-4.3.3-1", "MQTT-4.4.0-1"],
                    ["MQTT-2.2.1-3", "MQTT-3.3.1-1", "MQTT-4.3.3-6", "MQTT-4.4.0-1"],
                ),
                packet,
            ) from None

    def _sent_ack(self, packet: PubAck | PubRec | PubRel | PubComp) -> None:
        ordered = _ORDERED_ACKS.get(type(packet))
        if ordered is not None:
            state, ref = ordered
            waiting = [
                pid
                for pid in self.arrivals
                if pid in self.flows.incoming and self.flows.incoming[pid].state == state
            ]
            if waiting and packet.packet_id in waiting and waiting[0] != packet.packet_id:
                raise self._violation("acknowledgements out of order", [ref], packet)
        try:
            self.flows.sent(packet)
        except NoTransition as error:
            raise self._violation(
                f"no flow allows this acknowledgement ({error.state})",
                self._cite(_ACK_REFS, _ACK_REFS_5),
                packet,
            ) from None
        if packet.packet_id not in self.flows.incoming and packet.packet_id in self.arrivals:
            self.arrivals.remove(packet.packet_id)

    # --------------------------------------------------------- client receives

    def received(self, packet: Packet) -> None:
        """The client received ``packet`` from the server.

        Packets that make no sense to the client's flows (a PUBACK for an id it
        never used) are the server's fault: they raise ``Violation`` too.
        """
        if isinstance(packet, ConnAck):
            self.connecting = False
            self.connected = packet.return_code == 0
            if self.v5 is not None and self.connected:
                self.v5.received_connack(packet)
                if not packet.session_present and not self.v5.connect.clean_session:
                    self.flows.clear()  # no session on the server: discard ours [MQTT-3.2.2-5]
                    self.arrivals.clear()
        elif isinstance(packet, (SubAck, UnsubAck)):
            if self.in_use.pop(packet.packet_id, None) is None:
                refs = self._cite(["MQTT-2.3.1-7"], ["MQTT-2.2.1-6"])
                raise self._violation("an acknowledgement for no request", refs, packet)
        elif isinstance(packet, (Publish, PubAck, PubRec, PubRel, PubComp)):
            if self.v5 is not None and isinstance(packet, Publish):
                self.v5.received_publish(packet)
            self._received_flow_packet(packet)
            if self.v5 is not None and isinstance(packet, (PubAck, PubRec, PubComp)):
                self.v5.received_ack(packet)
                if isinstance(packet, PubRec) and packet.reason_code >= 0x80:
                    # Treated as acknowledged: no PUBREL, no re-send [MQTT-4.4.0-2].
                    self.flows.outgoing.pop(packet.packet_id, None)

    def _received_flow_packet(self, packet: Publish | PubAck | PubRec | PubRel | PubComp) -> None:
        try:
            taken = self.flows.received(packet)
        except NoTransition as error:
            raise Violation(
                "server",
                f"sent {type(packet).__name__.upper()} for a packet id the client has no flow "
                f"for ({error.state})",
                refs=self._cite(["MQTT-2.3.1-6"], ["MQTT-2.2.1-5"]),
                arrived=describe(packet),
            ) from None
        if (
            isinstance(packet, Publish)
            and taken is not None
            and packet.packet_id is not None
            and packet.packet_id not in self.arrivals
        ):
            self.arrivals.append(packet.packet_id)

    def connection_lost(self) -> None:
        """The network connection closed; a persistent session's flows live on."""
        self.connecting = self.connected = self.disconnected = False
        if self.v5 is not None:
            self.v5.closed()
        self.in_use.clear()
        self.flows.connection_lost()
        self.arrivals = [pid for pid in self.arrivals if pid in self.flows.incoming]

    def obligations(self) -> list[Obligation]:
        """Acknowledgements owed [MQTT-4.5.0-2] and re-sends owed [MQTT-4.4.0-1]."""
        if not self.connected:
            return []
        return [
            Obligation(
                self.name,
                f"{d.packet} {d.packet_id}",
                d.refs if self.v5 is None else DUE_REFS_5.get(d.packet, d.refs),
            )
            for d in self.flows.due()
        ]
