"""MQTT 5.0 Reason Codes: which ones the server may send, in which packet, in which situation (2.4).

Theory of operation: three layers, each data first.

1. Table 2-6 says which packets a Reason Code belongs to, and each packet's own
   table (3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1,
   3.15.2.1) lists its codes with, for DISCONNECT and AUTH, who may send each.
   A code outside the packet's table breaks that packet's "MUST use one of the
   ... Reason Codes" statement (``PACKET_RULES``). The two kinds of table agree
   except for one code: Table 2-6 gives 0x8C (Bad authentication method) to
   DISCONNECT, the DISCONNECT table does not list it; the model does not blame
   a server for a code the specification gives the packet in one of its tables.
2. ``REASON_CODES_5`` narrows a packet's codes to a situation: a record per
   ``(packet kind, situation)`` with the codes that situation allows and the
   statements behind them. Situations are facts about what the server was
   answering ("the PUBLISH had no matching subscribers", "the CONNECT carried an
   Authentication Method"); the codes allowed are the union over the facts that
   hold, so a server's choices (0x00 or 0x10 with no subscribers, a refusal
   among several codes) stay a set. The ``*_situations`` helpers turn what the
   model knows into those facts.
3. Request Problem Information (3.1.2.11.7): a client that sent 0 gets no
   Reason String or User Property on any packet but PUBLISH, CONNACK or
   DISCONNECT [MQTT-3.1.2-29]. PROBLEM_INFORMATION_5 is that rule as a chart,
   ``ProblemInformation5`` executes it for one connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import attrs

from mqttref.model.chart import Chart, Transition, events_of, states_of
from mqttref.model.errors import NoTransition, UsageError, Violation


class PacketKind(StrEnum):
    CONNACK = "CONNACK"
    PUBLISH = "PUBLISH"
    PUBACK = "PUBACK"
    PUBREC = "PUBREC"
    PUBREL = "PUBREL"
    PUBCOMP = "PUBCOMP"
    SUBACK = "SUBACK"
    UNSUBACK = "UNSUBACK"
    DISCONNECT = "DISCONNECT"
    AUTH = "AUTH"


K = PacketKind

# ------------------------------------------------------------- Table 2-6

TABLE_2_6: tuple[tuple[int, str, frozenset[PacketKind]], ...] = tuple(
    (code, name, frozenset(PacketKind(p) for p in packets.split()))
    for code, name, packets in (
        (0x00, "Success", "CONNACK PUBACK PUBREC PUBREL PUBCOMP UNSUBACK AUTH"),
        (0x00, "Normal disconnection", "DISCONNECT"),
        (0x00, "Granted QoS 0", "SUBACK"),
        (0x01, "Granted QoS 1", "SUBACK"),
        (0x02, "Granted QoS 2", "SUBACK"),
        (0x04, "Disconnect with Will Message", "DISCONNECT"),
        (0x10, "No matching subscribers", "PUBACK PUBREC"),
        (0x11, "No subscription existed", "UNSUBACK"),
        (0x18, "Continue authentication", "AUTH"),
        (0x19, "Re-authenticate", "AUTH"),
        (0x80, "Unspecified error", "CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT"),
        (0x81, "Malformed Packet", "CONNACK DISCONNECT"),
        (0x82, "Protocol Error", "CONNACK DISCONNECT"),
        (0x83, "Implementation specific error",
         "CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT"),
        (0x84, "Unsupported Protocol Version", "CONNACK"),
        (0x85, "Client Identifier not valid", "CONNACK"),
        (0x86, "Bad User Name or Password", "CONNACK"),
        (0x87, "Not authorized", "CONNACK PUBACK PUBREC SUBACK UNSUBACK DISCONNECT"),
        (0x88, "Server unavailable", "CONNACK"),
        (0x89, "Server busy", "CONNACK DISCONNECT"),
        (0x8A, "Banned", "CONNACK"),
        (0x8B, "Server shutting down", "DISCONNECT"),
        (0x8C, "Bad authentication method", "CONNACK DISCONNECT"),
        (0x8D, "Keep Alive timeout", "DISCONNECT"),
        (0x8E, "Session taken over", "DISCONNECT"),
        (0x8F, "Topic Filter invalid", "SUBACK UNSUBACK DISCONNECT"),
        (0x90, "Topic Name invalid", "CONNACK PUBACK PUBREC DISCONNECT"),
        (0x91, "Packet Identifier in use", "PUBACK PUBREC SUBACK UNSUBACK"),
        (0x92, "Packet Identifier not found", "PUBREL PUBCOMP"),
        (0x93, "Receive Maximum exceeded", "DISCONNECT"),
        (0x94, "Topic Alias invalid", "DISCONNECT"),
        (0x95, "Packet too large", "CONNACK DISCONNECT"),
        (0x96, "Message rate too high", "DISCONNECT"),
        (0x97, "Quota exceeded", "CONNACK PUBACK PUBREC SUBACK DISCONNECT"),
        (0x98, "Administrative action", "DISCONNECT"),
        (0x99, "Payload format invalid", "CONNACK PUBACK PUBREC DISCONNECT"),
        (0x9A, "Retain not supported", "CONNACK DISCONNECT"),
        (0x9B, "QoS not supported", "CONNACK DISCONNECT"),
        (0x9C, "Use another server", "CONNACK DISCONNECT"),
        (0x9D, "Server moved", "CONNACK DISCONNECT"),
        (0x9E, "Shared Subscriptions not supported", "SUBACK DISCONNECT"),
        (0x9F, "Connection rate exceeded", "CONNACK DISCONNECT"),
        (0xA0, "Maximum connect time", "DISCONNECT"),
        (0xA1, "Subscription Identifiers not supported", "SUBACK DISCONNECT"),
        (0xA2, "Wildcard Subscriptions not supported", "SUBACK DISCONNECT"),
    )
)
"""Table 2-6, "Reason Codes": each code, its name, and the packets it may appear in."""


def table_2_6_codes(kind: PacketKind) -> frozenset[int]:
    """The codes Table 2-6 gives the packet ``kind``."""
    return frozenset(code for code, _, packets in TABLE_2_6 if kind in packets)


def code_name(code: int, kind: PacketKind | None = None) -> str:
    """The code's name in Table 2-6 (the one for ``kind`` where 0x00 has several)."""
    for value, name, packets in TABLE_2_6:
        if value == code and (kind is None or kind in packets):
            return f"0x{code:02X} ({name})"
    return f"0x{code:02X} (no such Reason Code)"


# ----------------------------------------------------- each packet's own table


@attrs.frozen
class PacketRule:
    """One packet's Reason Code table, and the statement that binds its sender."""

    kind: PacketKind
    section: str
    codes: frozenset[int]
    """Every code of the packet's table, whoever sends it."""
    client_only: frozenset[int]
    """Codes the table's "Sent by" column gives only to the Client."""
    ref: str

    @property
    def server_codes(self) -> frozenset[int]:
        return self.codes - self.client_only


def _codes(*codes: int) -> frozenset[int]:
    return frozenset(codes)


_PUBLISH_ACK = _codes(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)

PACKET_RULES: dict[PacketKind, PacketRule] = {
    rule.kind: rule
    for rule in (
        PacketRule(K.CONNACK, "3.2.2.2", _codes(
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
            0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F), _codes(), "MQTT-3.2.2-8"),
        PacketRule(K.PUBACK, "3.4.2.1", _PUBLISH_ACK, _codes(), "MQTT-3.4.2-1"),
        PacketRule(K.PUBREC, "3.5.2.1", _PUBLISH_ACK, _codes(), "MQTT-3.5.2-1"),
        PacketRule(K.PUBREL, "3.6.2.1", _codes(0x00, 0x92), _codes(), "MQTT-3.6.2-1"),
        PacketRule(K.PUBCOMP, "3.7.2.1", _codes(0x00, 0x92), _codes(), "MQTT-3.7.2-1"),
        PacketRule(K.SUBACK, "3.9.3", _codes(
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2),
            _codes(), "MQTT-3.9.3-2"),
        PacketRule(K.UNSUBACK, "3.11.3", _codes(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91),
                   _codes(), "MQTT-3.11.3-2"),
        PacketRule(K.DISCONNECT, "3.14.2.1", _codes(
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
            0xA0, 0xA1, 0xA2), _codes(0x04), "MQTT-3.14.2-1"),
        PacketRule(K.AUTH, "3.15.2.1", _codes(0x00, 0x18, 0x19), _codes(0x19), "MQTT-3.15.2-1"),
    )
}  # fmt: skip
"""Each packet's table (the section that prints it) and its "MUST use one of" statement."""


def server_may_send(kind: PacketKind, code: int) -> bool:
    """Whether a server may put ``code`` in a ``kind`` packet at all: the packet's own
    table (the server's rows), or Table 2-6 where the two disagree (0x8C in DISCONNECT)."""
    rule = PACKET_RULES[kind]
    return code in rule.server_codes or (
        code in table_2_6_codes(kind) and code not in rule.client_only
    )


def check_packet_code(client: str, kind: PacketKind, code: int) -> None:
    """Raise ``Violation`` when the server sent ``code`` in a packet that has no such code."""
    if kind not in PACKET_RULES:
        raise UsageError(f"a {kind} packet carries no Reason Code")
    if not server_may_send(kind, code):
        rule = PACKET_RULES[kind]
        why = "is sent only by the Client" if code in rule.client_only else "is not in its table"
        raise Violation(client, f"{kind} with {code_name(code, kind)}: the code {why} "
                        f"({rule.section})", refs=(rule.ref,),
                        allowed=[code_name(c, kind) for c in sorted(rule.server_codes)],
                        arrived=f"{kind} {code_name(code, kind)}")


# ------------------------------------------------------------------ situations


class Situation(StrEnum):
    """Facts about what the server answers; each allows some codes of one packet."""

    # PUBACK, PUBREC: the answer to the client's QoS 1 or QoS 2 PUBLISH
    MATCHED = "matched"
    NO_MATCHING_SUBSCRIBERS = "no_matching_subscribers"
    PUBLISH_REFUSED = "publish_refused"
    PAYLOAD_FORMAT_INVALID = "payload_format_invalid"
    PACKET_IDENTIFIER_IN_USE = "packet_identifier_in_use"
    # PUBREL, PUBCOMP: the answer to the client's PUBREC or PUBREL
    PACKET_IDENTIFIER_KNOWN = "packet_identifier_known"
    PACKET_IDENTIFIER_UNKNOWN = "packet_identifier_unknown"
    # SUBACK, per Topic Filter
    GRANT_UP_TO_QOS_0 = "grant_up_to_qos_0"
    GRANT_UP_TO_QOS_1 = "grant_up_to_qos_1"
    GRANT_UP_TO_QOS_2 = "grant_up_to_qos_2"
    SUBSCRIBE_REFUSED = "subscribe_refused"
    SHARED_FILTER = "shared_filter"
    SUBSCRIPTION_IDENTIFIER = "subscription_identifier"
    WILDCARD_FILTER = "wildcard_filter"
    # UNSUBACK, per Topic Filter
    SUBSCRIPTION_EXISTED = "subscription_existed"
    NO_SUBSCRIPTION_EXISTED = "no_subscription_existed"
    UNSUBSCRIBE_REFUSED = "unsubscribe_refused"
    # CONNACK
    CONNECT_ACCEPTABLE = "connect_acceptable"
    CONNECT_REFUSED = "connect_refused"
    MALFORMED_CONNECT = "malformed_connect"
    CONNECT_PROTOCOL_ERROR = "connect_protocol_error"
    UNSUPPORTED_PROTOCOL_VERSION = "unsupported_protocol_version"
    CLIENT_IDENTIFIER_NOT_GUARANTEED = "client_identifier_not_guaranteed"
    AUTHENTICATION_METHOD = "authentication_method"
    WILL_PRESENT = "will_present"
    WILL_PAYLOAD_FORMAT_INVALID = "will_payload_format_invalid"
    WILL_QOS_NOT_SUPPORTED = "will_qos_not_supported"
    WILL_RETAIN_NOT_SUPPORTED = "will_retain_not_supported"
    # DISCONNECT, AUTH
    SERVER_CLOSES = "server_closes"
    AUTHENTICATION_CONTINUES = "authentication_continues"
    RE_AUTHENTICATION_SUCCEEDS = "re_authentication_succeeds"


Si = Situation


@attrs.frozen
class ReasonRule:
    """In situation ``situation``, a ``kind`` packet may carry ``codes`` (``refs`` say why)."""

    kind: PacketKind
    situation: Situation
    codes: frozenset[int]
    refs: tuple[str, ...]
    why: str


_PUBLISH_REFUSALS = _codes(0x80, 0x83, 0x87, 0x90, 0x97)
_SUBSCRIBE_REFUSALS = _codes(0x80, 0x83, 0x87, 0x8F, 0x97)
_UNSUBSCRIBE_REFUSALS = _codes(0x80, 0x83, 0x87, 0x8F)
_CONNECT_REFUSALS = _codes(0x80, 0x83, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x95, 0x97, 0x9C, 0x9D,
                           0x9F)


def _publish_ack_rules(kind: PacketKind, ref: str) -> tuple[ReasonRule, ...]:
    return (
        ReasonRule(kind, Si.MATCHED, _codes(0x00), (ref,),
                   "accepted, and some subscription matched: 0x10 would say there was none"),
        ReasonRule(kind, Si.NO_MATCHING_SUBSCRIBERS, _codes(0x00, 0x10), (ref,),
                   "accepted with no matching subscription: the server MAY say so with 0x10"),
        ReasonRule(kind, Si.PUBLISH_REFUSED, _PUBLISH_REFUSALS, (ref,),
                   "the server may refuse any PUBLISH (authorization, quota, its topic names)"),
        ReasonRule(kind, Si.PAYLOAD_FORMAT_INVALID, _codes(0x99), (ref,),
                   "Payload Format Indicator 1 on a payload that is not UTF-8: the receiver "
                   "MAY validate it (3.3.2.3.2)"),
        ReasonRule(kind, Si.PACKET_IDENTIFIER_IN_USE, _codes(0x91), (ref, "MQTT-2.2.1-3"),
                   "the client used a Packet Identifier it has in use [MQTT-2.2.1-3]"),
    )


REASON_CODES_5: tuple[ReasonRule, ...] = (
    *_publish_ack_rules(K.PUBACK, "MQTT-3.4.2-1"),
    *_publish_ack_rules(K.PUBREC, "MQTT-3.5.2-1"),
    ReasonRule(K.PUBREL, Si.PACKET_IDENTIFIER_KNOWN, _codes(0x00),
               ("MQTT-3.6.2-1", "MQTT-4.3.3-4"),
               "the PUBREC answers the server's own PUBLISH: the message is released"),
    ReasonRule(K.PUBREL, Si.PACKET_IDENTIFIER_UNKNOWN, _codes(0x00, 0x92), ("MQTT-3.6.2-1",),
               "a PUBREC for an identifier the server does not hold: 0x92, or 0x00 since "
               "the table calls this no error during recovery"),
    ReasonRule(K.PUBCOMP, Si.PACKET_IDENTIFIER_KNOWN, _codes(0x00),
               ("MQTT-3.7.2-1", "MQTT-4.3.3-11"),
               "the PUBREL releases a QoS 2 message the server holds"),
    ReasonRule(K.PUBCOMP, Si.PACKET_IDENTIFIER_UNKNOWN, _codes(0x00, 0x92),
               ("MQTT-3.7.2-1", "MQTT-4.3.3-11"),
               "a PUBREL for an identifier the server no longer holds (its PUBCOMP was "
               "lost): 0x92, or 0x00 since the table calls this no error during recovery"),
    ReasonRule(K.SUBACK, Si.GRANT_UP_TO_QOS_0, _codes(0x00), ("MQTT-3.8.4-7", "MQTT-3.9.3-2"),
               "the grant is the subscription's Maximum QoS: no more than requested, no "
               "more than the server's Maximum QoS"),
    ReasonRule(K.SUBACK, Si.GRANT_UP_TO_QOS_1, _codes(0x00, 0x01),
               ("MQTT-3.8.4-7", "MQTT-3.9.3-2"), "the server might grant less than requested"),
    ReasonRule(K.SUBACK, Si.GRANT_UP_TO_QOS_2, _codes(0x00, 0x01, 0x02),
               ("MQTT-3.8.4-7", "MQTT-3.9.3-2"), "the server might grant less than requested"),
    ReasonRule(K.SUBACK, Si.SUBSCRIBE_REFUSED, _SUBSCRIBE_REFUSALS,
               ("MQTT-3.8.4-7", "MQTT-3.9.3-2"),
               "the server may refuse any subscription (authorization, quota, its filters)"),
    ReasonRule(K.SUBACK, Si.SHARED_FILTER, _codes(0x9E), ("MQTT-3.9.3-2",),
               "a $share/ filter: the server may not support them for this client"),
    ReasonRule(K.SUBACK, Si.SUBSCRIPTION_IDENTIFIER, _codes(0xA1), ("MQTT-3.9.3-2",),
               "the SUBSCRIBE carried a Subscription Identifier"),
    ReasonRule(K.SUBACK, Si.WILDCARD_FILTER, _codes(0xA2), ("MQTT-3.9.3-2",),
               "the filter has a wildcard"),
    ReasonRule(K.SUBACK, Si.PACKET_IDENTIFIER_IN_USE, _codes(0x91),
               ("MQTT-3.9.3-2", "MQTT-2.2.1-3"),
               "the client used a Packet Identifier it has in use [MQTT-2.2.1-3]"),
    ReasonRule(K.UNSUBACK, Si.SUBSCRIPTION_EXISTED, _codes(0x00),
               ("MQTT-3.11.3-2", "MQTT-3.10.4-1"), "the subscription is deleted"),
    ReasonRule(K.UNSUBACK, Si.NO_SUBSCRIPTION_EXISTED, _codes(0x11),
               ("MQTT-3.11.3-2", "MQTT-3.10.4-5"),
               "no subscription had the filter: 0x00 would say one was deleted"),
    ReasonRule(K.UNSUBACK, Si.UNSUBSCRIBE_REFUSED, _UNSUBSCRIBE_REFUSALS, ("MQTT-3.11.3-2",),
               "the server may refuse to unsubscribe (authorization, its filters)"),
    ReasonRule(K.UNSUBACK, Si.PACKET_IDENTIFIER_IN_USE, _codes(0x91),
               ("MQTT-3.11.3-2", "MQTT-2.2.1-3"),
               "the client used a Packet Identifier it has in use [MQTT-2.2.1-3]"),
    ReasonRule(K.CONNACK, Si.CONNECT_ACCEPTABLE, _codes(0x00), ("MQTT-3.2.2-8", "MQTT-3.1.4-5"),
               "nothing obliges the server to refuse the CONNECT"),
    ReasonRule(K.CONNACK, Si.CONNECT_REFUSED, _CONNECT_REFUSALS, ("MQTT-3.2.2-8", "MQTT-3.1.4-2"),
               "the server may refuse any CONNECT (authentication, authorization, load, size)"),
    ReasonRule(K.CONNACK, Si.MALFORMED_CONNECT, _codes(0x81), ("MQTT-3.2.2-8", "MQTT-3.1.4-1"),
               "the CONNECT could not be parsed"),
    ReasonRule(K.CONNACK, Si.CONNECT_PROTOCOL_ERROR, _codes(0x82),
               ("MQTT-3.2.2-8", "MQTT-3.1.4-1"), "the CONNECT breaks the protocol"),
    ReasonRule(K.CONNACK, Si.UNSUPPORTED_PROTOCOL_VERSION, _codes(0x84),
               ("MQTT-3.2.2-8", "MQTT-3.1.2-2"), "the Protocol Version is not 5"),
    ReasonRule(K.CONNACK, Si.CLIENT_IDENTIFIER_NOT_GUARANTEED, _codes(0x85),
               ("MQTT-3.1.3-5", "MQTT-3.1.3-8"),
               "a ClientID beyond the 1 to 23 characters [0-9a-zA-Z] every server allows"),
    ReasonRule(K.CONNACK, Si.AUTHENTICATION_METHOD, _codes(0x8C),
               ("MQTT-3.2.2-8", "MQTT-4.12.0-1"),
               "the CONNECT named an Authentication Method the server may not support"),
    ReasonRule(K.CONNACK, Si.WILL_PRESENT, _codes(0x90), ("MQTT-3.2.2-8",),
               "a Will Topic the server may not accept"),
    ReasonRule(K.CONNACK, Si.WILL_PAYLOAD_FORMAT_INVALID, _codes(0x99), ("MQTT-3.2.2-8",),
               "a Will Payload that does not match its Payload Format Indicator"),
    ReasonRule(K.CONNACK, Si.WILL_QOS_NOT_SUPPORTED, _codes(0x9B), ("MQTT-3.2.2-12",),
               "a Will QoS above the server's Maximum QoS: it MUST refuse, SHOULD with 0x9B"),
    ReasonRule(K.CONNACK, Si.WILL_RETAIN_NOT_SUPPORTED, _codes(0x9A), ("MQTT-3.2.2-13",),
               "Will Retain 1 where retained messages are not supported: it MUST refuse, "
               "SHOULD with 0x9A"),
    ReasonRule(K.DISCONNECT, Si.SERVER_CLOSES,
               PACKET_RULES[K.DISCONNECT].server_codes | _codes(0x8C), ("MQTT-3.14.2-1",),
               "the server's rows of the DISCONNECT table (and 0x8C, which Table 2-6 gives it)"),
    ReasonRule(K.AUTH, Si.AUTHENTICATION_CONTINUES, _codes(0x18),
               ("MQTT-3.15.2-1", "MQTT-4.12.0-2"), "the server needs another step"),
    ReasonRule(K.AUTH, Si.RE_AUTHENTICATION_SUCCEEDS, _codes(0x00), ("MQTT-3.15.2-1",),
               "a re-authentication the server accepts"),
)  # fmt: skip
"""Every (packet kind, situation) with the Reason Codes it allows."""

_RULES = {(rule.kind, rule.situation): rule for rule in REASON_CODES_5}

MUST_REFUSE = frozenset({Si.WILL_QOS_NOT_SUPPORTED, Si.WILL_RETAIN_NOT_SUPPORTED})
"""Situations that take acceptance away: ``connack_situations`` then omits
``connect_acceptable`` [MQTT-3.2.2-12] [MQTT-3.2.2-13]."""


def rule(kind: PacketKind, situation: Situation) -> ReasonRule:
    try:
        return _RULES[(kind, situation)]
    except KeyError:
        raise UsageError(f"no Reason Code rule for {kind} in situation {situation}") from None


def allowed(kind: PacketKind, situation: Situation) -> frozenset[int]:
    """The codes a ``kind`` packet may carry in ``situation``."""
    return rule(kind, situation).codes


def allowed_in(kind: PacketKind, situations: Iterable[Situation]) -> frozenset[int]:
    """The codes allowed when all of ``situations`` hold: the union of each one's."""
    found: frozenset[int] = frozenset()
    for situation in situations:
        found |= allowed(kind, situation)
    return found


def check(client: str, kind: PacketKind, situations: Iterable[Situation], code: int) -> None:
    """Raise ``Violation`` unless ``code`` is one the server may send in ``situations``.

    The refs are the packet's own statement when the code is not the packet's at
    all; otherwise those of the situations that would have allowed the code (the
    facts the code asserts and that did not hold), plus those of a situation that
    obliged a refusal when the code accepts.
    """
    check_packet_code(client, kind, code)
    facts = tuple(situations)
    codes = allowed_in(kind, facts)
    if code in codes:
        return
    asserted = [r for r in REASON_CODES_5 if r.kind == kind and code in r.codes
                and r.situation not in facts]
    obliging = [rule(kind, s) for s in facts if s in MUST_REFUSE and code < 0x80]
    refs = sorted({ref for r in (*asserted, *obliging) for ref in r.refs}) or [
        PACKET_RULES[kind].ref]
    raise Violation(
        client,
        f"{kind} {code_name(code, kind)} where " + ", ".join(str(s) for s in facts) + " hold"
        + (f"; it asserts {', '.join(str(r.situation) for r in asserted)}" if asserted else ""),
        refs=refs, allowed=[code_name(c, kind) for c in sorted(codes)],
        arrived=f"{kind} {code_name(code, kind)}",
    )


# ------------------------------------------------------- situations from facts


def publish_ack_situations(
    *, matched: bool, payload_format_invalid: bool = False,
    packet_identifier_in_use: bool = False,
) -> frozenset[Situation]:
    """PUBACK or PUBREC for the client's PUBLISH."""
    found = {Si.MATCHED if matched else Si.NO_MATCHING_SUBSCRIBERS, Si.PUBLISH_REFUSED}
    if payload_format_invalid:
        found.add(Si.PAYLOAD_FORMAT_INVALID)
    if packet_identifier_in_use:
        found.add(Si.PACKET_IDENTIFIER_IN_USE)
    return frozenset(found)


def packet_identifier_situations(*, known: bool) -> frozenset[Situation]:
    """PUBREL for the client's PUBREC, or PUBCOMP for the client's PUBREL."""
    return frozenset({Si.PACKET_IDENTIFIER_KNOWN if known else Si.PACKET_IDENTIFIER_UNKNOWN})


_GRANTS = (Si.GRANT_UP_TO_QOS_0, Si.GRANT_UP_TO_QOS_1, Si.GRANT_UP_TO_QOS_2)


def suback_situations(
    *, requested_qos: int, maximum_qos: int = 2, shared: bool = False, wildcard: bool = False,
    subscription_identifier: bool = False, packet_identifier_in_use: bool = False,
) -> frozenset[Situation]:
    """SUBACK's code for one Topic Filter: a grant up to the lower of the requested QoS
    and the server's Maximum QoS (3.2.2.3.4), or a refusal."""
    if requested_qos not in (0, 1, 2) or maximum_qos not in (0, 1, 2):
        raise UsageError("a requested QoS of 3 is a Protocol Error (0x82, 3.8.3.1)")
    found = {_GRANTS[min(requested_qos, maximum_qos)], Si.SUBSCRIBE_REFUSED}
    for holds, situation in ((shared, Si.SHARED_FILTER), (wildcard, Si.WILDCARD_FILTER),
                             (subscription_identifier, Si.SUBSCRIPTION_IDENTIFIER),
                             (packet_identifier_in_use, Si.PACKET_IDENTIFIER_IN_USE)):
        if holds:
            found.add(situation)
    return frozenset(found)


def unsuback_situations(
    *, existed: bool, packet_identifier_in_use: bool = False
) -> frozenset[Situation]:
    """UNSUBACK's code for one Topic Filter."""
    found = {Si.SUBSCRIPTION_EXISTED if existed else Si.NO_SUBSCRIPTION_EXISTED,
             Si.UNSUBSCRIBE_REFUSED}
    if packet_identifier_in_use:
        found.add(Si.PACKET_IDENTIFIER_IN_USE)
    return frozenset(found)


_GUARANTEED_CHARACTERS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def client_id_guaranteed(client_id: str) -> bool:
    """Whether every server MUST allow ``client_id`` [MQTT-3.1.3-5]."""
    return 1 <= len(client_id.encode()) <= 23 and set(client_id) <= _GUARANTEED_CHARACTERS


def connack_situations(
    *, client_id: str, authentication_method: bool = False, will: bool = False,
    will_qos: int = 0, will_retain: bool = False, will_payload_format_invalid: bool = False,
    maximum_qos: int = 2, retain_available: bool = True,
) -> frozenset[Situation]:
    """CONNACK for a well-formed 5.0 CONNECT. Accepting is allowed unless the will asks
    for a QoS above the server's Maximum QoS [MQTT-3.2.2-12] or for RETAIN where
    retained messages are not supported [MQTT-3.2.2-13]: the server MUST refuse those."""
    found = {Si.CONNECT_REFUSED}
    if not client_id_guaranteed(client_id):
        found.add(Si.CLIENT_IDENTIFIER_NOT_GUARANTEED)
    if authentication_method:
        found.add(Si.AUTHENTICATION_METHOD)
    must_refuse = False
    if will:
        found.add(Si.WILL_PRESENT)
        if will_payload_format_invalid:
            found.add(Si.WILL_PAYLOAD_FORMAT_INVALID)
        if will_qos > maximum_qos:
            found.add(Si.WILL_QOS_NOT_SUPPORTED)
            must_refuse = True
        if will_retain and not retain_available:
            found.add(Si.WILL_RETAIN_NOT_SUPPORTED)
            must_refuse = True
    if not must_refuse:
        found.add(Si.CONNECT_ACCEPTABLE)
    return frozenset(found)


# ---------------------------------------------------- Request Problem Information

DIAGNOSTICS_ALWAYS_ALLOWED = frozenset({K.PUBLISH, K.CONNACK, K.DISCONNECT})
"""The packets that may carry a Reason String or User Properties whatever the client
asked [MQTT-3.1.2-29]."""


class ProblemInformationState(StrEnum):
    AWAITING_CONNECT = "awaiting_connect"
    REQUESTED = "requested"
    WITHHELD = "withheld"
    CLOSED = "closed"


class ProblemInformationEvent(StrEnum):
    CONNECT_REQUESTING = "connect_requesting"
    CONNECT_WITHHOLDING = "connect_withholding"
    SEND_PLAIN = "send_plain"
    SEND_DIAGNOSTICS_ALWAYS_ALLOWED = "send_diagnostics_always_allowed"
    SEND_DIAGNOSTICS_OTHER = "send_diagnostics_other"
    CLOSE = "close"


P, PE = ProblemInformationState, ProblemInformationEvent
_RPI = ("MQTT-3.1.2-29",)

PROBLEM_INFORMATION_5 = Chart(
    name="problem_information_5",
    title="Request Problem Information (MQTT 5.0)",
    description="Whether the server may add a Reason String or User Properties to what it "
    "sends: anywhere when the client requested problem information (absent or 1), only on "
    "PUBLISH, CONNACK and DISCONNECT when it sent 0.",
    protocol="5.0",
    states=states_of(
        ProblemInformationState,
        {
            P.AWAITING_CONNECT: "no CONNECT yet",
            P.REQUESTED: "Request Problem Information absent or 1",
            P.WITHHELD: "Request Problem Information 0",
            P.CLOSED: "the Network Connection is closed",
        },
        finals=(P.CLOSED,),
    ),
    events=events_of(
        ProblemInformationEvent,
        {
            PE.CONNECT_REQUESTING: "CONNECT without Request Problem Information, or with 1",
            PE.CONNECT_WITHHOLDING: "CONNECT with Request Problem Information 0",
            PE.SEND_PLAIN: "the server sends a packet without Reason String or User Property",
            PE.SEND_DIAGNOSTICS_ALWAYS_ALLOWED:
                "the server sends PUBLISH, CONNACK or DISCONNECT with a Reason String or "
                "User Property",
            PE.SEND_DIAGNOSTICS_OTHER:
                "the server sends another packet with a Reason String or User Property",
            PE.CLOSE: "the Network Connection closes",
        },
    ),
    initial=P.AWAITING_CONNECT,
    transitions=(
        Transition(P.AWAITING_CONNECT, PE.CONNECT_REQUESTING, P.REQUESTED, _RPI),
        Transition(P.AWAITING_CONNECT, PE.CONNECT_WITHHOLDING, P.WITHHELD, _RPI),
        Transition(P.AWAITING_CONNECT, PE.CLOSE, P.CLOSED, _RPI),
        *(Transition(P.REQUESTED, event, P.REQUESTED, _RPI)
          for event in (PE.SEND_PLAIN, PE.SEND_DIAGNOSTICS_ALWAYS_ALLOWED,
                        PE.SEND_DIAGNOSTICS_OTHER)),
        Transition(P.WITHHELD, PE.SEND_PLAIN, P.WITHHELD, _RPI),
        Transition(P.WITHHELD, PE.SEND_DIAGNOSTICS_ALWAYS_ALLOWED, P.WITHHELD,
                   ("MQTT-3.1.2-29", "MQTT-3.3.2-17")),
        Transition(P.REQUESTED, PE.CLOSE, P.CLOSED, _RPI),
        Transition(P.WITHHELD, PE.CLOSE, P.CLOSED, _RPI),
    ),
)  # fmt: skip
"""A missing row is the rule: WITHHELD has none for ``send_diagnostics_other``."""


@attrs.define
class ProblemInformation5:
    """PROBLEM_INFORMATION_5 for one connection: judges each packet the server sends."""

    client: str
    state: str = PROBLEM_INFORMATION_5.initial

    def connect(self, request_problem_information: int | None) -> None:
        """The client's CONNECT; an absent value means 1 (3.1.2.11.7)."""
        if request_problem_information not in (None, 0, 1):
            raise UsageError(f"Request Problem Information {request_problem_information} is a "
                             "Protocol Error (0x82, 3.1.2.11.7)")
        event = PE.CONNECT_WITHHOLDING if request_problem_information == 0 \
            else PE.CONNECT_REQUESTING
        self._fire(event, "CONNECT")

    def sent(self, kind: PacketKind, *, reason_string: bool, user_properties: bool) -> None:
        """The server sent a ``kind`` packet; raise ``Violation`` if it breaks [MQTT-3.1.2-29]."""
        if not (reason_string or user_properties):
            event = PE.SEND_PLAIN
        elif kind in DIAGNOSTICS_ALWAYS_ALLOWED:
            event = PE.SEND_DIAGNOSTICS_ALWAYS_ALLOWED
        else:
            event = PE.SEND_DIAGNOSTICS_OTHER
        try:
            self._fire(event, str(kind))
        except NoTransition:
            carried = " and ".join(
                name for name, present in (("a Reason String", reason_string),
                                           ("User Properties", user_properties)) if present)
            raise Violation(self.client, f"{kind} with {carried} after Request Problem "
                            "Information 0", refs=_RPI,
                            allowed=[f"{kind} without Reason String or User Property"],
                            arrived=f"{kind} with {carried}") from None

    def close(self) -> None:
        self._fire(PE.CLOSE, "close")

    def _fire(self, event: str, what: str) -> None:
        if self.state == P.AWAITING_CONNECT and event not in (
            PE.CONNECT_REQUESTING, PE.CONNECT_WITHHOLDING, PE.CLOSE
        ):
            raise UsageError(f"{what} sent before the client's CONNECT")
        if self.state == P.CLOSED:
            raise UsageError(f"{what} on a closed connection")
        self.state = PROBLEM_INFORMATION_5.fire(self.state, event).target
