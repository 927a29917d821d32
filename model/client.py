"""What an MQTT 3.1.1 client must do, judged from the packets it sends and receives.

Theory of operation: the client side of the QoS charts (``SideFlows``) plus the
client's share of the connection rules. A checker feeds every packet the client
under test sends (``sent``) and receives (``received``), and the loss of the
network connection (``connection_lost``); a packet the rules forbid raises
``Violation`` naming its statements, and ``obligations()`` lists what the
client still owes (acknowledgements, and re-sends after a persistent session
resumes). The server side is judged by ``BrokerModel``; this class judges a
client library such as ``mqttref.client`` (issue 7).
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
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
from mqttref.model.errors import NoTransition, Violation
from mqttref.model.events import describe
from mqttref.model.flows import SideFlows
from mqttref.model.qos import ReceiverState
from mqttref.model.records import Obligation

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

    def _violation(self, message: str, refs: list[str], packet: Packet) -> Violation:
        due = [f"{d.packet} {d.packet_id}" for d in self.flows.due()]
        return Violation(self.name, message, refs=refs, allowed=due, arrived=describe(packet))

    # ------------------------------------------------------------ client sends

    def sent(self, packet: Packet) -> None:
        """The client sent ``packet``; raises ``Violation`` if it may not."""
        if self.disconnected:
            raise self._violation("a packet after DISCONNECT", ["MQTT-3.14.4-1"], packet)
        if isinstance(packet, Connect):
            if self.connecting or self.connected:
                raise self._violation("a second CONNECT", ["MQTT-3.1.0-2"], packet)
            self.connecting = True
            if packet.clean_session:
                self.flows.clear()  # [MQTT-3.1.2-6]
                self.arrivals.clear()
            return
        if not self.connecting and not self.connected:
            raise self._violation("the first packet must be CONNECT", ["MQTT-3.1.0-1"], packet)
        if isinstance(packet, Disconnect):
            self.disconnected = True
        elif isinstance(packet, (Subscribe, Unsubscribe)):
            self._sent_request(packet)
        elif isinstance(packet, Publish):
            self._sent_publish(packet)
        elif isinstance(packet, (PubAck, PubRec, PubRel, PubComp)):
            self._sent_ack(packet)

    def _sent_request(self, packet: Subscribe | Unsubscribe) -> None:
        if not packet.packet_id or packet.packet_id in self.in_use:
            raise self._violation(
                "SUBSCRIBE/UNSUBSCRIBE needs an unused non-zero packet id",
                ["MQTT-2.3.1-1", "MQTT-2.3.1-2"],
                packet,
            )
        self.in_use[packet.packet_id] = type(packet).__name__.upper()

    def _sent_publish(self, packet: Publish) -> None:
        if packet.qos == 0:
            if packet.dup or packet.packet_id is not None:
                raise self._violation(
                    "QoS 0 has DUP=0 and no packet id", ["MQTT-3.3.1-2", "MQTT-2.3.1-5"], packet
                )
            return
        if not packet.packet_id:
            raise self._violation("QoS > 0 needs a packet id", ["MQTT-2.3.1-1"], packet)
        try:
            self.flows.sent(packet)
        except NoTransition as error:
            raise self._violation(
                f"no PUBLISH allowed under this packet id ({error.state})",
                ["MQTT-2.3.1-2", "MQTT-3.3.1-1", "MQTT-4.3.3-1", "MQTT-4.4.0-1"],
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
                ["MQTT-2.3.1-6", "MQTT-4.3.2-2", "MQTT-4.3.3-1", "MQTT-4.3.3-2"],
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
        elif isinstance(packet, (SubAck, UnsubAck)):
            if self.in_use.pop(packet.packet_id, None) is None:
                raise self._violation("an acknowledgement for no request", ["MQTT-2.3.1-7"], packet)
        elif isinstance(packet, (Publish, PubAck, PubRec, PubRel, PubComp)):
            self._received_flow_packet(packet)

    def _received_flow_packet(self, packet: Publish | PubAck | PubRec | PubRel | PubComp) -> None:
        try:
            taken = self.flows.received(packet)
        except NoTransition as error:
            raise Violation(
                "server",
                f"sent {type(packet).__name__.upper()} for a packet id the client has no flow "
                f"for ({error.state})",
                refs=["MQTT-2.3.1-6"],
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
        self.in_use.clear()
        self.flows.connection_lost()
        self.arrivals = [pid for pid in self.arrivals if pid in self.flows.incoming]

    def obligations(self) -> list[Obligation]:
        """Acknowledgements owed [MQTT-4.5.0-2] and re-sends owed [MQTT-4.4.0-1]."""
        if not self.connected:
            return []
        return [
            Obligation(self.name, f"{d.packet} {d.packet_id}", d.refs) for d in self.flows.due()
        ]
