"""Topic Aliases (3.3.2.3.4): one map per direction of one Network Connection.

Theory of operation: the receiver of PUBLISHes says in its CONNECT (the
Client) or CONNACK (the Server) the highest Topic Alias it accepts, its Topic
Alias Maximum (0 when absent: no aliases at all). The sender may then send a
PUBLISH with a Topic Name and an alias, which sets or replaces the alias's
mapping, and later a PUBLISH with the alias alone and a zero-length Topic
Name, which the receiver reads as the mapped name. The receiver (3.3.4):

1. an alias of 0 [MQTT-3.3.2-8] or above its maximum [MQTT-3.3.2-9]
   [MQTT-3.3.2-11] is a Protocol Error: DISCONNECT 0x94 (Topic Alias invalid);
2. an alias it holds a mapping for: the zero-length name reads as the mapped
   one, a non-empty name replaces the mapping;
3. an alias it holds none for: a non-empty name sets it, a zero-length name is
   a Protocol Error: DISCONNECT 0x82.

A zero-length Topic Name without an alias is a Protocol Error too (3.3.2.1).
Every value from 1 to the maximum MUST be accepted [MQTT-3.3.2-12]
[MQTT-3.3.2-10], and no mapping outlives the connection [MQTT-3.3.2-7]: the
chart's ``connection_closed`` empties the map. The two directions' maps are
independent (alias 1 each way names different topics), so each direction has
its own ``TopicAliases``.

Server to Client (``sender="server"``): a PUBLISH the Client could not read is
the Server's fault: an alias of 0 [MQTT-3.3.2-8], above the Client's maximum
[MQTT-3.3.2-11] [MQTT-3.1.2-26] or when the Client allowed none
[MQTT-3.1.2-27]; an alias alone that maps to nothing, or no Topic Name at all,
names no topic, so none of the Client's filters can match it [MQTT-3.3.2-3]
(an empty name is no Topic Name [MQTT-4.7.3-1]). Client to Server
(``sender="client"``): the Client is at fault, and the model returns the
reactions the Server may have (4.13.1, ``mqttref.model.v5.reactions``); an
alias in range MUST be accepted, so a Server that closes on one breaks
[MQTT-3.3.2-12]. A Server that reads an alias by a mapping only an earlier
connection made breaks [MQTT-3.3.2-7]; ``previous`` keeps that map only to
name it (``carried_forward``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5.reactions import Reaction, Reactions, protocol_error

Side = Literal["server", "client"]

TOPIC_ALIAS_INVALID = 0x94
PROTOCOL_ERROR = 0x82
LARGEST_ALIAS = 65_535
"""A Topic Alias and a Topic Alias Maximum are Two Byte Integers."""


class AliasState(StrEnum):
    EMPTY = "empty"
    MAPPING = "mapping"
    PROTOCOL_ERROR = "protocol_error"


class AliasEvent(StrEnum):
    PUBLISH_TOPIC = "publish_topic"
    PUBLISH_ALIAS_WITH_TOPIC = "publish_alias_with_topic"
    PUBLISH_ALIAS_ONLY = "publish_alias_only"
    PUBLISH_ALIAS_INVALID = "publish_alias_invalid"
    PUBLISH_WITHOUT_TOPIC = "publish_without_topic"
    CONNECTION_CLOSED = "connection_closed"


A, AE = AliasState, AliasEvent
_ACCEPT = ("MQTT-3.3.2-12", "MQTT-3.3.2-10")
_INVALID = ("MQTT-3.3.2-8", "MQTT-3.3.2-9", "MQTT-3.3.2-11", "MQTT-4.13.1-1")


def _per_state() -> tuple[Transition, ...]:
    rows: list[Transition] = []
    for state in (A.EMPTY, A.MAPPING):
        rows += [
            Transition(state, AE.PUBLISH_TOPIC, state, ("MQTT-3.3.2-1",)),
            Transition(
                state, AE.PUBLISH_ALIAS_WITH_TOPIC, A.MAPPING, _ACCEPT, action="set_mapping"
            ),
            Transition(
                state, AE.PUBLISH_ALIAS_INVALID, A.PROTOCOL_ERROR, _INVALID, action="refuse_0x94"
            ),
            Transition(
                state,
                AE.PUBLISH_WITHOUT_TOPIC,
                A.PROTOCOL_ERROR,
                ("MQTT-4.13.1-1",),
                action="refuse_0x82",
            ),
        ]
    for state in AliasState:
        rows.append(
            Transition(
                state, AE.CONNECTION_CLOSED, A.EMPTY, ("MQTT-3.3.2-7",), action="forget_mappings"
            )
        )
    return tuple(rows)


TOPIC_ALIAS_5 = Chart(
    name="topic_alias_5",
    title="Topic Alias (MQTT 5.0)",
    description="One direction's Topic Alias map on one Network Connection (3.3.2.3.4, "
    "3.3.4), as the receiver keeps it: a Topic Name with an alias sets the mapping, an "
    "alias alone reads it; an alias out of range is DISCONNECT 0x94, an alias alone "
    "without a mapping DISCONNECT 0x82; the map empties with the connection.",
    states=states_of(
        AliasState,
        {
            A.EMPTY: "no alias is mapped (every connection starts here)",
            A.MAPPING: "at least one alias maps to a Topic Name",
            A.PROTOCOL_ERROR: "the receiver got a PUBLISH it cannot read: it closes "
            "the connection (DISCONNECT 0x94 or 0x82 first)",
        },
    ),
    events=events_of(
        AliasEvent,
        {
            AE.PUBLISH_TOPIC: "a PUBLISH with a Topic Name and no Topic Alias",
            AE.PUBLISH_ALIAS_WITH_TOPIC: "a PUBLISH with a Topic Name and a Topic Alias "
            "from 1 to the receiver's Topic Alias Maximum",
            AE.PUBLISH_ALIAS_ONLY: "a PUBLISH with a zero-length Topic Name and a Topic "
            "Alias from 1 to the receiver's Topic Alias Maximum",
            AE.PUBLISH_ALIAS_INVALID: "a PUBLISH with a Topic Alias of 0 or above the "
            "receiver's Topic Alias Maximum",
            AE.PUBLISH_WITHOUT_TOPIC: "a PUBLISH with a zero-length Topic Name and no Topic Alias",
            AE.CONNECTION_CLOSED: "the Network Connection closes",
        },
    ),
    initial=A.EMPTY,
    guards=("mapped", "unmapped"),
    actions=("set_mapping", "resolve", "refuse_0x94", "refuse_0x82", "forget_mappings"),
    protocol="5.0",
    transitions=(
        Transition(A.MAPPING, AE.PUBLISH_ALIAS_ONLY, A.MAPPING, _ACCEPT, "mapped", "resolve"),
        Transition(
            A.MAPPING,
            AE.PUBLISH_ALIAS_ONLY,
            A.PROTOCOL_ERROR,
            ("MQTT-4.13.1-1",),
            "unmapped",
            "refuse_0x82",
        ),
        Transition(
            A.EMPTY,
            AE.PUBLISH_ALIAS_ONLY,
            A.PROTOCOL_ERROR,
            ("MQTT-4.13.1-1", "MQTT-3.3.2-7"),
            action="refuse_0x82",
        ),
        *_per_state(),
    ),
)


def topic_alias_maximum(value: int | None) -> int:
    """The Topic Alias Maximum a CONNECT or CONNACK property stands for (absent: 0)."""
    if value is None:
        return 0
    if not 0 <= value <= LARGEST_ALIAS:
        raise UsageError(f"Topic Alias Maximum {value} is no Two Byte Integer (1.5.2)")
    return value


@attrs.frozen
class Resolved:
    """What a PUBLISH's Topic Alias came to.

    ``topic`` is the Topic Name the receiver reads (None: it cannot read one);
    ``reactions`` the Server's allowed reactions to a Client's PUBLISH that
    used an alias (None for a Server's PUBLISH, or one without an alias).
    """

    topic: str | None
    reactions: Reactions | None = None


@attrs.define
class TopicAliases:
    """The receiver's Topic Alias map for one direction of one connection; see the module."""

    maximum: int = attrs.field(converter=topic_alias_maximum)
    sender: Side
    client: str = "?"
    state: str = AliasState.EMPTY
    mappings: dict[int, str] = attrs.field(factory=dict)
    previous: dict[int, str] = attrs.field(factory=dict)

    @classmethod
    def server_to_client(cls, client_maximum: int | None, client: str = "?") -> TopicAliases:
        """The Client's map of the Server's aliases, bounded by its CONNECT's maximum."""
        return cls(client_maximum, "server", client)

    @classmethod
    def client_to_server(cls, server_maximum: int | None, client: str = "?") -> TopicAliases:
        """The Server's map of a Client's aliases, bounded by its CONNACK's maximum."""
        return cls(server_maximum, "client", client)

    def _event(self, topic: str, alias: int | None) -> AliasEvent:
        if alias is None:
            return AE.PUBLISH_TOPIC if topic else AE.PUBLISH_WITHOUT_TOPIC
        if not 1 <= alias <= self.maximum:
            return AE.PUBLISH_ALIAS_INVALID
        return AE.PUBLISH_ALIAS_WITH_TOPIC if topic else AE.PUBLISH_ALIAS_ONLY

    def publish(self, topic: str, alias: int | None = None) -> Resolved:
        """A PUBLISH with Topic Name ``topic`` (may be "") and Topic Alias ``alias`` crossed.

        From the Server: returns the Topic Name, or raises ``Violation``. From a
        Client: returns the Topic Name the Server must read, or (``topic`` None)
        the reactions allowed to the Server when the PUBLISH is a Protocol Error.
        """
        if alias is not None and not 0 <= alias <= LARGEST_ALIAS:
            raise UsageError(f"Topic Alias {alias} is no Two Byte Integer (1.5.2)")
        event = self._event(topic, alias)
        if self.sender == "server" and self._unreadable(event, alias):
            raise self._server_violation(event, alias)
        row = TOPIC_ALIAS_5.fire(
            self.state, event, lambda guard: (alias in self.mappings) == (guard == "mapped")
        )
        self.state = row.target
        if row.action == "set_mapping" and alias is not None:
            self.mappings[alias] = topic
        if row.action in ("refuse_0x94", "refuse_0x82"):
            return Resolved(None, self._refusal(event, alias))
        name = self.mappings[alias] if row.action == "resolve" and alias is not None else topic
        if self.sender == "client" and alias is not None:
            return Resolved(
                name,
                Reactions(
                    frozenset({Reaction.HANDLE}),
                    ("MQTT-3.3.2-12",),
                    f"used Topic Alias {alias}, within the Server's Topic Alias Maximum "
                    f"({self.maximum})",
                ),
            )
        return Resolved(name)

    def _unreadable(self, event: AliasEvent, alias: int | None) -> bool:
        if event in (AE.PUBLISH_ALIAS_INVALID, AE.PUBLISH_WITHOUT_TOPIC):
            return True
        return event == AE.PUBLISH_ALIAS_ONLY and alias not in self.mappings

    def _server_violation(self, event: AliasEvent, alias: int | None) -> Violation:
        arrived = f"PUBLISH, Topic Alias {alias}"
        if event == AE.PUBLISH_WITHOUT_TOPIC:
            return Violation(
                self.client,
                "the Server sent a PUBLISH with a zero-length Topic "
                "Name and no Topic Alias: it names no topic",
                refs=("MQTT-4.7.3-1", "MQTT-3.3.2-3"),
                arrived="PUBLISH, Topic Name ''",
            )
        if alias == 0:
            return Violation(
                self.client,
                "the Server sent a Topic Alias of 0",
                refs=("MQTT-3.3.2-8",),
                arrived=arrived,
            )
        if event == AE.PUBLISH_ALIAS_INVALID:
            refs = ("MQTT-3.1.2-27",) if self.maximum == 0 else ("MQTT-3.3.2-11", "MQTT-3.1.2-26")
            return Violation(
                self.client,
                f"the Server sent Topic Alias {alias} above the Client's Topic Alias Maximum "
                f"({self.maximum}{', or none sent' if self.maximum == 0 else ''})",
                refs=refs,
                allowed=[f"Topic Alias 1..{self.maximum}" if self.maximum else "no Topic Alias"],
                arrived=arrived,
            )
        before = " (mapped only on an earlier connection; mappings do not carry forward)"
        return Violation(
            self.client,
            f"the Server sent Topic Alias {alias} alone, which maps to no Topic Name on this "
            f"connection{before if alias in self.previous else ''}: the PUBLISH names no topic "
            "any subscription could match",
            refs=("MQTT-3.3.2-3",),
            allowed=[f"Topic Alias {a} alone" for a in sorted(self.mappings)]
            + ["a Topic Name, with or without an alias"],
            arrived=arrived + ", Topic Name ''",
        )

    def _refusal(self, event: AliasEvent, alias: int | None) -> Reactions:
        if event == AE.PUBLISH_ALIAS_INVALID:
            rule = (
                "of 0 [MQTT-3.3.2-8]"
                if alias == 0
                else (f"above the Server's Topic Alias Maximum ({self.maximum}) [MQTT-3.3.2-9]")
            )
            return protocol_error(TOPIC_ALIAS_INVALID, f"used a Topic Alias {rule}")
        if event == AE.PUBLISH_WITHOUT_TOPIC:
            return protocol_error(
                PROTOCOL_ERROR, "had a zero-length Topic Name and no Topic Alias (3.3.2.1)"
            )
        return protocol_error(
            PROTOCOL_ERROR,
            f"used Topic Alias {alias} alone before any Topic Name mapped it "
            "on this connection (3.3.4)",
        )

    def carried_forward(self, alias: int) -> str | None:
        """The Topic Name an earlier connection mapped ``alias`` to, if this one has not.

        A Server that delivers a Client's alias-alone PUBLISH under that name
        read a mapping it must not carry forward [MQTT-3.3.2-7].
        """
        return None if alias in self.mappings else self.previous.get(alias)

    def connection_closed(self) -> None:
        """The Network Connection closed: no mapping carries forward [MQTT-3.3.2-7]."""
        row = TOPIC_ALIAS_5.fire(self.state, AE.CONNECTION_CLOSED)
        self.state = row.target
        self.previous, self.mappings = self.mappings or self.previous, {}
