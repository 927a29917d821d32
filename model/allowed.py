"""What the server may send next, and the rejection that lists it: the base of the
observation half of the broker model (``observe``).

Theory of operation: ``allowed(client)`` lists concrete packets the server may send
next (with the lowest free packet id where the server chooses one): the CONNACKs a
CONNECT allows, the owed answers, the QoS flows' packets, re-sends (DUP=1) of every
unacknowledged message and the first sends of pending deliveries, per ordering key up
to and including the first required one. ``_reject`` makes the ``Violation`` every
judgement raises, naming what was allowed and what arrived; on a level-5 connection
its statement ids are 5.0's (``v5.numbering.renumbered``).
"""

from __future__ import annotations

from collections.abc import Sequence

from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    UnsubAck,
)
from mqttref.model.connection import ConnectionEvent, ConnectionState
from mqttref.model.errors import Violation
from mqttref.model.events import Closed, Observation, describe
from mqttref.model.level5 import Level5
from mqttref.model.level5_publish import MQTT_5
from mqttref.model.qos import SenderState
from mqttref.model.records import Connection, Delivery, Session
from mqttref.model.session import SessionState
from mqttref.model.v5.numbering import renumbered

C, CE = ConnectionState, ConnectionEvent


class AllowedPackets(Level5):
    """Mixed into ``BrokerModel`` (through ``ObservationJudge``): ``allowed`` and
    ``_reject``."""

    connections: dict[str, Connection]
    sessions: dict[str, Session]
    delivered: list[tuple[str, int, Delivery, int]]
    owed: list[tuple[str, int, Delivery]]
    refs_hit: set[str]
    max_inflight: int
    published: dict[tuple[str, bytes], int]
    emptied_retained: set[str]

    def _attached_session(self, conn: Connection) -> Session:
        raise NotImplementedError

    def _conn(self, client: str) -> Connection:
        raise NotImplementedError

    def _reject(
        self, conn: Connection, message: str, refs: Sequence[str], arrived: Observation
    ) -> Violation:
        return Violation(
            conn.client,
            message,
            refs=renumbered(refs, conn.level),  # 5.0's numbers on a level-5 connection
            allowed=[describe(o) for o in self.allowed(conn.client)],
            arrived=describe(arrived),
        )

    def allowed(self, client: str) -> list[Observation]:
        """Concrete observations the server may produce next for ``client``.

        Where the server picks a packet id, the lowest free one stands for
        "any free id"; retries (DUP=1 re-sends) are listed for every
        unacknowledged message.
        """
        conn = self._conn(client)
        found: list[Observation] = []
        if conn.state == C.AWAITING_CONNACK:
            if conn.level == MQTT_5 and conn.session5 is not None:
                present = max(conn.session5.session_present_allowed())
            else:
                present = self._session_present(conn)
            found += [
                ConnAck(present if rc == 0 else False, rc, self._assigned_id(conn, rc))
                for rc in sorted(conn.connack_codes)
            ]
        elif conn.disconnect_sent is not None:
            return [Closed()]
        elif conn.state == C.CONNECTED:
            found += self._allowed_connected(conn)
        if conn.state == C.CLOSE_DUE or (conn.open and conn.may_close):
            found.append(Closed())
        return found

    def _allowed_connected(self, conn: Connection) -> list[Observation]:
        session = self._attached_session(conn)
        found: list[Observation] = []
        for expected in conn.expected:
            if expected.kind == "SUBACK":
                assert expected.packet_id is not None
                codes = tuple(max((x for x in c if x < 0x80), default=0x80) for c in expected.codes)
                found.append(SubAck(expected.packet_id, codes))
            elif expected.kind == "UNSUBACK":
                assert expected.packet_id is not None
                found.append(UnsubAck(expected.packet_id, tuple(min(c) for c in expected.codes)))
            else:
                found.append(PingResp())
        for flow in session.flows.incoming.values():
            if flow.state == "puback_due":
                found.append(PubAck(flow.packet_id))
            elif flow.state == "pubrec_due":
                found.append(PubRec(flow.packet_id))
            elif flow.state == "pubcomp_due":
                found.append(PubComp(flow.packet_id))
        for flow in sorted(session.flows.outgoing.values(), key=lambda f: f.order):
            if flow.state in (SenderState.PUBREL_DUE, SenderState.AWAITING_PUBCOMP):
                found.append(PubRel(flow.packet_id))
            if flow.state == SenderState.PUBREL_DUE or not isinstance(flow.message, Delivery):
                continue
            # A retry within the connection is 3.1.1's leeway; 5.0 re-sends only when
            # the session resumes [MQTT-4.4.0-1].
            if flow.state == SenderState.PUBLISH_RESEND_DUE or (
                conn.level != MQTT_5
                and flow.state in (SenderState.AWAITING_PUBACK, SenderState.AWAITING_PUBREC)
            ):
                message = flow.message.message
                qos = QoS.AT_LEAST_ONCE if flow.chart.name == "qos1_sender" else QoS.EXACTLY_ONCE
                found.append(
                    Publish(
                        message.topic,
                        message.payload,
                        qos,
                        flow.message.retain,
                        True,
                        flow.packet_id,
                        self._properties_for(conn, flow.message),
                    )
                )
        found += self._allowed_first_sends(session, conn)
        return found

    def _allowed_first_sends(self, session: Session, conn: Connection) -> list[Observation]:
        found: list[Observation] = []
        # Per ordering key, every delivery up to and including the first required
        # one may come next: an allowed one may be skipped, a required one not.
        reachable: list[Delivery] = []
        blocked: set[object] = set()
        for delivery in sorted(session.pending, key=lambda d: (d.message.seq, not d.required)):
            if delivery.order_key in blocked:
                continue
            if session.last_sent.get(delivery.order_key, 0) > delivery.message.seq:
                continue  # a later message of its key went first: it can no longer come
            reachable.append(delivery)
            if delivery.required:
                blocked.add(delivery.order_key)
        free = (pid for pid in range(1, 65536) if pid not in session.flows.outgoing)
        quota_left = conn.quota is None or conn.quota.quota > 0
        found += [
            p
            for p in self._allowed_shared(session, free, level5=conn.level == MQTT_5)
            if p.qos == 0 or quota_left
        ]
        for delivery in reachable:
            qos = max(delivery.allowed_qos) if quota_left else min(delivery.allowed_qos)
            if (qos > 0 and not quota_left) or self._too_large(session, delivery):
                continue  # 5.0: no quota [MQTT-3.3.4-9], or above the limit [MQTT-3.1.2-24]
            packet_id = next(free) if qos > 0 else None
            found.append(
                Publish(
                    delivery.message.topic,
                    delivery.message.payload,
                    QoS(qos),
                    delivery.retain,
                    False,
                    packet_id,
                    self._properties_for(conn, delivery),
                )
            )
        return found

    def _assigned_id(self, conn: Connection, code: int) -> Properties:
        """The CONNACK's properties ``allowed`` offers: accepting a level-5 CONNECT with
        a zero-length ClientID, an Assigned Client Identifier no Session uses
        [MQTT-3.1.3-7] [MQTT-3.2.2-16]."""
        assert conn.connect is not None
        if conn.level != MQTT_5 or conn.connect.client_id or code >= 0x80:
            return NO_PROPERTIES
        n = 1
        while f"assigned-{n}" in self.sessions:
            n += 1
        return Properties(assigned_client_identifier=f"assigned-{n}")

    def _session_present(self, conn: Connection) -> bool:
        assert conn.connect is not None
        session = self.sessions.get(conn.session_key or "")
        return (
            not conn.connect.clean_session
            and not self._ends_with_takeover(conn, session)
            and session is not None
            and session.state
            in (SessionState.PERSISTENT_SESSION, SessionState.PERSISTENT_DISCONNECTED)
        )

    def _ends_with_takeover(self, conn: Connection, session: Session | None) -> bool:
        """Whether ``session`` is a level-5 session attached to another connection with
        a Session Expiry Interval of 0: the takeover closes that connection first
        [MQTT-3.1.4-2] (5.0: [MQTT-3.1.4-3]), and the session ends when its Network
        Connection closes (3.1.2.11.2), so the CONNECT taking over finds no session.
        (A level-5 CONNECT judges this in ``Session5``; this is for a 3.1.1 one.)"""
        if session is None or session.v5 is None or session.client in (None, conn.client):
            return False
        old = self.connections.get(session.client or "")
        return old is not None and old.level == MQTT_5 and session.v5.expiry == 0
