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

Around the driver: ``transcript`` writes the transcript's lines and the verdicts
that carry them, ``links`` is one slot's connection (its encoding and decoding at
the CONNECT's Protocol Level), ``acks`` the acknowledgements the clients owe,
``propagation`` what a connection changes that the other nodes of a cluster must
learn. Their names are importable from here too.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Iterable

from hypothesis import reject

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
    PingReq,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
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
from mqttref.oracle.nodes import clustered
from mqttref.oracle.stateful.acks import Flight, OwedAcks
from mqttref.oracle.stateful.adapters import acknowledgement
from mqttref.oracle.stateful.links import LevelStream, Link, encode_at
from mqttref.oracle.stateful.propagation import (
    changed,
    shared_change_acknowledged,
    shared_change_sent,
    wait_for_propagation,
)
from mqttref.oracle.stateful.target import Timing
from mqttref.oracle.stateful.transcript import (
    TRANSCRIPT_TAIL,
    Disagreement,
    ModelCrash,
    describe_event,
    describe_packet,
)


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
        self.acks = OwedAcks()
        """The acknowledgements the clients owe."""
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
        wait_for_propagation(self.links[slot], self.poll)
        self.tick()
        self.note(describe_event(event))
        self.apply(event)
        if data:
            if isinstance(event, Send):
                shared_change_sent(self.links[slot], event.packet)
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
        wait_for_propagation(link, self.poll)
        self.tick()
        self.note(f"{slot} drops the connection")
        self.apply(Drop(slot))
        if link.shared_state:
            changed(link)  # the session the client leaves is the cluster's to keep
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
        self.acks.sent(link.client_id, packet)

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
        slot = self.slot_of(flight.client_id)
        if slot is None or not self.acks.is_owed(flight):
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
        return self.acks.offered({self.client_id(s) for s in self.links if self.connected(s)})

    def acks_owed_by(self, slot: str) -> list[Flight]:
        """Every acknowledgement ``slot``'s client owes, in the order they became owed
        (so that PUBRELs keep the order of their PUBRECs [MQTT-4.6.0-4])."""
        return self.acks.of(self.client_id(slot))

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
            shared_change_acknowledged(link, packet)
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
                self.acks.forget(client_id)
                self.foreign_releases = {
                    (c, i) for c, i in self.foreign_releases if c != client_id}
        elif isinstance(observation, (Publish, PubRec, PubRel)):
            self.acks.owe(client_id, observation)
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


__all__ = [
    "TRANSCRIPT_TAIL",
    "Disagreement",
    "Driver",
    "Flight",
    "LevelStream",
    "Link",
    "ModelCrash",
    "describe_event",
    "describe_packet",
    "encode_at",
]
