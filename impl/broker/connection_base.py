"""What every part of a connection's protocol core shares: its state and its way out.

The core of one network connection (``protocol.Connection``) is put together
from parts, one per seam of the protocol: the CONNECT handshake and AUTH
exchange (``handshake``), the client's PUBLISH packets (``inbound_publish``),
closing with DISCONNECT and the will (``closing``), and the dispatch by
(state, packet type) with its input and timers (``protocol``). Each part is a
class of its own that ``mypy --strict`` checks alone; this base holds what
they all read and write, so that none of them has to name another's attributes:

- the state of the connection: where it is (``state``), who the client is
  (``client_id``, ``protocol_level``, at 5.0 the ``terms`` CONNACK stated),
  its ``session`` and ``will``;
- ``send`` and ``send_frame``: every packet to the client leaves through
  them, within the client's Maximum Packet Size at 5.0 [MQTT-3.1.2-24], into
  the bytes ``protocol.Connection.data_to_send`` hands the edge.

Every slot of the core is declared here, once: the parts add methods only
(``__slots__ = ()``), so a connection costs what one class of its size would.
"""

from __future__ import annotations

import logging

from mqttref.impl.auth import ConnectionAuth
from mqttref.impl.broker.admission import Terms
from mqttref.impl.broker.packet_size import fit
from mqttref.impl.broker.ports import BrokerPorts, Edge
from mqttref.impl.broker.pressure import Valve
from mqttref.impl.broker.session import Session
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import Connect, Packet, ProtocolLevel, Will
from mqttref.impl.flow import ConnectionState
from mqttref.impl.logtext import clip

log = logging.getLogger("mqttref.broker")


class ConnectionBase(Valve):
    """One client's network connection as every part of its protocol core sees it."""

    __slots__ = (
        "_aliases",
        "_auth",
        "_checked_topic",
        "_edge",
        "_now",
        "_out",
        "_out_bytes",
        "_shut",
        "_unsendable",
        "_verbose",
        "accepted_at",
        "client_id",
        "close_reason",
        "config",
        "decoder",
        "keep_alive_limit",
        "last_activity",
        "memory",
        "ports",
        "protocol_level",
        "reading",
        "session",
        "state",
        "terms",
        "will",
    )

    def __init__(self, ports: BrokerPorts, edge: Edge, now: float) -> None:
        super().__init__()
        self.ports = ports
        self.config = config = ports.config
        self.memory = ports.memory
        self._edge = self.reading = edge
        self.state = ConnectionState.CONNECTING
        self.decoder = Decoder(role=Role.SERVER, max_packet_size=config.max_packet_size)
        self.protocol_level = ProtocolLevel.MQTT_3_1_1
        self.client_id: str | None = None
        self.session: Session | None = None
        self.will: Will | None = None
        self.keep_alive_limit = 0.0
        self.close_reason: str | None = None
        self.accepted_at = self.last_activity = self._now = now
        self._verbose = log.isEnabledFor(logging.DEBUG)
        self._out: list[bytes] | None = None
        """What waits for ``data_to_send``; None when nothing does (an idle connection
        should not keep an empty list, 56 bytes)."""
        self._out_bytes = 0
        self._shut = False
        """The edge was told to close: nothing more is written."""
        self._unsendable: str | None = None
        """A packet ``send`` could not fit in the client's Maximum Packet Size: what it
        was. The connection closes once the packet being handled is done (``packet_size``)."""
        self._checked_topic = ""
        """The last PUBLISH topic found within the broker's limits (``topic_problem``)."""
        self.terms: Terms | None = None
        """At MQTT 5.0, what CONNACK stated and the client asked for; None below."""
        self._aliases: dict[int, str] | None = None
        """The client's topic aliases (5.0), made on first use [MQTT-3.3.2-12]."""
        self._auth: tuple[ConnectionAuth, Connect | None] | None = None
        """Enhanced authentication (5.0, 4.12), when CONNECT named a method: the exchange,
        and the CONNECT it answers until CONNACK (None once accepted)."""

    @property
    def peer(self) -> str:
        """The client's address, for log lines and errors (the edge looks it up)."""
        return self._edge.peer

    @property
    def who(self) -> str:
        """How log lines name this connection."""
        if self.client_id is None:
            return self.peer
        return f"client {clip(self.client_id)} ({self.peer})"

    @property
    def is_closed(self) -> bool:
        return self.state is ConnectionState.CLOSED

    @property
    def v5(self) -> bool:
        return self.terms is not None

    @property
    def receive_maximum(self) -> int:
        terms = self.terms
        return 65_535 if terms is None else terms.receive_maximum

    @property
    def topic_alias_maximum(self) -> int:
        terms = self.terms
        if terms is None or not self.config.send_topic_aliases:
            return 0
        return terms.topic_alias_maximum

    @property
    def maximum_packet_size(self) -> int:
        terms = self.terms
        return self.config.max_packet_size if terms is None else terms.maximum_packet_size

    # The session's packet sink --------------------------------------------------------

    def send(self, packet: Packet) -> None:
        """Encode and send a packet that is no PUBLISH frame; at 5.0 within the client's
        Maximum Packet Size [MQTT-3.1.2-24], trimmed if need be (``packet_size.fit``). One
        that cannot fit is not sent, and the connection closes after the packet being
        handled (``_close_unsendable``): closing here, in the middle of a handler (a
        SUBACK is sent before the retained messages), would pull the session from under it."""
        if self.protocol_level is not ProtocolLevel.MQTT_5:
            self.send_frame(encode(packet, self.protocol_level))
            return
        limit = self.client_maximum_packet_size
        frame = fit(packet, limit)
        if frame is None:
            if self._unsendable is None:
                self._unsendable = (f"a {packet.packet_type.name} larger than the client's "
                                    f"Maximum Packet Size of {limit}")
            return
        self.send_frame(frame)

    @property
    def client_maximum_packet_size(self) -> int | None:
        """The 5.0 client's Maximum Packet Size (3.1.2.11.4), None for none: from the
        terms once accepted, before that from the CONNECT under enhanced authentication."""
        terms = self.terms
        if terms is not None:
            return terms.maximum_packet_size
        pending = self._auth[1] if self._auth is not None else None
        return None if pending is None else pending.properties.maximum_packet_size

    @property
    def frames_waiting(self) -> int:
        """How many packets wait in ``data_to_send``: the edge counts them as it writes
        them (``$SYS/broker/messages/sent``), once per write rather than per packet."""
        out = self._out
        return 0 if out is None else len(out)

    def send_frame(self, frame: bytes) -> None:
        if self._shut:
            return
        out = self._out
        self._out_bytes += len(frame)
        if out is None:
            self._out = [frame]
            self._edge.output_ready()
        else:
            out.append(frame)
