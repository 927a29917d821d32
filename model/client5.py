"""What a 5.0 client must keep on one Network Connection: the terms of the server's CONNACK.

Theory of operation: ``ClientModel`` judges the rules every level shares (QoS
flows, packet ids, CONNECT first); when the CONNECT is level 5 it opens one
``ClientConnection5`` per Network Connection for what 5.0 adds, judged from
packets only:

- flow control (4.9): the server's Receive Maximum from CONNACK (65,535 when
  absent) is the client's send quota. Each QoS 1 or 2 PUBLISH takes one; a
  PUBACK, a PUBCOMP or a PUBREC of 0x80 or more gives one back; at zero the
  client MUST NOT send another [MQTT-3.3.4-7] [MQTT-4.9.0-2], while QoS 0 and
  every other packet still flow [MQTT-4.9.0-3]. The quota starts again with
  each connection (4.9), so the PUBLISHes a client re-sends after resuming a
  session take quota on the new one. ``SendQuota`` (``model.v5.flow_control``)
  counts it;
- Topic Aliases (3.3.2.3.4): a Topic Alias of 0 [MQTT-3.3.2-8], above the
  server's Topic Alias Maximum [MQTT-3.2.2-17] [MQTT-3.3.2-9], or any alias
  when the server gave none [MQTT-3.2.2-18] is the client's fault; so is an
  alias alone (a zero-length Topic Name) that no PUBLISH of this connection
  mapped (3.3.4: a Protocol Error; the PUBLISH names no topic of at least one
  character [MQTT-4.7.3-1]); no mapping outlives the connection (3.3.2-7).
  ``TopicAliases`` (``model.v5.topic_alias``) keeps the server's map of them;
  a second map resolves the server's own aliases, bounded by the client's
  CONNECT, whose breaches are the server's fault;
- the server's other limits that a client can break with one PUBLISH: a QoS
  above Maximum QoS [MQTT-3.2.2-11], RETAIN 1 when Retain Available is 0
  [MQTT-3.2.2-14], and a Subscription Identifier, which a client's PUBLISH
  never carries [MQTT-3.3.4-6].

Before CONNACK the server's terms are unknown: a client MAY send packets
then (3.1.4), and the CONNACK's terms apply to them when it arrives. The
server's send quota towards the client (the client's Receive Maximum) is
judged too, as the server's fault [MQTT-3.3.4-9]. A Maximum Packet Size needs
the encoded length, which a packet alone does not give: a harness that knows it
passes it (``sent(packet, size)``), and no packet above the server's limit may
go [MQTT-3.2.2-15].
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
)
from mqttref.model.errors import Violation
from mqttref.model.events import describe
from mqttref.model.v5.flow_control import Acknowledgement, SendQuota
from mqttref.model.v5.topic_alias import TopicAliases

DUE_REFS_5: dict[str, tuple[str, ...]] = {
    "PUBLISH (DUP=1)": ("MQTT-4.4.0-1", "MQTT-3.3.1-1"),
    "PUBREL": ("MQTT-4.3.3-4",),
    "PUBACK": ("MQTT-4.3.2-4",),
    "PUBREC": ("MQTT-4.3.3-8",),
    "PUBCOMP": ("MQTT-4.3.3-11",),
}
"""The 5.0 statement of each packet a client may owe (``SideFlows.due`` cites 3.1.1's)."""

_ACKS: dict[type, Acknowledgement] = {PubAck: "PUBACK", PubRec: "PUBREC", PubComp: "PUBCOMP"}


@attrs.define
class ClientConnection5:
    """One level-5 Network Connection as its client must keep it; see the module docstring."""

    connect: Connect
    name: str = "client"
    connack: ConnAck | None = None
    quota: SendQuota | None = None
    """The client's send quota: None until CONNACK gives the server's Receive Maximum."""
    aliases: TopicAliases | None = None
    """The server's map of the client's aliases: None until CONNACK gives its maximum."""
    early: list[Publish] = attrs.field(factory=list)
    """PUBLISHes the client sent before CONNACK, judged when its terms arrive."""
    server_quota: SendQuota = attrs.field(init=False)
    server_aliases: TopicAliases = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        props = self.connect.properties
        self.server_quota = SendQuota.server_to_client(props.receive_maximum, "server")
        self.server_aliases = TopicAliases.server_to_client(props.topic_alias_maximum, "server")

    def _violation(self, message: str, refs: list[str], packet: Packet) -> Violation:
        return Violation(self.name, message, refs=refs, arrived=describe(packet))

    # ------------------------------------------------------------ client sends

    def sent_publish(self, packet: Publish) -> None:
        """The client sent ``packet``: raises ``Violation`` if the server's terms forbid it.

        Called before the QoS flows take it, so a PUBLISH beyond the quota or
        through a bad alias is named for that, whatever the flows say.
        """
        if packet.properties.subscription_identifiers:
            raise self._violation(
                "a PUBLISH from a client carries a Subscription Identifier",
                ["MQTT-3.3.4-6"],
                packet,
            )
        if self.connack is None:
            self.early.append(packet)
            return
        self._within_terms(packet)

    def _within_terms(self, packet: Publish) -> None:
        assert self.connack is not None, "judged once CONNACK set the terms"
        assert self.quota is not None
        props = self.connack.properties
        maximum_qos = 2 if props.maximum_qos is None else props.maximum_qos
        if packet.qos > maximum_qos:
            raise self._violation(
                f"a QoS {int(packet.qos)} PUBLISH above the server's Maximum QoS {maximum_qos}",
                ["MQTT-3.2.2-11"],
                packet,
            )
        if packet.retain and props.retain_available == 0:
            raise self._violation(
                "RETAIN 1 though the server's CONNACK said Retain Available 0",
                ["MQTT-3.2.2-14"],
                packet,
            )
        taken = packet.qos > 0 and packet.packet_id not in self.quota.unacknowledged
        refusal = self.quota.refusal(int(packet.qos)) if taken else None
        if refusal is not None:
            raise refusal
        self._alias(packet)  # the last check: it maps the alias when it passes
        if taken:
            self.quota.publish(int(packet.qos), packet.packet_id)
        elif packet.qos == 0:
            self.quota.publish(0)

    def _alias(self, packet: Publish) -> None:
        assert self.aliases is not None
        alias = packet.properties.topic_alias
        maximum = self.aliases.maximum
        if alias == 0:
            raise self._violation("a Topic Alias of 0", ["MQTT-3.3.2-8"], packet)
        if alias is not None and alias > maximum:
            refs = ["MQTT-3.2.2-18"] if maximum == 0 else ["MQTT-3.2.2-17", "MQTT-3.3.2-9"]
            raise self._violation(
                f"Topic Alias {alias} above the server's Topic Alias Maximum {maximum}"
                + (" (absent or 0: no alias at all)" if maximum == 0 else ""),
                refs,
                packet,
            )
        if not packet.topic and alias not in self.aliases.mappings:
            what = (
                f"Topic Alias {alias} alone, which no PUBLISH on this connection mapped "
                "(3.3.4: a Protocol Error; mappings never outlive a connection, 3.3.2-7)"
                if alias is not None
                else "a zero-length Topic Name without a Topic Alias"
            )
            raise self._violation(f"{what}: the PUBLISH names no topic", ["MQTT-4.7.3-1"], packet)
        self.aliases.publish(packet.topic, alias)  # checked above: a refused packet changes nothing

    def sent_size(self, packet: Packet, size: int) -> None:
        """The client sent ``packet`` as ``size`` bytes, fixed header included."""
        limit = None if self.connack is None else self.connack.properties.maximum_packet_size
        if limit is not None and size > limit:
            raise self._violation(
                f"a packet of {size} bytes above the server's Maximum Packet Size {limit}",
                ["MQTT-3.2.2-15"],
                packet,
            )

    def sent_ack(self, packet: Packet) -> None:
        """The client acknowledged a server's PUBLISH: the server's quota may grow."""
        if isinstance(packet, (PubAck, PubRec, PubComp)):
            self.server_quota.acknowledged(
                _ACKS[type(packet)], packet.packet_id, packet.reason_code
            )

    # --------------------------------------------------------- client receives

    def received_connack(self, packet: ConnAck) -> None:
        """CONNACK sets the server's terms; PUBLISHes sent before it are judged by them."""
        self.connack = packet
        props = packet.properties
        self.quota = SendQuota.client_to_server(props.receive_maximum, self.name)
        self.aliases = TopicAliases.client_to_server(props.topic_alias_maximum, self.name)
        early, self.early = self.early, []
        for publish in early:
            self._within_terms(publish)

    def received_publish(self, packet: Publish) -> None:
        """A server's PUBLISH: its alias resolves within the client's Topic Alias Maximum,
        and it stays within the client's Receive Maximum; breaches are the server's."""
        self.server_aliases.publish(packet.topic, packet.properties.topic_alias)
        if packet.qos > 0:
            self.server_quota.publish(int(packet.qos), packet.packet_id)
        else:
            self.server_quota.publish(0)

    def received_ack(self, packet: PubAck | PubRec | PubComp) -> None:
        """The server answered a client's PUBLISH: quota comes back (4.9)."""
        if self.quota is not None:
            self.quota.acknowledged(_ACKS[type(packet)], packet.packet_id, packet.reason_code)

    def released(self, packet_id: int) -> None:
        """The client sent PUBREL."""
        if self.quota is not None:
            self.quota.released(packet_id)

    def closed(self) -> None:
        """The Network Connection closed: quota and aliases end with it (4.9, 3.3.2-7)."""
        for quota in (self.quota, self.server_quota):
            if quota is not None and quota.state != "closed":
                quota.closed()
        for aliases in (self.aliases, self.server_aliases):
            if aliases is not None:
                aliases.connection_closed()
