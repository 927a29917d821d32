"""The broker profile: what a broker chose where the specification lets it choose.

MQTT 3.1.1 leaves a server free to grant a lower QoS than asked [MQTT-3.8.4-6],
to refuse a filter with 0x80 [MQTT-3.8.4-5], not to support wildcards
[MQTT-3.8.3-2], to refuse empty client ids [MQTT-3.1.3-8], to close on control
characters (1.5.3, MAY), to refuse to authorize a PUBLISH by closing
[MQTT-3.3.5-2], and to queue QoS 0 messages for offline clients or not (3.1.2.4,
"optionally"). A check that runs into one of these choices has nothing to judge:
its statement is NOT APPLICABLE, never FAIL. The profile is learned once per
run, before the checks, so that they can go on at what the broker allows (a
QoS 2 receiver test with a QoS 1 subscriber) and so that the report can name
every choice it made. Probing never judges: a probe that goes wrong records
"unknown" and the checks find out for themselves.
"""

from __future__ import annotations

import secrets

import attrs

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    ProtocolLevel,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.oracle import raw
from mqttref.oracle.probe import Closed, Probe, Received, Timing, Trace

V311 = ProtocolLevel.MQTT_3_1_1

PROBED_CHARACTERS: dict[str, str] = {
    " ": "' ' (space)",
    "\u00e9": "'\u00e9' (non-ASCII)",
    "\u0001": "U+0001 (control character)",
    "\u007f": "U+007F (control character)",
    "\ufdd0": "U+FDD0 (non-character)",
}
"""Characters whose acceptance in topic filters the profile learns, with their names."""

LONG_TOPIC_LEVELS = 100
LONG_TOPIC_BYTES = 4096


@attrs.frozen
class BrokerProfile:
    """The choices a broker made; the defaults assume it allows everything."""

    max_qos: int = 2
    """The QoS granted for a QoS 2 request on a plain filter."""
    qos2_publish: bool = True
    """Whether a QoS 2 PUBLISH is answered with PUBREC (not a close)."""
    wildcards: bool = True
    """Whether filters with '+' and '#' are granted."""
    empty_client_id: bool = True
    """Whether an empty client id with clean session 1 is accepted."""
    refused_characters: tuple[str, ...] = ()
    """Characters of ``PROBED_CHARACTERS`` whose filters are refused with 0x80."""
    closing_characters: tuple[str, ...] = ()
    """Characters of ``PROBED_CHARACTERS`` on which the broker closes the connection."""
    long_topics: bool = True
    """Whether a filter of ``LONG_TOPIC_LEVELS`` levels and ``LONG_TOPIC_BYTES`` is granted."""
    queues_qos0_offline: bool | None = None
    """Whether QoS 0 messages reach a persistent session while it is offline (None: unknown)."""
    probed: bool = False
    notes: tuple[str, ...] = ()

    def choices(self) -> list[str]:
        """Each legal choice the broker made, in words a reader checks against the spec."""
        out: list[str] = []
        if self.max_qos < 2:
            out.append(f"grants at most QoS {self.max_qos} (allowed [MQTT-3.8.4-6])")
        if not self.qos2_publish:
            out.append("closes the connection on a QoS 2 PUBLISH: it does not authorize it"
                       " (allowed [MQTT-3.3.5-2])")
        if not self.wildcards:
            out.append("refuses filters containing wildcards (allowed [MQTT-3.8.3-2])")
        if not self.empty_client_id:
            out.append("refuses empty client ids (allowed [MQTT-3.1.3-8])")
        for char in self.refused_characters:
            out.append(f"refuses filters containing {PROBED_CHARACTERS[char]} with 0x80")
        for char in self.closing_characters:
            out.append(f"closes the connection on {PROBED_CHARACTERS[char]} in a topic filter"
                       " (allowed by section 1.5.3 for control and non-characters)")
        if not self.long_topics:
            out.append(f"refuses filters of {LONG_TOPIC_LEVELS} levels or {LONG_TOPIC_BYTES}"
                       " bytes (an implementation limit)")
        if self.queues_qos0_offline is False:
            out.append("does not queue QoS 0 messages for offline clients (allowed, 3.1.2.4)")
        return out

    def lines(self) -> list[str]:
        """The profile for the report's "broker profile" section."""
        if not self.probed:
            return ["not probed (the checks assume every choice is allowed)"]
        taken = [PROBED_CHARACTERS[c] for c in PROBED_CHARACTERS
                 if c not in self.refused_characters and c not in self.closing_characters]
        queued = {None: "unknown", True: "yes", False: "no"}[self.queues_qos0_offline]
        return [
            f"maximum QoS granted: {self.max_qos}",
            f"QoS 2 PUBLISH accepted: {'yes' if self.qos2_publish else 'no (closes)'}",
            f"wildcard filters: {'granted' if self.wildcards else 'refused'}",
            "empty client id (clean session 1): "
            + ("accepted" if self.empty_client_id else "refused"),
            f"filter characters taken: {', '.join(taken) or 'none of those probed'}",
            f"long filters ({LONG_TOPIC_LEVELS} levels, {LONG_TOPIC_BYTES} bytes):"
            f" {'granted' if self.long_topics else 'refused'}",
            f"QoS 0 queued for offline clients: {queued}",
            *self.notes,
        ]


class _Prober:
    def __init__(self, host: str, port: int, timing: Timing) -> None:
        self.host, self.port, self.timing = host, port, timing
        self.token = secrets.token_hex(3)
        self.count = 0
        self.notes: list[str] = []

    def client_id(self) -> str:
        self.count += 1
        return f"mqrprof{self.token}{self.count}"

    def topic(self, *levels: str) -> str:
        return "/".join(("mqttref-check", "profile", self.token, *levels))

    async def connect(self, client_id: str | None = None, clean: bool = True) -> Probe | None:
        probe = await Probe.open("prof", self.host, self.port, Trace(), self.timing)
        await probe.send(Connect(V311, self.client_id() if client_id is None else client_id,
                                 clean, 60))
        event = await probe.next_event(self.timing.reply_bound)
        if (isinstance(event, Received) and isinstance(event.packet, ConnAck)
                and event.packet.return_code == 0):
            return probe
        await probe.close()
        return None

    async def grant(self, topic_filter: str, qos: QoS) -> int | None:
        """The return code for one filter; None when the broker closed instead."""
        probe = await self.connect()
        if probe is None:
            return None
        try:
            await probe.send(Subscribe(1, (Subscription(topic_filter, qos),)))
            while True:
                event = await probe.next_event(self.timing.reply_bound)
                if event is None or not isinstance(event, Received):
                    return None
                if isinstance(event.packet, SubAck) and event.packet.return_codes:
                    return event.packet.return_codes[0]
        finally:
            await probe.close()

    async def qos2_publish(self) -> bool:
        probe = await self.connect()
        if probe is None:
            return True
        try:
            await probe.send(Publish(self.topic("q2"), b"p", QoS.EXACTLY_ONCE, False, False, 1))
            event = await probe.next_event(self.timing.reply_bound)
            if isinstance(event, Closed):
                return False
            if isinstance(event, Received) and isinstance(event.packet, PubRec):
                await probe.send(PubRel(1))
                await probe.next_event(self.timing.reply_bound)  # PUBCOMP
            return True
        finally:
            await probe.close()

    async def empty_client_id(self) -> bool:
        probe = await Probe.open("prof", self.host, self.port, Trace(), self.timing)
        try:
            await probe.send(Connect(V311, "", True, 60))
            event = await probe.next_event(self.timing.reply_bound)
            return (isinstance(event, Received) and isinstance(event.packet, ConnAck)
                    and event.packet.return_code == 0)
        finally:
            await probe.close()

    async def characters(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        refused: list[str] = []
        closing: list[str] = []
        for char in PROBED_CHARACTERS:
            code = await self.grant(self.topic(f"c{char}x"), QoS.AT_MOST_ONCE)
            if code is None:
                closing.append(char)
            elif code == 0x80:
                refused.append(char)
        return tuple(refused), tuple(closing)

    async def queues_qos0_offline(self) -> bool | None:
        cid = self.client_id()
        topic = self.topic("offline")
        sub = await self.connect(cid, clean=False)
        if sub is None:
            return None
        await sub.send(Subscribe(1, (Subscription(topic, QoS.AT_MOST_ONCE),)))
        event = await sub.next_event(self.timing.reply_bound)
        await sub.send(Disconnect())
        await sub.close()
        if not (isinstance(event, Received) and isinstance(event.packet, SubAck)
                and event.packet.return_codes == (0,)):
            return None
        pub = await self.connect()
        if pub is None:
            return None
        await pub.send(Publish(topic, b"offline", QoS.AT_MOST_ONCE, False, False, None))
        await pub.send(raw.frame(0xC0, b""))  # PINGREQ: the PUBLISH was processed before
        await pub.next_event(self.timing.reply_bound)
        await pub.close()
        back = await self.connect(cid, clean=False)
        if back is None:
            return None
        try:
            while True:
                got = await back.next_event(self.timing.window * 3)
                if not isinstance(got, Received):
                    return False
                if isinstance(got.packet, Publish) and got.packet.topic == topic:
                    return True
        finally:
            await back.close()
            end = await self.connect(cid, clean=True)
            if end is not None:
                await end.close()


async def learn_profile(host: str, port: int, timing: Timing) -> BrokerProfile:
    """Probe the broker once for the choices it makes (about a second on a local broker)."""
    prober = _Prober(host, port, timing)
    try:
        granted = await prober.grant(prober.topic("qos"), QoS.EXACTLY_ONCE)
        max_qos = granted if granted in (0, 1, 2) else 2
        if granted is None or granted == 0x80:
            prober.notes.append("a QoS 2 subscription to a plain filter was refused; the"
                                " maximum QoS is assumed to be 2")
        plus = await prober.grant(prober.topic("w", "+"), QoS.AT_MOST_ONCE)
        hash_ = await prober.grant(prober.topic("w", "#"), QoS.AT_MOST_ONCE)
        refused, closing = await prober.characters()
        long_filter = ("l/" * (LONG_TOPIC_LEVELS - 1) + "x" * LONG_TOPIC_BYTES)
        long_code = await prober.grant(long_filter[:LONG_TOPIC_BYTES], QoS.AT_MOST_ONCE)
        return BrokerProfile(
            max_qos=max_qos,
            qos2_publish=await prober.qos2_publish(),
            wildcards=plus in (0, 1, 2) and hash_ in (0, 1, 2),
            empty_client_id=await prober.empty_client_id(),
            refused_characters=refused,
            closing_characters=closing,
            long_topics=long_code in (0, 1, 2),
            queues_qos0_offline=await prober.queues_qos0_offline(),
            probed=True,
            notes=tuple(prober.notes),
        )
    except (OSError, TimeoutError) as exc:
        return BrokerProfile(probed=False, notes=(f"probing failed: {exc!r}",))


@attrs.frozen
class BrokerProfile5:
    """What an MQTT 5.0 broker declared in its CONNACK (3.2.2.3), absent properties read
    as the spec defines them.

    At 5.0 the server *says* what it does not support instead of leaving the client to
    find out: a Maximum QoS below 2 [MQTT-3.2.2-9], Retain Available 0, Wildcard,
    Subscription Identifier and Shared Subscription Available 0, a Topic Alias Maximum,
    a Receive Maximum, a Maximum Packet Size, a Server Keep Alive. A check whose
    statement needs a feature the broker declares off is NOT APPLICABLE with that
    declaration as the reason, while the checks that it refuses the feature correctly
    (0x9E for a shared subscription it does not support) still run.
    """

    maximum_qos: int = 2
    """Maximum QoS; absent means 2 (3.2.2.3.4)."""
    retain_available: bool = True
    """Retain Available; absent means retained messages are supported (3.2.2.3.5)."""
    wildcard_available: bool = True
    """Wildcard Subscription Available; absent means supported (3.2.2.3.11)."""
    subscription_identifiers_available: bool = True
    """Subscription Identifiers Available; absent means supported (3.2.2.3.12)."""
    shared_available: bool = True
    """Shared Subscription Available; absent means supported (3.2.2.3.13)."""
    topic_alias_maximum: int = 0
    """Topic Alias Maximum; absent means 0: the client may send no alias (3.2.2.3.8)."""
    receive_maximum: int = 65535
    """Receive Maximum; absent means 65,535 (3.2.2.3.3)."""
    maximum_packet_size: int | None = None
    """Maximum Packet Size; absent means no limit beyond the protocol's (3.2.2.3.6)."""
    server_keep_alive: int | None = None
    """Server Keep Alive; absent means the client's Keep Alive holds [MQTT-3.2.2-22]."""
    probed: bool = False
    notes: tuple[str, ...] = ()

    def choices(self) -> list[str]:
        """Each feature the broker declared off or limited, as the CONNACK property says it."""
        out: list[str] = []
        if self.maximum_qos < 2:
            out.append(f"declares Maximum QoS {self.maximum_qos} in CONNACK (allowed"
                       " [MQTT-3.2.2-9])")
        if not self.retain_available:
            out.append("declares Retain Available 0 in CONNACK (3.2.2.3.5)")
        if not self.wildcard_available:
            out.append("declares Wildcard Subscription Available 0 in CONNACK (3.2.2.3.11)")
        if not self.subscription_identifiers_available:
            out.append("declares Subscription Identifiers Available 0 in CONNACK (3.2.2.3.12)")
        if not self.shared_available:
            out.append("declares Shared Subscription Available 0 in CONNACK (3.2.2.3.13)")
        if self.topic_alias_maximum == 0:
            out.append("accepts no Topic Alias from the client (Topic Alias Maximum absent"
                       " or 0, 3.2.2.3.8)")
        return out

    def lines(self) -> list[str]:
        """The profile for the report's "broker profile" section."""
        if not self.probed:
            return ["not probed (the checks assume every feature is available)", *self.notes]
        yes = {True: "yes", False: "no"}
        size = "no limit" if self.maximum_packet_size is None else str(self.maximum_packet_size)
        keep = "absent" if self.server_keep_alive is None else str(self.server_keep_alive)
        return [
            f"Maximum QoS: {self.maximum_qos}",
            f"Retain Available: {yes[self.retain_available]}",
            f"Wildcard Subscription Available: {yes[self.wildcard_available]}",
            "Subscription Identifiers Available:"
            f" {yes[self.subscription_identifiers_available]}",
            f"Shared Subscription Available: {yes[self.shared_available]}",
            f"Topic Alias Maximum: {self.topic_alias_maximum}",
            f"Receive Maximum: {self.receive_maximum}",
            f"Maximum Packet Size: {size}",
            f"Server Keep Alive: {keep}",
            *self.notes,
        ]


def profile_from_connack(connack: ConnAck) -> BrokerProfile5:
    """The 5.0 profile a CONNACK declares, each absent property read as 3.2.2.3 defines it."""
    props = connack.properties

    def flag(value: int | None) -> bool:
        return value is None or value == 1

    return BrokerProfile5(
        maximum_qos=2 if props.maximum_qos is None else props.maximum_qos,
        retain_available=flag(props.retain_available),
        wildcard_available=flag(props.wildcard_subscription_available),
        subscription_identifiers_available=flag(props.subscription_identifier_available),
        shared_available=flag(props.shared_subscription_available),
        topic_alias_maximum=props.topic_alias_maximum or 0,
        receive_maximum=65535 if props.receive_maximum is None else props.receive_maximum,
        maximum_packet_size=props.maximum_packet_size,
        server_keep_alive=props.server_keep_alive,
        probed=True,
    )


async def learn_profile5(host: str, port: int, timing: Timing) -> BrokerProfile5:
    """Read the 5.0 profile from the CONNACK to a plain CONNECT (one round trip).

    Probing never judges: a CONNACK that cannot be had leaves the profile unprobed
    (every feature assumed available) and the checks find out for themselves.
    """
    cid = f"mqrprof5{secrets.token_hex(3)}"
    try:
        probe = await Probe.open("prof", host, port, Trace(), timing,
                                 level=ProtocolLevel.MQTT_5)
    except (OSError, TimeoutError) as exc:
        return BrokerProfile5(notes=(f"probing failed: {exc!r}",))
    try:
        await probe.send(Connect(ProtocolLevel.MQTT_5, cid, True, 60))
        event = await probe.next_event(timing.reply_bound)
        if not (isinstance(event, Received) and isinstance(event.packet, ConnAck)
                and event.packet.return_code == 0):
            return BrokerProfile5(notes=(f"probing failed: a plain CONNECT got {event!r}",))
        await probe.send(Disconnect())
        return profile_from_connack(event.packet)
    finally:
        await probe.close()
