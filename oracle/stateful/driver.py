"""The driver: real sockets on one side, the model on the other.

Theory of operation. Each client *slot* (``s0``, ``s1``...) is one TCP
connection at a time. Every action goes the same way: first everything that
already arrived is observed, then the model is told the event (so that its
keep-alive clock restarts no later than the broker's), then the bytes go out.
``settle`` then reads every socket until nothing arrives for the quiescence
window, judging each packet and each close with ``model.observe`` the moment
it is decoded; after quiescence, whatever the model still says the broker
owes (``check_quiescent``) may take up to ``Timing.owed_wait`` more before it
counts as missing. Nothing here sleeps blindly: every wait is a ``select`` on
the sockets that ends early when the broker speaks.

Time is the real clock: before every event and observation the model is told
how much time passed since the last one (``TimePasses``), so keep-alive
expiry and retries are judged against the time the broker really had.

A disagreement raises ``Disagreement`` with the model's verdict (statement
ids, what was allowed, what arrived) and the transcript of the example:
every client action and every packet received, with timestamps.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Iterable

import attrs
from hypothesis import reject

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.errors import ProtocolError
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
)
from mqttref.model import (
    BrokerModel,
    ClientEvent,
    Closed,
    Drop,
    ModelError,
    Observation,
    Open,
    Send,
    SendUnjudged,
    TimePasses,
    UsageError,
    Violation,
    describe,
)
from mqttref.model.connection import ConnectionState
from mqttref.model.v5.frames import FrameSplitter
from mqttref.oracle.nodes import clustered
from mqttref.oracle.stateful.adapters import (
    ServerSentGarbage,
    acknowledgement,
    acknowledgement_owed,
    encode_client_packet,
)
from mqttref.oracle.stateful.adapters import describe_event as _describe_event
from mqttref.oracle.stateful.adapters import describe_packet as _describe_packet
from mqttref.oracle.stateful.target import Timing

TRANSCRIPT_TAIL = 80


class Disagreement(AssertionError):
    """The broker did what the model forbids, or did not do what it requires."""

    def __init__(self, verdict: str, refs: Iterable[str], transcript: list[str]) -> None:
        self.verdict = verdict
        self.refs = tuple(refs)
        self.transcript = list(transcript)
        tail = self.transcript[-TRANSCRIPT_TAIL:]
        skipped = len(self.transcript) - len(tail)
        lines = [f"  ... {skipped} earlier lines"] if skipped else []
        lines += [f"  {line}" for line in tail]
        super().__init__(f"{verdict}\nTranscript of this example:\n" + "\n".join(lines))


class ModelCrash(Exception):
    """The model itself failed (a ``ModelError`` that is no ``Violation``): a bug
    of the model, not a verdict on the broker; shown with the transcript."""

    def __init__(self, error: Exception, transcript: list[str]) -> None:
        self.transcript = list(transcript)
        tail = "\n".join(f"  {line}" for line in self.transcript[-TRANSCRIPT_TAIL:])
        super().__init__(f"the model crashed: {error!r}\nTranscript of this example:\n{tail}")


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


def _extras(packet: Observation) -> str:
    """What a 5.0 packet carries beyond its 3.1.1 rendering: properties (the will's
    too) and subscription options."""
    parts = []
    properties = getattr(packet, "properties", NO_PROPERTIES)
    for field in attrs.fields(Properties):
        value = getattr(properties, field.name)
        if value != field.default:
            parts.append(f"{field.name}={value!r}")
    will = getattr(packet, "will", None)
    if will is not None and will.properties != NO_PROPERTIES:
        parts.append(f"will {_extras(will)}")
    if isinstance(packet, Subscribe):
        for s in packet.subscriptions:
            options = [name for name, on in (
                ("no_local", s.no_local), ("retain_as_published", s.retain_as_published)) if on]
            if s.retain_handling:
                options.append(f"retain_handling={s.retain_handling}")
            if options:
                parts.append(f"{s.topic_filter!r}: {' '.join(options)}")
    return "{" + ", ".join(parts) + "}" if parts else ""


def describe_packet(packet: Observation) -> str:
    """A packet as the transcript shows it, with its 5.0 properties and options."""
    extras = _extras(packet)
    return _describe_packet(packet) + (f" {extras}" if extras else "")


def describe_event(event: ClientEvent) -> str:
    """A client action as one transcript line, with its 5.0 properties and options."""
    if isinstance(event, Send):
        return f"{event.client} -> {describe_packet(event.packet)}"
    return _describe_event(event)


def encode_at(packet: Packet, level: ProtocolLevel) -> bytes:
    """The bytes of a well-formed client packet on a link of Protocol Level ``level``
    (a CONNECT carries its own). Level 4 goes through ``encode_client_packet``,
    which also writes what the 3.1.1 machine's violations need."""
    if level == ProtocolLevel.MQTT_5 and not isinstance(packet, Connect):
        return encode(packet, level)
    return encode_client_packet(packet)


@attrs.define(eq=False)
class LevelStream:
    """Bytes from the server of one connection -> observations, decoded at the
    Protocol Level the connection's CONNECT used (a server answers a level-5
    CONNECT in 5.0's encoding, 3.1.2.2). Undecodable bytes, or a packet only a
    client sends, are a verdict of their own [MQTT-4.8.0-1]. At level 5, ``frames``
    cuts the same bytes into whole frames, so that the model judges each one's bytes
    before the decoder reads it (``Driver._judge_frames``)."""

    level: ProtocolLevel
    decoder: Decoder = attrs.field(init=False)
    frames: FrameSplitter = attrs.field(factory=FrameSplitter)

    def __attrs_post_init__(self) -> None:
        self.decoder = Decoder(role=Role.CLIENT, protocol_level=self.level)

    def feed(self, data: bytes) -> list[Observation]:
        try:
            return list(self.decoder.feed(data))
        except ProtocolError as exc:
            version = "5.0" if self.level == ProtocolLevel.MQTT_5 else "3.1.1"
            raise ServerSentGarbage(
                f"the server sent bytes that are no valid {version} server packet: {exc} "
                f"(after {[describe(p) for p in getattr(exc, 'packets', [])]})"
            ) from exc


@attrs.define(eq=False)
class Link:
    """One slot's open TCP connection, at the Protocol Level of its CONNECT."""

    slot: str
    sock: socket.socket
    client_id: str | None
    level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1
    stream: LevelStream = attrs.field()
    server_aliases: dict[int, str] = attrs.field(factory=dict)
    """Topic Aliases the server set on this connection (3.3.2.3.4), read only to tell
    another client's aliased message from the example's own."""
    node: int = 0
    """Which node of a cluster the connection went to (``oracle.nodes``)."""
    shared_state: bool = False
    """Whether its session outlives it or resumed one: a change other nodes must learn."""
    retained_ids: set[int] = attrs.field(factory=set)
    """Packet ids of its retained QoS 1/2 PUBLISHes not yet acknowledged."""

    @stream.default
    def _stream(self) -> LevelStream:
        return LevelStream(self.level)

    def topic_of(self, packet: Publish) -> str:
        """The Topic Name of a PUBLISH from the server, read through its Topic Alias
        (the model reads aliases itself; the driver only needs the name)."""
        alias = packet.properties.topic_alias
        if alias is None:
            return packet.topic
        if packet.topic:
            self.server_aliases[alias] = packet.topic
            return packet.topic
        return self.server_aliases.get(alias, "")


class Driver:
    """Sockets to one broker, judged by one model."""

    def __init__(
        self,
        host: str,
        port: int,
        timing: Timing,
        model: BrokerModel,
        *,
        discard_model_crashes: bool = False,
    ) -> None:
        self.discard_model_crashes = discard_model_crashes
        """Fault hunts set it: an example the model cannot judge is discarded
        (``hypothesis.reject``) instead of ending the hunt."""
        self.host = host
        self.port = port
        self.timing = timing
        self.model = model
        self.links: dict[str, Link] = {}
        self.selector = selectors.DefaultSelector()
        self.started = self.clock = time.monotonic()
        self.transcript: list[str] = []
        self.owed_acks: dict[tuple[str, str, int], str] = {}
        """(client id, direction, packet id) -> the acknowledgement the client owes."""
        self.packet_ids: dict[str, int] = {}
        self.client_ids: dict[str, str | None] = {}
        """Slot -> the client id of its current (or last) connection."""
        self.held: list[tuple[str, Observation, Violation | None]] = []
        """Observations the model rejected so far, waiting for other connections."""
        self.own_prefix: str | None = None
        """The example's topic prefix: a PUBLISH outside it is another client's traffic."""
        self.foreign_releases: set[tuple[str | None, int]] = set()
        """(client id, packet id) of other clients' QoS 2 messages awaiting PUBREL: the
        PUBREL may come after a reconnect of a persistent session."""
        self.foreign_seen = 0
        self.silent = False
        """True while ``wait`` lets time pass: no client sends anything, not even a ping."""

    # ------------------------------------------------------------------ state

    def state(self, slot: str) -> str | None:
        conn = self.model.connections.get(slot)
        return None if conn is None else str(conn.state)

    def connected(self, slot: str) -> bool:
        return slot in self.links and self.state(slot) == ConnectionState.CONNECTED

    def free(self, slot: str) -> bool:
        return slot not in self.links

    def client_id(self, slot: str) -> str | None:
        link = self.links.get(slot)
        return None if link is None else link.client_id

    def slot_of(self, client_id: str) -> str | None:
        for slot, link in sorted(self.links.items()):
            if link.client_id == client_id and self.connected(slot):
                return slot
        return None

    def next_packet_id(self, client_id: str) -> int:
        packet_id = self.packet_ids.get(client_id, 0) % 65535 + 1
        self.packet_ids[client_id] = packet_id
        return packet_id

    # -------------------------------------------------------------- recording

    def note(self, line: str) -> None:
        self.transcript.append(f"{time.monotonic() - self.started:7.3f}s  {line}")

    def tick(self) -> None:
        """Tell the model how much real time passed since it last heard."""
        now = time.monotonic()
        elapsed = now - self.clock
        if elapsed > 0:
            self.clock = now
            self.apply(TimePasses(elapsed))

    def apply(self, event: ClientEvent) -> None:
        try:
            self.model.apply(event)
        except ModelError as error:
            raise self.crash(error) from error

    def crash(self, error: ModelError) -> Exception:
        if self.discard_model_crashes:
            reject()
        return ModelCrash(error, self.transcript)

    def disagree(self, verdict: str, refs: Iterable[str]) -> Disagreement:
        return Disagreement(verdict, refs, self.transcript)

    # ---------------------------------------------------------------- actions

    def act(self, event: ClientEvent, data: bytes, *, client_id: str | None = None) -> bool:
        """Observe what is waiting, tell the model ``event``, send ``data``. False when
        the slot's connection closed while waiting was observed (a server may close
        between two packets of a burst): then nothing is told or sent."""
        assert not isinstance(event, TimePasses)
        slot = event.client
        had_link = slot in self.links
        self.poll(0)
        if self.held:
            self.settle()  # no action while an observation waits to be explained
        opening = isinstance(event, Open) or (
            isinstance(event, Send) and isinstance(event.packet, Connect)
        )
        if slot not in self.links:
            if had_link and not opening:
                self.note(f"{slot}    (closed before {describe_event(event)}: not sent)")
                return False
            if not opening:
                raise UsageError(f"{slot} has no connection")
            level = ProtocolLevel.MQTT_3_1_1
            if isinstance(event, Send) and isinstance(event.packet, Connect):
                level = event.packet.protocol_level
            self._open(slot, client_id, level)
        self._propagated(self.links[slot])
        self.tick()
        self.note(describe_event(event))
        self.apply(event)
        if data:
            if isinstance(event, Send):
                self._shared_change_sent(self.links[slot], event.packet)
            self._send(self.links[slot], data)
        return True

    def level_of(self, slot: str) -> ProtocolLevel:
        """The Protocol Level of the slot's connection (3.1.1 when it has none)."""
        link = self.links.get(slot)
        return ProtocolLevel.MQTT_3_1_1 if link is None else link.level

    def send(self, slot: str, packet: Packet) -> None:
        """A well-formed packet from a slot, encoded at its connection's level."""
        client_id = packet.client_id if isinstance(packet, Connect) else None
        if isinstance(packet, Connect) and slot not in self.links:
            level = packet.protocol_level
        else:
            level = self.level_of(slot)
        if self.act(Send(slot, packet), encode_at(packet, level), client_id=client_id):
            self._sent(slot, packet)

    def open_without_connect(self, slot: str) -> None:
        self.act(Open(slot), b"")

    def drop(self, slot: str) -> None:
        """The client closes its socket without DISCONNECT."""
        self.poll(0)
        if self.held:
            self.settle()
        link = self.links.get(slot)
        if link is None:
            return
        self._propagated(link)
        self.tick()
        self.note(f"{slot} drops the connection")
        self.apply(Drop(slot))
        if link.shared_state:
            self._changed(link)  # the session the client leaves is the cluster's to keep
        self._close_link(link)

    def _open(
        self, slot: str, client_id: str | None,
        level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
    ) -> None:
        host, port, node = self.host, self.port, 0
        nodes = clustered()
        if nodes is not None:
            # One broker of several nodes: each connection on the next node, and a client
            # id back on another node than its last connection (``oracle.nodes``).
            node = nodes.for_client(client_id, nodes.take_turn())
            host, port = nodes.addresses[node]
            self.note(f"{slot}    (connects to node {node + 1}, {host}:{port})")
        sock = socket.create_connection((host, port), timeout=self.timing.owed_wait)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(slot, sock, client_id, level, node=node)
        self.client_ids[slot] = client_id
        self.links[slot] = link
        self.selector.register(sock, selectors.EVENT_READ, link)

    def _send(self, link: Link, data: bytes) -> None:
        link.sock.setblocking(True)
        link.sock.settimeout(self.timing.owed_wait)
        try:
            link.sock.sendall(data)
        except OSError as exc:
            # The broker closed first; the read side will report the close.
            self.note(f"{link.slot}: send failed ({exc.__class__.__name__})")
        finally:
            link.sock.setblocking(False)

    def _sent(self, slot: str, packet: Packet) -> None:
        """Keep the client's acknowledgement ledger in step with what it sent."""
        link = self.links.get(slot)
        if link is None or link.client_id is None:
            return
        kind = type(packet).__name__.upper()
        for key, owed in list(self.owed_acks.items()):
            same_id = key[2] == getattr(packet, "packet_id", None)
            if key[0] == link.client_id and owed == kind and same_id:
                del self.owed_acks[key]

    def keep_alive_pings(self) -> None:
        """Ping for every connected client idle for ``idle_ping`` of its keep alive,
        as client libraries do, so that only ``wait`` lets a keep alive expire.

        ``poll`` does it too, whenever it reads, so that a long step (several settles,
        a slow broker) does not let a short keep alive lapse either: the broker may
        close a connection silent for more than its keep alive (the model allows it
        from then on, mosquitto's sweep closes 1.3 to 7 s after the last packet of a
        keep alive of 1 s), and a close at a moment the broker's timing picks would
        change which rules the next step can draw (see ``wait``)."""
        self.poll(0)
        self._ping_idle()

    def _ping_idle(self) -> None:
        if self.silent or self.held:  # no action while an observation waits (``act``)
            return
        for slot, link in sorted(self.links.items()):
            conn = self.model.connections.get(slot)
            if conn is None or not self.connected(slot) or conn.keep_alive == 0:
                continue
            self.tick()
            if conn.idle >= self.timing.idle_ping * conn.keep_alive:
                self.note(f"{slot} -> PINGREQ (keep alive)")
                self.apply(Send(slot, PingReq()))
                self._send(link, encode_at(PingReq(), link.level))

    def acknowledge(self, flight: Flight, reason_code: int = 0) -> bool:
        """Send an owed acknowledgement; False when it is no longer owed or the
        client is not connected now. ``reason_code`` goes only on a level-5 link
        (3.4.2.1, 3.5.2.1); a 3.1.1 acknowledgement has none."""
        key = (flight.client_id, flight.direction, flight.packet_id)
        slot = self.slot_of(flight.client_id)
        if slot is None or self.owed_acks.get(key) != flight.kind:
            return False
        packet = acknowledgement(flight.kind, flight.packet_id)
        if reason_code and self.level_of(slot) == ProtocolLevel.MQTT_5:
            kinds: dict[str, type[PubAck | PubRec | PubRel | PubComp]] = {
                "PUBACK": PubAck, "PUBREC": PubRec, "PUBREL": PubRel, "PUBCOMP": PubComp,
            }
            packet = kinds[flight.kind](flight.packet_id, reason_code)
        self.send(slot, packet)
        return True

    def owed_by_connected(self) -> list[Flight]:
        """The acknowledgements that clients connected now owe and may send next.

        A client may withhold any of them, but it releases its own QoS 2 messages in
        the order their PUBRECs came [MQTT-4.6.0-4]: only its oldest PUBREL is offered.
        Released out of order, the order a server owes its subscribers would be
        ill-defined: a server that forwards at PUBREL (3.1.1 Figure 4.3, Method A)
        follows the releases, one that forwards at PUBLISH follows the publications,
        and both are allowed [MQTT-4.6.0-6]."""
        connected = {self.client_id(s) for s in self.links if self.connected(s)}
        released: set[str] = set()
        offered = []
        for (c, d, p), kind in self.owed_acks.items():  # in the order they became owed
            if c not in connected or (kind == "PUBREL" and c in released):
                continue
            if kind == "PUBREL":
                released.add(c)
            offered.append(Flight(c, d, p, kind))
        return sorted(offered, key=lambda f: (f.client_id, f.direction, f.packet_id))

    def acks_owed_by(self, slot: str) -> list[Flight]:
        """Every acknowledgement ``slot``'s client owes, in the order they became owed
        (so that PUBRELs keep the order of their PUBRECs [MQTT-4.6.0-4])."""
        client_id = self.client_id(slot)
        return [
            Flight(c, d, p, kind) for (c, d, p), kind in self.owed_acks.items() if c == client_id
        ]

    # ----------------------------------------------------------- observations

    def poll(self, timeout: float) -> bool:
        """Read whatever arrives within ``timeout``; True if anything did."""
        if not self.links:
            if timeout > 0:
                time.sleep(timeout)  # no socket to wait on: time passes all the same
            return False
        arrived = False
        for key, _mask in self.selector.select(timeout):
            link = key.data
            assert isinstance(link, Link)
            arrived = self._receive(link) or arrived
        self._ping_idle()
        return arrived

    def _receive(self, link: Link) -> bool:
        try:
            data = link.sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""  # a reset is a close too (ORACLE.md D12)
        if not data:
            self._observe(link, Closed())
            self._close_link(link)
            return True
        if link.level == ProtocolLevel.MQTT_5:
            self._judge_frames(link, data)
        for packet in link.stream.feed(data):
            self._shared_change_acknowledged(link, packet)
            self._observe(link, packet)
        return True

    def _judge_frames(self, link: Link, data: bytes) -> None:
        """Each whole level-5 frame's bytes judged by the model before it is decoded
        (``observe_frame``: what a decoder forgets, such as reserved bits or a Variable
        Byte Integer longer than it needs). A malformed frame is malformed whatever
        comes after it, so its verdict is not held for later observations."""
        for frame in link.stream.frames.feed(data):
            try:
                self.model.observe_frame(link.slot, frame)
            except Violation as violation:
                self.note(f"{link.slot} <- bytes {frame.hex(' ')}")
                raise self.disagree(str(violation), violation.refs) from None
            except ModelError as error:
                raise self.crash(error) from error

    # ------------------------------------------------------------- a cluster

    def _propagated(self, link: Link) -> None:
        """Before a client acts: a change acknowledged on another node of a cluster is
        given the run's propagation allowance first, observing all the while."""
        nodes = clustered()
        while nodes is not None and (delay := nodes.wait_before(link.node)) > 0:
            self.poll(delay)

    def _changed(self, link: Link) -> None:
        nodes = clustered()
        if nodes is not None:
            nodes.changed(link.node)

    def _shared_change_sent(self, link: Link, packet: Packet) -> None:
        """What a client sends that other nodes must learn (see ``oracle.nodes``)."""
        if clustered() is None:
            return
        if isinstance(packet, Connect):
            link.shared_state = (not packet.clean_session
                                 or bool(packet.properties.session_expiry_interval))
        elif isinstance(packet, Publish) and packet.retain:
            if packet.packet_id is None:
                self._changed(link)
            else:
                link.retained_ids.add(packet.packet_id)
        elif isinstance(packet, Disconnect) and link.shared_state:
            self._changed(link)

    def _shared_change_acknowledged(self, link: Link, packet: Observation) -> None:
        """A SUBACK, the acknowledgement of a retained PUBLISH, or the CONNACK of a
        session that outlives its connection: other nodes learn it within the allowance."""
        if clustered() is None:
            return
        packet_id = getattr(packet, "packet_id", None)
        if (isinstance(packet, SubAck)
                or (isinstance(packet, ConnAck) and link.shared_state)
                or (isinstance(packet, (PubAck, PubRec, PubComp))
                    and packet_id in link.retained_ids)):
            if isinstance(packet, (PubAck, PubComp)):
                link.retained_ids.discard(packet_id or 0)
            self._changed(link)

    def _observe(self, link: Link, observation: Observation) -> None:
        """Judge one observation, or hold it while another connection may explain it.

        Packets on different connections have no order the broker promises, and
        reading them is a race of ``select``: a will that a takeover causes can
        reach a third client before the CONNACK of the connection that took over.
        So an observation the model rejects is *held* (with everything after it
        on the same connection) and judged again after every other observation;
        if it is still rejected when the broker has gone quiet, it is a verdict.
        Order within one connection is never changed.
        """
        self.tick()
        self.note(f"{link.slot} <- {describe_packet(observation)}")
        if self._take_foreign(link, observation):
            return
        if self.model.connections.get(link.slot) is None:
            raise self.disagree(
                f"{link.slot}: the server sent {describe(observation)} before any CONNECT",
                ["MQTT-3.1.0-1"],
            )
        if any(slot == link.slot for slot, _, _ in self.held):
            self.held.append((link.slot, observation, None))
            return
        violation = self._judge(link.slot, observation)
        if violation is not None:
            self.note(f"{link.slot}    (held: the model does not allow it yet)")
            self.held.append((link.slot, observation, violation))
            return
        self._judge_held()

    def foreign(self, topic: str) -> bool:
        """A topic none of this example's clients publishes to: on a broker shared with
        other clients (``mqttref check`` against someone's broker, its own conformance
        checks, earlier examples' late wills), the example's ``#`` and ``+/a``
        subscriptions match their messages too, and the model cannot know them.
        Topics starting with ``$`` are never foreign: a wildcard at the first level
        must not match them [MQTT-4.7.2-1], whoever published them. An empty name
        (a Topic Alias this driver did not see set) is left to the model to judge."""
        prefix = self.own_prefix
        return (prefix is not None and topic != "" and not topic.startswith("$")
                and topic != prefix and not topic.startswith(prefix + "/"))

    def _take_foreign(self, link: Link, observation: Observation) -> bool:
        """Acknowledge another client's message outside the model, as its subscriber
        must (so the broker's flow with this connection stays whole), and its PUBREL.
        A message of the example's own that a broker delivered under a wrong topic is
        not lost to the verdict: the model still waits for it under the right one."""
        if isinstance(observation, Publish) and self.foreign(link.topic_of(observation)):
            self.foreign_seen += 1
            self.note(f"{link.slot}    (another client's message: not the model's to judge)")
            if observation.packet_id is not None and observation.qos == 1:
                self._send_unjudged(link, PubAck(observation.packet_id))
            elif observation.packet_id is not None and observation.qos == 2:
                self.foreign_releases.add((link.client_id, observation.packet_id))
                self._send_unjudged(link, PubRec(observation.packet_id))
            return True
        if isinstance(observation, PubRel) and (link.client_id, observation.packet_id) in (
                self.foreign_releases):
            self.foreign_releases.discard((link.client_id, observation.packet_id))
            self._send_unjudged(link, PubComp(observation.packet_id))
            return True
        return False

    def _send_unjudged(self, link: Link, packet: Packet) -> None:
        """Send what the model does not follow; it still hears that the client spoke."""
        self._send(link, encode_at(packet, link.level))
        with contextlib.suppress(ModelError):
            self.model.apply(SendUnjudged(link.slot))

    def _judge(self, slot: str, observation: Observation) -> Violation | None:
        try:
            self.model.observe(slot, observation)
        except Violation as violation:
            return violation
        except ModelError as error:
            raise self.crash(error) from error
        client_id = self.client_ids.get(slot)
        if isinstance(observation, ConnAck) and observation.return_code == 0:
            if not observation.session_present and client_id is not None:
                self._forget_acks(client_id)
                self.foreign_releases = {
                    (c, i) for c, i in self.foreign_releases if c != client_id}
        elif isinstance(observation, (Publish, PubRec, PubRel)):
            self._owe_ack(slot, client_id, observation)
        return None

    def _judge_held(self) -> None:
        """Judge held observations again, per connection in arrival order."""
        progress = True
        while progress and self.held:
            progress = False
            for slot in dict.fromkeys(slot for slot, _, _ in self.held):
                index = next(i for i, (s, _, _) in enumerate(self.held) if s == slot)
                _, observation, _ = self.held[index]
                violation = self._judge(slot, observation)
                if violation is None:
                    del self.held[index]
                    self.note(f"{slot}    (held {describe_packet(observation)} now allowed)")
                    progress = True
                    break
                self.held[index] = (slot, observation, violation)

    def _held_verdict(self) -> Disagreement | None:
        self._judge_held()
        for slot, observation, violation in self.held:
            if violation is not None:
                return self.disagree(str(violation), violation.refs)
            self.note(f"{slot}    (held {describe_packet(observation)})")
        return None

    def _owe_ack(self, slot: str, client_id: str | None, packet: Packet) -> None:
        kind = acknowledgement_owed(packet)
        packet_id = getattr(packet, "packet_id", None)
        if kind is None or client_id is None or packet_id is None:
            return
        direction = "out" if kind == "PUBREL" else "in"
        key = (client_id, direction, packet_id)
        self.owed_acks[key] = kind

    def _forget_acks(self, client_id: str) -> None:
        for key in [k for k in self.owed_acks if k[0] == client_id]:
            del self.owed_acks[key]

    def _close_link(self, link: Link) -> None:
        if self.links.get(link.slot) is link:
            del self.links[link.slot]
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(link.sock)
        link.sock.close()

    # --------------------------------------------------------------- settling

    def settle(self) -> None:
        """Quiescence, then every obligation met and every held observation
        explained within ``owed_wait``."""
        started = time.monotonic()
        limit = started + self.timing.owed_wait
        while self.poll(self.timing.quiet_window) and time.monotonic() < limit:
            pass
        deadline = time.monotonic() + self.timing.owed_wait
        while True:
            self.tick()
            self._judge_held()
            try:
                violations = self.model.check_quiescent()
            except ModelError as error:
                raise self.crash(error) from error
            if not violations and not self.held:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                verdict = self._held_verdict()
                if verdict is not None:
                    raise verdict
                first = violations[0]
                others = "".join(f"\n  also: {v}" for v in violations[1:])
                raise self.disagree(
                    f"after {self.timing.owed_wait:.1f}s: {first}{others}",
                    [r for v in violations for r in v.refs],
                )
            self.poll(min(self.timing.quiet_window, remaining))

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of real time pass while observing everything, every client
        silent; then wait on while a keep alive lapsed in the silence is still open.

        A connection silent for longer than its keep alive may be closed by the server
        at any moment until the model owes the close (1.5 times the keep alive plus
        the target's grace [MQTT-3.1.2-24]). Left open at the end of the wait, it
        would close during a later step or not, as the broker's sweep falls, and the
        rules a replay can draw would differ (Hypothesis: "Inconsistent data
        generation"). So the wait ends only when each such connection is closed or
        its close is owed (then ``settle`` insists on it): every close the spec allows
        is taken as the broker's choice, none is judged early, and the example's next
        step starts from the same connections in every replay."""
        self.note(f"time passes: {seconds:g}s")
        self.silent = True
        try:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                self.poll(remaining)
            self.tick()
            while self._lapsed_keep_alives():
                self.poll(min(self.timing.quiet_window, self.model.next_deadline() or 0.0))
                self.tick()
        finally:
            self.silent = False

    def _lapsed_keep_alives(self) -> list[str]:
        """Connected slots the server may close for their keep alive, not owed yet."""
        return [
            slot for slot in sorted(self.links)
            if self.connected(slot)
            and "keep-alive" in self.model.connections[slot].may_close
        ]

    def close(self) -> None:
        for link in list(self.links.values()):
            self._close_link(link)
        self.selector.close()

