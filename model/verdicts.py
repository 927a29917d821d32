"""What the server still owes, and the model's invariants about itself.

Theory of operation: obligations are read off the charts' states, never kept
in a second list: a connection in ``awaiting_connack`` owes a CONNACK, one in
``close_due`` owes a close, a QoS flow in a ``*_due`` state owes its packet,
an owed answer (SUBACK, UNSUBACK, PINGRESP) waits in the connection, and a
required delivery waits in the session. After quiescence, each is a
violation. The invariants (issue 4) are checked over the log of observed
deliveries and the sessions' bookkeeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from mqttref.impl.codec.packets import PubAck, PubComp, PubRec, PubRel
from mqttref.model.connection import CONNECTION, ConnectionEvent, ConnectionState
from mqttref.model.errors import Violation
from mqttref.model.qos import ReceiverState, SenderState
from mqttref.model.records import PRIMARY, Connection, Delivery, Obligation, Session
from mqttref.model.session import SessionState
from mqttref.model.v5.numbering import (
    CLOSE_REFS_5,
    CONNACK_OR_CLOSE_OWED_5,
    CONNACK_OWED_5,
    DUE_REFS_5,
    MQTT_5,
    RETAINED_OWED_5,
    renumbered,
    row_refs,
)

C, SS = ConnectionState, SessionState


class Verdicts:
    """Mixed into ``BrokerModel``: obligations, quiescence and invariants."""

    connections: dict[str, Connection]
    sessions: dict[str, Session]
    delivered: list[tuple[str, int, Delivery, int]]
    owed: list[tuple[str, int, Delivery]]
    expired: set[tuple[str, int]]
    max_inflight: int
    keep_alive_grace: float

    def _attached_session(self, conn: Connection) -> Session:
        raise NotImplementedError

    # ------------------------------------------------------------ obligations

    def obligations(self, client: str | None = None) -> list[Obligation]:
        """What the server owes and has not sent (to ``client``, or to all); on a
        level-5 connection in 5.0's numbers (``numbering.renumbered``)."""
        found: list[Obligation] = []
        for name, conn in sorted(self.connections.items()):
            if client is None or name == client:
                found.extend(
                    attrs.evolve(o, refs=renumbered(o.refs, conn.level))
                    for o in self._owed_on(conn)
                )
        found += self._shared_obligations(client)  # to one member of a group, any of them
        return found

    if TYPE_CHECKING:  # SharedRouting's, earlier in BrokerModel's bases

        def _shared_obligations(self, client: str | None) -> list[Obligation]:
            """What the Shared Subscription groups are owed."""

    def _owed_on(self, conn: Connection) -> list[Obligation]:
        client = conn.client
        level5 = conn.level == MQTT_5
        if conn.state == C.AWAITING_CONNACK:
            if conn.may_close:
                refs: tuple[str, ...] = CONNACK_OR_CLOSE_OWED_5 if level5 else ("MQTT-3.2.2-6",)
                return [Obligation(client, "CONNACK or close", refs)]
            refs = CONNACK_OWED_5 if level5 else ("MQTT-3.1.4-4", "MQTT-3.2.0-1")
            return [Obligation(client, "CONNACK", refs)]
        if conn.state == C.CLOSE_DUE:
            refs = _close_refs(conn.close_cause, conn.level)
            return [Obligation(client, f"close ({conn.close_cause})", refs)]
        if conn.state != C.CONNECTED:
            return []
        if conn.disconnect_sent is not None:
            return [Obligation(client, "close after DISCONNECT", ("MQTT-3.14.4-2",))]
        owed = [
            Obligation(
                client,
                f"{e.kind} {e.packet_id or ''}".strip() + (" or close" if e.or_close else ""),
                e.refs,
            )
            for e in conn.expected
        ]
        session = self._attached_session(conn)
        # 5.0: at a send quota of zero (Receive Maximum) QoS 0 PUBLISHes MAY still go
        # (4.9); none is owed, as behind the in-flight window. Nor is the re-send of an
        # unacknowledged PUBLISH [MQTT-4.4.0-1]: it is a PUBLISH at QoS 1 or 2 too, which
        # the server MUST NOT send then [MQTT-4.9.0-2]; a PUBREL still is [MQTT-4.9.0-3].
        quota_left = conn.quota is None or conn.quota.quota > 0
        owed += [
            Obligation(client, f"{d.packet} {d.packet_id}",
                       DUE_REFS_5.get(d.packet, d.refs) if level5 else d.refs)
            for d in session.flows.due()
            if quota_left or not d.packet.startswith("PUBLISH")
        ]
        if session.flows.in_flight() < self.max_inflight and quota_left:
            owed += [
                Obligation(
                    client,
                    f"PUBLISH {d.message.topic!r} {d.message.payload!r} "
                    f"QoS {sorted(d.allowed_qos)} retain={int(d.retain)}",
                    _delivery_refs(d, copied=self._got_a_copy(session, d), level=conn.level),
                )
                for d in session.pending
                if d.required
            ]
        return owed

    def _got_a_copy(self, session: Session, delivery: Delivery) -> bool:
        """Whether the session got another copy of the message ``delivery`` carries
        (an optional one, or one at a lower QoS)."""
        return any(
            client_id == session.client_id
            and generation == session.generation
            and other.message.seq == delivery.message.seq
            for client_id, generation, other, _ in self.delivered
        )

    def check_quiescent(self) -> list[Violation]:
        """After quiescence, every obligation still open is a violation."""
        return [
            Violation(o.client, f"the server owes {o.what}", refs=o.refs)
            for o in self.obligations()
        ]

    # ------------------------------------------------------------- invariants

    def check_invariants(self) -> list[str]:
        """The model's own invariants (issue 4); an empty list when they hold."""
        broken: list[str] = []
        copies: dict[tuple[str, int, int, str], int] = {}
        last_seq: dict[tuple[Any, ...], int] = {}
        for client_id, generation, delivery, qos in self.delivered:
            key = (client_id, generation, delivery.message.seq, delivery.channel)
            copies[key] = copies.get(key, 0) + 1
            if delivery.retain:
                continue  # sent afresh on every matching SUBSCRIBE [MQTT-3.8.4-3]
            if qos == 2 and copies[key] > 1:
                broken.append(f"QoS 2 message {delivery.message.seq} reached {client_id} twice")
            order = (client_id, generation, *delivery.order_key)
            if last_seq.get(order, 0) > delivery.message.seq:
                broken.append(f"order of {delivery.order_key} to {client_id} not kept")
            last_seq[order] = delivery.message.seq
        delivered_ids = {id(d) for _, _, d, _ in self.delivered}
        for client_id, generation, delivery in self.owed:
            session = self.sessions.get(client_id)
            if session is None or session.generation != generation or not delivery.filters:
                continue  # discarded by a clean session or unsubscribed: excused
            if (client_id, delivery.message.seq) in self.expired:
                continue  # deleted when its Message Expiry Interval passed [MQTT-3.3.2-5]
            if id(delivery) not in delivered_ids and delivery not in session.pending:
                broken.append(f"accepted message {delivery.message.seq} lost for {client_id}")
        for session in self.sessions.values():
            if session.state in (SS.START, SS.CLEAN_DISCONNECTED) and not session.holds_nothing():
                broken.append(f"clean session {session.client_id} left state behind")
            if session.clean and session.client is None and not session.holds_nothing():
                broken.append(f"clean session {session.client_id} outlived its connection")
        return broken

    def next_deadline(self) -> float | None:
        """Seconds of silence after which the next keep-alive close becomes owed
        (aioquic's ``get_timer``): a harness that waits this long (and says so
        with ``TimePasses``) will find a close in ``obligations()``. None when no
        connection has a keep-alive [MQTT-3.1.2-24]."""
        waits = [
            1.5 * conn.keep_alive + self.keep_alive_grace - conn.idle
            for conn in self.connections.values()
            if conn.state == C.CONNECTED and conn.keep_alive > 0
        ]
        return max(0.0, min(waits)) if waits else None

    def client_acknowledgements(self, client: str) -> list[PubAck | PubRec | PubComp | PubRel]:
        """Acknowledgements ``client`` can meaningfully send now, with the server's ids.

        PUBACK, PUBREC or PUBCOMP for the deliveries the server has sent (their
        packet ids were learnt when the PUBLISH or PUBREL was observed), and
        PUBREL for the client's own QoS 2 messages the server has PUBREC'd. A
        harness draws from these to acknowledge, or withholds them.
        """
        conn = self.connections.get(client)
        if conn is None or conn.state != C.CONNECTED:
            return []
        session = self._attached_session(conn)
        acks: list[PubAck | PubRec | PubComp | PubRel] = []
        for flow in sorted(session.flows.outgoing.values(), key=lambda f: f.order):
            if flow.state == SenderState.AWAITING_PUBACK:
                acks.append(PubAck(flow.packet_id))
            elif flow.state == SenderState.AWAITING_PUBREC:
                acks.append(PubRec(flow.packet_id))
            elif flow.state == SenderState.AWAITING_PUBCOMP:
                acks.append(PubComp(flow.packet_id))
        acks += [
            PubRel(flow.packet_id)
            for flow in sorted(session.flows.incoming.values(), key=lambda f: f.packet_id)
            if flow.state == ReceiverState.AWAITING_PUBREL
        ]
        return acks


def _delivery_refs(
    delivery: Delivery, *, copied: bool = False, level: int = 4
) -> tuple[str, ...]:
    """Why a delivery is owed, by the rules the observation can contradict.

    A retained message owed to a new subscription: [MQTT-3.3.1-6] (it was stored, not
    routed on arrival). The copy owed at the highest QoS of overlapping subscriptions:
    [MQTT-3.3.5-1], and [MQTT-4.5.0-1] too unless another copy of the message came
    (then the message was routed, only not at the QoS owed). A will of which no copy
    came: [MQTT-3.1.2-8] and [MQTT-4.5.0-1], since a will never published cannot be
    told from one published and lost. Any other message: [MQTT-4.5.0-1].
    """
    if delivery.retain:  # 5.0: Retain Handling 0 or 1 (its 3.3.1-6 is the zero-byte rule)
        return RETAINED_OWED_5 if level == MQTT_5 else ("MQTT-3.3.1-6",)
    refs: tuple[str, ...] = ()
    if not copied:
        will = delivery.message.origin.startswith("will:")
        refs = ("MQTT-3.1.2-8", "MQTT-4.5.0-1") if will else ("MQTT-4.5.0-1",)
    if delivery.channel == PRIMARY and len(delivery.filters) > 1:
        refs += ("MQTT-3.3.5-1",)
    return refs or ("MQTT-4.5.0-1",)


_CLOSE_CAUSE_EVENTS = {
    "takeover": ConnectionEvent.TAKEN_OVER,
    "keep-alive": ConnectionEvent.KEEP_ALIVE_EXPIRED,
}
"""Close causes the model names itself; every other cause is the chart event's name."""


def _close_refs(cause: str, level: int) -> tuple[str, ...]:
    """Why a close is owed: the statements of the connection chart's transitions into
    ``close_due`` on the cause's event, as they read at ``level`` (``row_refs``): at
    3.1.1 a takeover [MQTT-3.1.4-2], keep alive [MQTT-3.1.2-24], a second CONNECT
    [MQTT-3.1.0-2], a protocol violation [MQTT-4.8.0-1], ...; at 5.0 a takeover
    [MQTT-3.1.4-3], keep alive [MQTT-3.1.2-22], a Protocol Error or Malformed Packet
    [MQTT-4.13.1-1], ... For a cause the chart does not name, the close rule of the
    level: [MQTT-4.8.0-1] (3.1.1), [MQTT-4.13.1-1] (5.0; 4.8.0-1 is none of its ids)."""
    event = _CLOSE_CAUSE_EVENTS.get(cause, cause)
    refs = [
        ref
        for row in CONNECTION.transitions
        if row.event == event and row.target == C.CLOSE_DUE and row.source != C.CLOSE_DUE
        for ref in row_refs(row, level)
    ]
    fallback = CLOSE_REFS_5 if level == MQTT_5 else ("MQTT-4.8.0-1",)
    return tuple(dict.fromkeys(refs)) or fallback
