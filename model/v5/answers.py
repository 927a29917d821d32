"""SUBACK and UNSUBACK under MQTT 5.0: one answer per request, under its Packet
Identifier, with one Reason Code per Topic Filter in the request's order (2.2.1, 3.8.4,
3.9.3, 3.10.4, 3.11.3).

Theory of operation: ``Answers5`` keeps the SUBSCRIBE and UNSUBSCRIBE packets of one
connection that the server has not answered yet, each with the Reason Code situations
(``reason_codes.Situation``) of its Topic Filters, and judges each SUBACK or UNSUBACK
the server sends:

- it carries the Packet Identifier of a request still unanswered [MQTT-2.2.1-6]
  ([MQTT-3.8.4-2] for SUBACK, [MQTT-3.10.4-5] for UNSUBACK); a second answer to one
  request is no answer to anything: a request of several Topic Filters is answered
  once, its codes combined [MQTT-3.8.4-5] [MQTT-3.10.4-6];
- it has one Reason Code per Topic Filter [MQTT-3.8.4-6] [MQTT-3.9.3-2]
  [MQTT-3.11.3-2];
- the codes come in the request's order [MQTT-3.9.3-1] [MQTT-3.11.3-1]: when the codes
  would all fit if read in another order, the order is what is wrong; otherwise the
  first code its filter's situations do not allow is judged by ``reason_codes.check``.

Handling a request "as if it had received a sequence of multiple" requests
[MQTT-3.8.4-5] [MQTT-3.10.4-6] has consequences a harness needs when it says what each
filter's situation is: ``subscriptions_in_sequence`` (a filter given twice in one
SUBSCRIBE ends with the later options, the replacement [MQTT-3.8.4-3] applied in order)
and ``unsubscribe_in_sequence`` (a filter given twice in one UNSUBSCRIBE deletes the
subscription once: the second finds none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import attrs

from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5 import reason_codes
from mqttref.model.v5.reason_codes import PacketKind, Situation

_O = TypeVar("_O")

_ID_REFS = {PacketKind.SUBACK: ("MQTT-2.2.1-6", "MQTT-3.8.4-2"),
            PacketKind.UNSUBACK: ("MQTT-2.2.1-6", "MQTT-3.10.4-5")}
_ONCE_REFS = {PacketKind.SUBACK: ("MQTT-3.8.4-5",), PacketKind.UNSUBACK: ("MQTT-3.10.4-6",)}
_COUNT_REFS = {PacketKind.SUBACK: ("MQTT-3.8.4-6", "MQTT-3.9.3-2"),
               PacketKind.UNSUBACK: ("MQTT-3.11.3-2", "MQTT-3.10.4-6")}
_ORDER_REFS = {PacketKind.SUBACK: ("MQTT-3.9.3-1",), PacketKind.UNSUBACK: ("MQTT-3.11.3-1",)}


@attrs.frozen
class Request:
    """A SUBSCRIBE (answered by SUBACK) or UNSUBSCRIBE (by UNSUBACK) the client sent."""

    answer: PacketKind
    packet_id: int
    filters: tuple[str, ...]
    situations: tuple[frozenset[Situation], ...]
    """Per Topic Filter, in the request's order: the facts its Reason Code answers."""


def _fits(kind: PacketKind, code: int, facts: frozenset[Situation]) -> bool:
    return reason_codes.server_may_send(kind, code) and code in reason_codes.allowed_in(
        kind, facts)


def _reorderable(kind: PacketKind, codes: Sequence[int],
                 situations: Sequence[frozenset[Situation]]) -> bool:
    """Whether the codes, read in some order, each fit a different filter (a bipartite
    matching of codes to filters, found by augmenting paths)."""
    owner: dict[int, int] = {}

    def place(code_at: int, seen: set[int]) -> bool:
        for filter_at, facts in enumerate(situations):
            if filter_at in seen or not _fits(kind, codes[code_at], facts):
                continue
            seen.add(filter_at)
            if filter_at not in owner or place(owner[filter_at], seen):
                owner[filter_at] = code_at
                return True
        return False

    return all(place(at, set()) for at in range(len(codes)))


def check_codes(client: str, kind: PacketKind, situations: Sequence[frozenset[Situation]],
                codes: Sequence[int]) -> None:
    """Raise ``Violation`` unless ``codes`` answer the request's filters, one code each,
    in order, each one its filter's situations allow."""
    if kind not in _COUNT_REFS:
        raise UsageError(f"{kind} answers no request of Topic Filters")
    if len(codes) != len(situations):
        raise Violation(client, f"{kind} with {len(codes)} Reason Codes for "
                        f"{len(situations)} Topic Filters", refs=_COUNT_REFS[kind],
                        allowed=(f"{len(situations)} Reason Codes",),
                        arrived=f"{kind} {' '.join(f'0x{c:02X}' for c in codes)}")
    wrong = [at for at, (code, facts) in enumerate(zip(codes, situations, strict=True))
             if not _fits(kind, code, facts)]
    if not wrong:
        return
    if _reorderable(kind, codes, situations):
        raise Violation(client, f"{kind}'s Reason Codes are not in the order of the Topic "
                        "Filters", refs=_ORDER_REFS[kind],
                        allowed=(" then ".join(
                            "/".join(f"0x{c:02X}" for c in sorted(
                                reason_codes.allowed_in(kind, facts)))
                            for facts in situations),),
                        arrived=f"{kind} {' '.join(f'0x{c:02X}' for c in codes)}")
    reason_codes.check(client, kind, situations[wrong[0]], codes[wrong[0]])


@attrs.define
class Answers5:
    """The unanswered SUBSCRIBE and UNSUBSCRIBE packets of one connection."""

    client: str = "client"
    waiting: list[Request] = attrs.field(factory=list)
    answered: list[Request] = attrs.field(factory=list)

    def request(self, answer: PacketKind, packet_id: int, filters: Sequence[str],
                situations: Sequence[frozenset[Situation]]) -> Request:
        """The client sent a SUBSCRIBE (``answer`` SUBACK) or an UNSUBSCRIBE (UNSUBACK)."""
        if answer not in _COUNT_REFS or not filters or len(filters) != len(situations):
            raise UsageError("a request names its answer and one situation per Topic Filter")
        if not 1 <= packet_id <= 0xFFFF:
            raise UsageError(f"Packet Identifier {packet_id} is not one a client may use")
        request = Request(answer, packet_id, tuple(filters), tuple(situations))
        self.waiting.append(request)
        return request

    def answer(self, kind: PacketKind, packet_id: int, codes: Sequence[int]) -> Request:
        """The server sent SUBACK or UNSUBACK; raise ``Violation`` unless it answers the
        oldest unanswered request with this Packet Identifier, as that request asks."""
        for request in self.waiting:
            if request.answer == kind and request.packet_id == packet_id:
                break
        else:
            again = any(r.answer == kind and r.packet_id == packet_id for r in self.answered)
            raise Violation(
                self.client,
                f"{kind} {packet_id} " + ("answers a request already answered: one answer "
                                          "combines every Topic Filter's" if again
                                          else "answers no request"),
                refs=_ONCE_REFS[kind] if again else _ID_REFS[kind],
                allowed=tuple(f"{r.answer} {r.packet_id}" for r in self.waiting),
                arrived=f"{kind} {packet_id}")
        check_codes(self.client, kind, request.situations, codes)
        self.waiting.remove(request)
        self.answered.append(request)
        return request


def subscriptions_in_sequence(pairs: Iterable[tuple[str, _O]]) -> dict[str, _O]:
    """The subscriptions one SUBSCRIBE leaves, read as a sequence of SUBSCRIBE packets
    [MQTT-3.8.4-5]: a Topic Filter given again replaces the earlier one [MQTT-3.8.4-3],
    so its last options stand."""
    made: dict[str, _O] = {}
    for topic_filter, options in pairs:
        made.pop(topic_filter, None)
        made[topic_filter] = options
    return made


def unsubscribe_in_sequence(filters: Sequence[str], existing: Mapping[str, object] | Iterable[str]
                            ) -> tuple[frozenset[Situation], ...]:
    """Each Topic Filter's UNSUBACK situations, the UNSUBSCRIBE read as a sequence of
    UNSUBSCRIBE packets [MQTT-3.10.4-6]: a filter deletes its subscription if one is left
    by the filters before it [MQTT-3.10.4-1], so a repeated filter finds none."""
    left = set(existing)
    found: list[frozenset[Situation]] = []
    for topic_filter in filters:
        found.append(reason_codes.unsuback_situations(existed=topic_filter in left))
        left.discard(topic_filter)
    return tuple(found)
