"""One side's QoS flows, keyed by packet identifier, executing the QoS charts.

Theory of operation: a ``SideFlows`` belongs to one end of one session (the
server's side of a client's session, or a client). Every PUBLISH, PUBACK,
PUBREC, PUBREL and PUBCOMP that this side sends or receives goes through
``sent(packet)`` or ``received(packet)``, which fires the matching event of
the QoS 1 or QoS 2 sender chart (for ids this side chose) or receiver chart
(for ids the peer chose). A packet with no row in the chart raises
``NoTransition``; ``due()`` lists what this side still owes. It does not know
about topics or subscribers, so a client checker (issue 7) uses it as is.

Packet ids of the two directions are independent [MQTT-2.3.1-2]: the ids
this side sends PUBLISH with live in ``outgoing``, the peer's in ``incoming``.
"""

from __future__ import annotations

from typing import Any

import attrs

from mqttref.impl.codec.packets import Packet, PubAck, PubComp, Publish, PubRec, PubRel
from mqttref.model.chart import Chart, Transition
from mqttref.model.errors import NoTransition
from mqttref.model.qos import (
    QOS1_RECEIVER,
    QOS1_SENDER,
    QOS2_RECEIVER,
    QOS2_SENDER,
    ReceiverEvent,
    ReceiverState,
    SenderEvent,
    SenderState,
)

_DUE_PACKET = {
    str(SenderState.PUBLISH_RESEND_DUE): "PUBLISH (DUP=1)",
    str(SenderState.PUBREL_DUE): "PUBREL",
    str(ReceiverState.PUBACK_DUE): "PUBACK",
    str(ReceiverState.PUBREC_DUE): "PUBREC",
    str(ReceiverState.PUBCOMP_DUE): "PUBCOMP",
}
_DUE_REFS = {
    str(SenderState.PUBLISH_RESEND_DUE): ("MQTT-4.4.0-1", "MQTT-3.3.1-1"),
    str(SenderState.PUBREL_DUE): ("MQTT-4.3.3-1",),
    str(ReceiverState.PUBACK_DUE): ("MQTT-4.3.2-2",),
    str(ReceiverState.PUBREC_DUE): ("MQTT-4.3.3-2",),
    str(ReceiverState.PUBCOMP_DUE): ("MQTT-4.3.3-2",),
}


@attrs.define
class Flow:
    """One message under one packet id, and where it stands in its chart.

    ``message`` is whatever the owner attaches (the broker model attaches the
    delivery it matched); ``order`` is the position of the first PUBLISH among
    this side's sends, for the re-send order rule [MQTT-4.6.0-1].
    """

    chart: Chart = attrs.field(repr=lambda chart: chart.name)
    state: str
    packet_id: int
    message: Any = None
    order: int = 0

    @property
    def completed(self) -> bool:
        return self.state in self.chart.final_states

    @property
    def due(self) -> str | None:
        """The packet this flow obliges its side to send, if any."""
        return _DUE_PACKET.get(self.state)

    @property
    def due_refs(self) -> tuple[str, ...]:
        return _DUE_REFS.get(self.state, ())


@attrs.frozen
class Due:
    """A packet this side must send: ``packet`` names its type."""

    packet: str
    packet_id: int
    refs: tuple[str, ...]


def _publish_guard(packet: Publish) -> Any:
    def holds(guard: str) -> bool:
        if guard == "dup":
            return packet.dup
        if guard == "first_send":
            return not packet.dup
        return False

    return holds


@attrs.define
class SideFlows:
    """The QoS flows of one side; see the module docstring."""

    outgoing: dict[int, Flow] = attrs.field(factory=dict)
    incoming: dict[int, Flow] = attrs.field(factory=dict)
    sends: int = 0

    def _fire(self, flow: Flow, event: str, holds: Any = None) -> Transition:
        if event not in flow.chart.event_names:
            # e.g. a PUBREC for a QoS 1 message: that flow has no such packet at all.
            raise NoTransition(flow.chart.name, flow.state, event)
        row = flow.chart.fire(flow.state, event, holds)
        flow.state = row.target
        return row

    def _settle(self, table: dict[int, Flow], packet_id: int) -> None:
        if table[packet_id].completed:
            del table[packet_id]

    def sent(self, packet: Packet, message: Any = None) -> tuple[Flow, Transition] | None:
        """This side sent ``packet``; returns the flow and the row it took.

        QoS 0 PUBLISH and non-QoS packets have no flow (None). Raises
        ``NoTransition`` when the charts forbid the packet here.
        """
        if isinstance(packet, Publish):
            if packet.qos == 0 or packet.packet_id is None:
                return None
            pid = packet.packet_id
            flow = self.outgoing.get(pid)
            if flow is None:
                chart = QOS1_SENDER if packet.qos == 1 else QOS2_SENDER
                flow = Flow(chart, chart.initial, pid, message, self.sends + 1)
                row = self._fire(flow, SenderEvent.SEND_PUBLISH, _publish_guard(packet))
                self.sends += 1
                self.outgoing[pid] = flow
                return flow, row
            if (flow.chart.name == QOS1_SENDER.name) != (packet.qos == 1):
                raise NoTransition(flow.chart.name, flow.state, "send_publish at another QoS")
            return flow, self._fire(flow, SenderEvent.SEND_PUBLISH, _publish_guard(packet))
        if isinstance(packet, PubRel):
            return self._on(self.outgoing, packet.packet_id, SenderEvent.SEND_PUBREL, "qos2_sender")
        if isinstance(packet, PubAck):
            return self._on(
                self.incoming, packet.packet_id, ReceiverEvent.SEND_PUBACK, "qos1_receiver"
            )
        if isinstance(packet, PubRec):
            return self._on(
                self.incoming, packet.packet_id, ReceiverEvent.SEND_PUBREC, "qos2_receiver"
            )
        if isinstance(packet, PubComp):
            return self._on(
                self.incoming, packet.packet_id, ReceiverEvent.SEND_PUBCOMP, "qos2_receiver"
            )
        return None

    def received(self, packet: Packet, message: Any = None) -> tuple[Flow, Transition] | None:
        """This side received ``packet``; returns the flow and the row it took."""
        if isinstance(packet, Publish):
            if packet.qos == 0 or packet.packet_id is None:
                return None
            pid = packet.packet_id
            flow = self.incoming.get(pid)
            chart = QOS1_RECEIVER if packet.qos == 1 else QOS2_RECEIVER
            if flow is None or flow.chart.name != chart.name:
                # A QoS 1 id still awaiting its PUBACK is re-used only by a re-send; a
                # different QoS under a live id starts over (the old one is superseded).
                flow = Flow(chart, chart.initial, pid, message)
            row = self._fire(flow, ReceiverEvent.RECEIVE_PUBLISH)
            self.incoming[pid] = flow
            return flow, row
        if isinstance(packet, PubRel):
            pid = packet.packet_id
            if pid not in self.incoming:
                # Any PUBREL is answered with PUBCOMP, even for an id already released.
                flow = Flow(QOS2_RECEIVER, QOS2_RECEIVER.initial, pid)
                row = self._fire(flow, ReceiverEvent.RECEIVE_PUBREL)
                self.incoming[pid] = flow
                return flow, row
            return self._on(self.incoming, pid, ReceiverEvent.RECEIVE_PUBREL, "qos2_receiver")
        if isinstance(packet, PubAck):
            return self._on(
                self.outgoing, packet.packet_id, SenderEvent.RECEIVE_PUBACK, "qos1_sender"
            )
        if isinstance(packet, PubRec):
            return self._on(
                self.outgoing, packet.packet_id, SenderEvent.RECEIVE_PUBREC, "qos2_sender"
            )
        if isinstance(packet, PubComp):
            return self._on(
                self.outgoing, packet.packet_id, SenderEvent.RECEIVE_PUBCOMP, "qos2_sender"
            )
        return None

    def _on(
        self, table: dict[int, Flow], packet_id: int, event: str, chart_name: str
    ) -> tuple[Flow, Transition]:
        flow = table.get(packet_id)
        if flow is None:
            raise NoTransition(chart_name, f"no flow with packet id {packet_id}", event)
        row = self._fire(flow, event)
        self._settle(table, packet_id)
        return flow, row

    def connection_lost(self) -> None:
        """The network connection closed; the session (and its flows) lives on."""
        for table in (self.outgoing, self.incoming):
            for flow in list(table.values()):
                self._fire(flow, SenderEvent.CONNECTION_LOST)
                self._settle(table, flow.packet_id)

    def due(self) -> list[Due]:
        """What this side must still send, in the order the flows started."""
        flows = sorted(self.outgoing.values(), key=lambda f: f.order) + sorted(
            self.incoming.values(), key=lambda f: f.packet_id
        )
        return [Due(f.due, f.packet_id, f.due_refs) for f in flows if f.due is not None]

    def in_flight(self) -> int:
        """Messages this side sent and the peer has not fully acknowledged."""
        return sum(1 for f in self.outgoing.values() if f.state != SenderState.PENDING)

    def clear(self) -> None:
        """Forget everything: a clean session ends [MQTT-3.1.2-6]."""
        self.outgoing.clear()
        self.incoming.clear()
