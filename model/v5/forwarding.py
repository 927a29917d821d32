"""How the server forwards Application Messages under MQTT 5.0: to which subscriptions,
under which Topic Name, in which order, and with which DUP flag and Packet Identifier
(1.5.4, 2.2.1, 3.3.1, 3.10.4, 4.6, 4.7).

Theory of operation: the broker model decides which messages are owed to whom; these
are the rules a forwarded PUBLISH is checked against once it arrives, each a pure
function or a small record of what was sent:

- matching is code point by code point: no normalization of Topic Names or Filters
  [MQTT-4.7.3-4], U+FEFF (0xEF 0xBB 0xBF) is a character like any other and never
  stripped [MQTT-1.5.4-3], and a filter starting with a wildcard never matches a Topic
  Name starting with ``$`` [MQTT-4.7.2-1] (``check_match``); the forwarded PUBLISH
  carries the published Topic Name unchanged (``check_topic``);
- every Topic is an Ordered Topic on Non-shared Subscriptions [MQTT-4.6.0-6]: for one
  publisher, Topic and QoS, a subscriber gets the messages in the order the server
  received them [MQTT-4.6.0-5] (``OrderedTopics5``); a Shared Subscription's messages
  carry no such promise;
- DUP says whether this PUBLISH is a re-delivery and nothing else: not the DUP flag the
  publisher's PUBLISH carried [MQTT-3.3.1-3] [MQTT-3.3.1-1]; QoS 0 has no Packet
  Identifier [MQTT-2.2.1-2] and QoS 1 or 2 a non-zero one [MQTT-2.2.1-4]
  (``check_identity``);
- an UNSUBSCRIBE does not stop the QoS 1 and 2 deliveries the server has started to
  the client for the filters it removes: they are completed [MQTT-3.10.4-3]
  (``StartedDeliveries5``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import attrs

from mqttref.model.errors import UsageError, Violation
from mqttref.model.obligations import Obligation
from mqttref.model.topics import matches

BOM = "\ufeff"
"""U+FEFF, which 0xEF 0xBB 0xBF always encodes [MQTT-1.5.4-3]."""


def _normal_forms(text: str) -> set[str]:
    """``text`` as a server that normalizes or strips U+FEFF might read it."""
    forms = {unicodedata.normalize(form, text) for form in ("NFC", "NFD", "NFKC", "NFKD")}
    return forms | {form.replace(BOM, "") for form in forms}


def renamed(published: str, forwarded: str) -> bool:
    """Whether ``forwarded`` is ``published`` as a server that normalizes Topic Names or
    strips U+FEFF would write it (and not the same name)."""
    return forwarded != published and forwarded in _normal_forms(published)


def check_match(client: str, topic_filter: str, topic: str) -> None:
    """Raise ``Violation`` when a message on ``topic`` was forwarded for a subscription to
    ``topic_filter`` that does not match it, naming why a server might have thought it
    did."""
    if matches(topic_filter, topic):
        return
    if topic_filter[:1] in ("#", "+") and topic[:1] == "$" and matches(
            topic_filter, "x" + topic[1:]):
        refs: tuple[str, ...] = ("MQTT-4.7.2-1",)
    elif any(matches(f, t) for f in _normal_forms(topic_filter) for t in _normal_forms(topic)):
        refs = (("MQTT-1.5.4-3", "MQTT-4.7.3-4") if BOM in topic_filter + topic
                else ("MQTT-4.7.3-4",))
    else:
        refs = ("MQTT-3.3.2-3",)
    raise Violation(client, f"a message on {topic!r} forwarded for the filter {topic_filter!r}",
                    refs=refs, allowed=(f"only Topic Names {topic_filter!r} matches",),
                    arrived=f"PUBLISH {topic!r}")


def check_topic(client: str, published: str, forwarded: str) -> None:
    """The forwarded PUBLISH names the Topic the message was published to, unchanged:
    U+FEFF kept [MQTT-1.5.4-3], nothing normalized or substituted [MQTT-4.7.3-4]."""
    if forwarded == published:
        return
    refs = ("MQTT-1.5.4-3",) if forwarded == published.replace(BOM, "") else ("MQTT-4.7.3-4",)
    raise Violation(client, "the forwarded Topic Name differs from the published one",
                    refs=refs, allowed=(repr(published),), arrived=repr(forwarded))


def check_identity(client: str, *, qos: int, packet_id: int | None, dup: bool,
                   retransmission: bool) -> None:
    """A forwarded PUBLISH's Packet Identifier and DUP flag: the identifier is there
    exactly for QoS 1 and 2, and not 0 [MQTT-2.2.1-2] [MQTT-2.2.1-4]; DUP is 1 exactly
    when this PUBLISH re-delivers one the server sent before, whatever DUP the publisher
    used [MQTT-3.3.1-3] [MQTT-3.3.1-1]; never on QoS 0 [MQTT-3.3.1-2]."""
    if qos == 0 and packet_id is not None:
        _identity(client, "a Packet Identifier in a QoS 0 PUBLISH", ("MQTT-2.2.1-2",),
                  "no Packet Identifier", f"Packet Identifier {packet_id}")
    if qos > 0 and not packet_id:
        _identity(client, f"QoS {qos} PUBLISH without a non-zero Packet Identifier",
                  ("MQTT-2.2.1-4",), "a Packet Identifier from 1 to 65535", str(packet_id))
    if qos == 0 and dup:
        _identity(client, "DUP 1 on QoS 0", ("MQTT-3.3.1-2",), "DUP 0", "DUP 1")
    if dup and not retransmission:
        _identity(client, "DUP 1 on the first delivery of a message", ("MQTT-3.3.1-3",),
                  "DUP 0", "DUP 1")
    if retransmission and not dup:
        _identity(client, "a re-delivery with DUP 0", ("MQTT-3.3.1-1", "MQTT-3.3.1-3"),
                  "DUP 1", "DUP 0")


def _identity(client: str, message: str, refs: tuple[str, ...], allowed: str,
              arrived: str) -> None:
    raise Violation(client, message, refs=refs, allowed=(allowed,), arrived=arrived)


@attrs.define
class OrderedTopics5:
    """What one subscriber has received, per publisher, Topic and QoS: the sequence
    number (the server's order of receipt) of the latest message."""

    client: str = "client"
    latest: dict[tuple[str, str, int], int] = attrs.field(factory=dict)

    def forwarded(self, publisher: str, topic: str, qos: int, received: int, *,
                  shared: bool = False) -> None:
        """A message the server received as number ``received`` from ``publisher`` reached
        this subscriber at ``qos``; raise ``Violation`` if a later one from the same
        publisher, Topic and QoS came first on a Non-shared Subscription."""
        if shared:
            return  # 4.6 orders Non-shared Subscriptions only [MQTT-4.6.0-6]
        key = (publisher, topic, qos)
        before = self.latest.get(key)
        if before is not None and received < before:
            raise Violation(
                self.client,
                f"message {received} of {publisher} on {topic!r} at QoS {qos} after {before}",
                refs=("MQTT-4.6.0-5", "MQTT-4.6.0-6"),
                allowed=(f"messages of {publisher} on {topic!r} at QoS {qos} in the order "
                         "received",),
                arrived=f"message {received}")
        self.latest[key] = received


@attrs.frozen
class Started:
    packet_id: int
    qos: int
    topic: str
    released: bool = False
    """QoS 2: the client's PUBREC came, so PUBREL is the server's next step."""
    pubrel_sent: bool = False


@attrs.define
class StartedDeliveries5:
    """The QoS 1 and 2 PUBLISHes the server has sent one client and not completed."""

    client: str = "client"
    started: dict[int, Started] = attrs.field(factory=dict)
    unsubscribed: set[str] = attrs.field(factory=set)
    """Topic Names of started deliveries whose subscriptions an UNSUBSCRIBE removed."""

    def sent(self, packet_id: int, qos: int, topic: str) -> None:
        if qos not in (1, 2) or packet_id in self.started:
            raise UsageError("a started delivery is a QoS 1 or 2 PUBLISH under a free id")
        self.started[packet_id] = Started(packet_id, qos, topic)

    def client_acknowledged(self, kind: str, packet_id: int) -> None:
        """The client's PUBACK (QoS 1), PUBREC or PUBCOMP (QoS 2)."""
        started = self.started.get(packet_id)
        if started is None:
            raise UsageError(f"{kind} {packet_id} acknowledges nothing started")
        if kind == "PUBREC" and started.qos == 2:
            self.started[packet_id] = attrs.evolve(started, released=True)
        else:
            del self.started[packet_id]

    def unsubscribe(self, removed: Iterable[str]) -> None:
        """An UNSUBSCRIBE removed the subscriptions with these Topic Filters."""
        filters = list(removed)
        self.unsubscribed |= {s.topic for s in self.started.values()
                              if any(matches(f, s.topic) for f in filters)}

    def pubrel(self, packet_id: int) -> None:
        started = self.started.get(packet_id)
        if started is None or not started.released:
            raise UsageError(f"PUBREL {packet_id} releases nothing the model knows")
        self.started[packet_id] = attrs.evolve(started, pubrel_sent=True)

    def abandoned(self, packet_id: int) -> None:
        """The server gave up a started delivery (a PUBREL it will never send: the client
        saw a DISCONNECT or close with the delivery still owed, and the session is kept)."""
        started = self.started.get(packet_id)
        if started is not None and started.topic in self.unsubscribed:
            raise Violation(self.client, f"the delivery {packet_id} on {started.topic!r} "
                            "dropped after UNSUBSCRIBE", refs=("MQTT-3.10.4-3",),
                            allowed=("its completion",), arrived="nothing")

    def obligations(self) -> list[Obligation]:
        """The PUBREL the server owes for a QoS 2 delivery it started before an UNSUBSCRIBE
        removed its subscription (the other steps are the client's, or a re-send on
        reconnection, 4.4)."""
        return [Obligation(self.client, f"PUBREL {s.packet_id} completing the delivery on "
                           f"{s.topic!r}", ("MQTT-3.10.4-3",))
                for s in self.started.values()
                if s.topic in self.unsubscribed and s.released and not s.pubrel_sent]
