"""What the broker model's shared judgement cites on a level-5 connection, in MQTT
5.0's numbering (issue 16): the connection chart's rows, the 3.1.1 session chart's
ids, and the 5.0 statements the shared observation code names at level 5.

Theory of operation: the broker model runs one connection chart (``model.connection``)
for clients of both levels; its rows cite 3.1.1's statements. 5.0 numbers its
statements independently, so a 3.1.1 id on a level-5 connection names another
sentence or none: 3.1.1's [MQTT-4.8.0-1] (close on a protocol violation) does not
exist in 5.0, and 5.0's [MQTT-3.1.2-24] is the Maximum Packet Size, not the Keep
Alive. ``ROW_REFS_5`` gives each row the 5.0 statements its transition stands for,
read from 5.0's text row by row (not through the 3.1.1-to-5.0 map), and
``row_refs(row, level)`` is what the model cites for a row fired on a connection of
``level``: the verdicts, obligations and coverage of a level-5 connection.

The readings:

- a Malformed Packet or Protocol Error from the client: the Server MUST close
  [MQTT-4.13.1-1] (5.0's close rule; a DISCONNECT with a Reason Code may come first);
  a close owed or made after one, and the rows that keep a close owed while the
  client sends more, cite it too;
- CONNECT first [MQTT-3.1.0-1]; a second CONNECT is a Protocol Error closed
  [MQTT-3.1.0-2] (the same sentences in 5.0);
- a CONNACK 0x00 acknowledges the CONNECT [MQTT-3.1.4-5] and comes first
  [MQTT-3.2.0-1]; a refusing CONNACK (every non-zero Connect Reason Code is 0x80
  or above) is followed by the close [MQTT-3.2.2-7] [MQTT-4.13.2-1], and nothing the
  client sends after the refused CONNECT is processed [MQTT-3.1.4-6];
- the server may close before its CONNACK when the CONNECT does not match its
  format [MQTT-3.1.4-1] or fails further checks [MQTT-3.1.4-2];
- the Keep Alive: a packet from the client restarts it, and 1.5 times it without
  one makes the close owed [MQTT-3.1.2-22];
- a takeover closes the existing connection [MQTT-3.1.4-3];
- DISCONNECT (0x00: the model's level-5 rules handle 0x04) discards the will
  [MQTT-3.14.4-3] [MQTT-3.1.2-10]; any other end of an accepted connection makes the
  will publishable [MQTT-3.1.2-8] (its Will Delay Interval: ``v5.will``).

The other tables here give the shared observation code (``observe``, ``publish_judge``,
``publish_rejections``, ``verdicts``) and the session chart's coverage their 5.0
statements where a 3.1.1 id names another sentence in 5.0, each read from 5.0's text.
Their ids are string constants of a ``model/v5`` module, so the coverage's
``rule_citations`` counts them as the model's own 5.0 ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from mqttref.model.chart import Transition

MQTT_5 = 5

_CLOSE = "MQTT-4.13.1-1"
"""5.0: "When a Server detects a Malformed Packet or Protocol Error, and a Reason Code
is given in the specification, it MUST close the Network Connection." """

_KEEP_ALIVE = "MQTT-3.1.2-22"

ROW_REFS_5: dict[tuple[str, str, str | None], tuple[str, ...]] = {
    # awaiting_connect: the level is known only once a CONNECT came
    ("awaiting_connect", "connect", None): ("MQTT-3.1.0-1",),
    ("awaiting_connect", "control_packet", None): ("MQTT-3.1.0-1",),
    ("awaiting_connect", "disconnect", None): ("MQTT-3.1.0-1",),
    ("awaiting_connect", "violation", None): (_CLOSE,),
    ("awaiting_connect", "network_lost", None): (_CLOSE,),
    ("awaiting_connect", "server_closed", "close_allowed"): ("MQTT-3.1.4-1",),
    # awaiting_connack
    ("awaiting_connack", "connack_accepted", None): ("MQTT-3.1.4-5", "MQTT-3.2.0-1"),
    ("awaiting_connack", "connack_refused", None): (
        "MQTT-3.2.2-7", "MQTT-4.13.2-1", "MQTT-3.1.4-6"),
    ("awaiting_connack", "connect", None): ("MQTT-3.1.0-2",),
    ("awaiting_connack", "control_packet", None): ("MQTT-3.1.4-6",),
    ("awaiting_connack", "violation", None): (_CLOSE,),
    ("awaiting_connack", "network_lost", None): (_CLOSE,),
    ("awaiting_connack", "server_closed", "close_allowed"): ("MQTT-3.1.4-1", "MQTT-3.1.4-2"),
    # connected
    ("connected", "control_packet", None): (_KEEP_ALIVE,),
    ("connected", "connect", None): ("MQTT-3.1.0-2",),
    ("connected", "violation", None): (_CLOSE,),
    ("connected", "keep_alive_expired", None): (_KEEP_ALIVE,),
    ("connected", "taken_over", None): ("MQTT-3.1.4-3",),
    ("connected", "disconnect", None): ("MQTT-3.14.4-3", "MQTT-3.1.2-10"),
    ("connected", "network_lost", None): ("MQTT-3.1.2-8",),
    ("connected", "server_closed", "close_allowed"): (_KEEP_ALIVE, "MQTT-3.1.2-8"),
    # close_due: nothing more is processed, the close is owed
    ("close_due", "control_packet", None): (_CLOSE,),
    ("close_due", "connect", None): (_CLOSE,),
    ("close_due", "disconnect", None): (_CLOSE,),
    ("close_due", "violation", None): (_CLOSE,),
    ("close_due", "keep_alive_expired", None): (_KEEP_ALIVE,),
    ("close_due", "taken_over", None): ("MQTT-3.1.4-3",),
    ("close_due", "server_closed", "was_accepted"): (_CLOSE, "MQTT-3.1.2-8"),
    ("close_due", "server_closed", "never_accepted"): (_CLOSE, "MQTT-3.2.2-7"),
    ("close_due", "network_lost", "was_accepted"): (_CLOSE, "MQTT-3.1.2-8"),
    ("close_due", "network_lost", "never_accepted"): (_CLOSE,),
    # closed
    ("closed", "server_closed", None): (_CLOSE,),
    ("closed", "network_lost", None): (_CLOSE,),
}
"""(source, event, guard) of each ``CONNECTION`` row -> the 5.0 statements it stands for."""

CLOSE_REFS_5 = (_CLOSE,)
"""A close owed for a cause no row names, at level 5."""

CONNACK_OWED_5 = ("MQTT-3.1.4-5", "MQTT-3.2.0-1")
"""The CONNACK 0x00 owed for an accepted CONNECT."""

CONNACK_OR_CLOSE_OWED_5 = ("MQTT-3.1.4-5", "MQTT-3.1.4-2")
"""A CONNACK, or the close of a CONNECT that fails the server's further checks."""


ONLY_3_1_1_TO_5: dict[str, str] = {
    "MQTT-2.3.1-1": "MQTT-2.2.1-4",  # a Server's PUBLISH QoS > 0 has a non-zero identifier
    "MQTT-2.3.1-4": "MQTT-2.2.1-4",  # ... one currently unused
    "MQTT-2.3.1-5": "MQTT-2.2.1-2",  # no Packet Identifier in a QoS 0 PUBLISH
    "MQTT-2.3.1-6": "MQTT-2.2.1-5",  # PUBACK/PUBREC/PUBREL/PUBCOMP: the PUBLISH's identifier
    "MQTT-2.3.1-7": "MQTT-2.2.1-6",  # SUBACK/UNSUBACK: the request's identifier
    "MQTT-3.3.5-1": "MQTT-3.3.4-2",  # overlapping subscriptions: the maximum QoS of them
    "MQTT-4.8.0-1": _CLOSE,
}
"""3.1.1 ids that are none of 5.0's, cited by the judgement the model runs for clients of
both levels (``observe``, ``verdicts``), -> the 5.0 statement the server's packet
breaks there, read from 5.0's text (2.2.1, 3.3.4, 4.13). Ids 5.0 also has are left
alone: they are the level-5 rules' own, or name another sentence in 5.0 (see the
report of issue 16: the QoS flows' 4.3.x ids, read per row, are still to do)."""


NOT_DUE_5 = ("MQTT-4.5.0-1", "MQTT-3.3.4-2", "MQTT-3.8.4-8", "MQTT-3.3.1-12")
"""A PUBLISH nothing due explains, to a matching subscription: the message is not owed
[MQTT-4.5.0-1], or at another QoS (overlapping subscriptions [MQTT-3.3.4-2], the
granted QoS [MQTT-3.8.4-8]), or with another RETAIN flag [MQTT-3.3.1-12] (3.1.1 cites
its 3.3.5-1, 3.8.4-6, 3.3.1-9 and 3.3.1-8, other sentences or none in 5.0)."""

QOS_NOT_GRANTED_5 = ("MQTT-3.8.4-8",)
"""A message due at another QoS, one subscription matching: the minimum of the
message's QoS and the granted one (3.1.1's 3.8.4-6)."""

RETAIN_SET_5 = ("MQTT-3.3.1-12",)
"""RETAIN 1 on a forwarded message due with RETAIN 0 (Retain As Published 0 clears it;
3.1.1's 3.3.1-9 is 5.0's Retain Handling 0)."""

RETAIN_CLEARED_5 = ("MQTT-3.3.1-9", "MQTT-3.3.1-10", "MQTT-3.3.1-13")
"""RETAIN 0 on a message due with RETAIN 1: a retained message sent for a new
subscription (Retain Handling 0 or 1) or forwarded with Retain As Published 1
(3.1.1's 3.3.1-8 is none of 5.0's statements; 5.0's 3.3.1-8 is the client's RETAIN 0)."""

EMPTY_RETAINED_STORED_5 = ("MQTT-3.3.1-6", "MQTT-3.3.1-7")
"""A zero-byte retained message removes the retained one and is never stored itself
(3.1.1's 3.3.1-10 and 3.3.1-11)."""

QOS2_DUPLICATE_5 = ("MQTT-4.3.3-10",)
"""A QoS 2 message the server caused to reach an onward recipient twice: "It MUST NOT
cause duplicate messages to be delivered to any onward recipients" (3.1.1's 4.3.3-2;
5.0's 4.3.3-2 is the sender's DUP 0)."""

FORWARDED_5 = ("MQTT-4.5.0-1",)
"""What a forwarded first send covers (3.1.1 adds its RETAIN rules 3.3.1-9 / 3.3.1-8,
other sentences in 5.0: the level-5 rules judge RETAIN, ``v5.subscription_options``)."""

RETAINED_OWED_5 = ("MQTT-3.3.1-9", "MQTT-3.3.1-10")
"""A retained message owed to a new subscription: Retain Handling 0 or 1 (3.1.1's
3.3.1-6, 5.0's zero-byte removal)."""

FLOW_PACKET_REFS_5: dict[str, tuple[str, ...]] = {
    "PUBACK": ("MQTT-2.2.1-5", "MQTT-4.3.2-4"),
    "PUBREC": ("MQTT-2.2.1-5", "MQTT-4.3.3-8"),
    "PUBREL": ("MQTT-2.2.1-5", "MQTT-4.3.3-4"),
    "PUBCOMP": ("MQTT-2.2.1-5", "MQTT-4.3.3-11"),
}
"""A flow packet with no flow to answer: the identifier of the PUBLISH (or PUBREL) it
answers [MQTT-2.2.1-5] and the receiver's or sender's duty that sends it (3.1.1 cites
4.3.2-2, 4.3.3-2 and 4.3.3-1, the sender's or other duties in 5.0)."""


DUE_REFS_5: dict[str, tuple[str, ...]] = {
    "PUBLISH (DUP=1)": ("MQTT-4.4.0-1", "MQTT-3.3.1-1"),
    "PUBACK": ("MQTT-4.3.2-4",),
    "PUBREC": ("MQTT-4.3.3-8",),
    "PUBREL": ("MQTT-4.3.3-4",),
    "PUBCOMP": ("MQTT-4.3.3-11",),
}
"""A QoS flow packet the server owes, by the 5.0 duty that owes it: the re-send on
resumption [MQTT-4.4.0-1] with DUP 1 [MQTT-3.3.1-1], the QoS 1 receiver's PUBACK
[MQTT-4.3.2-4], the QoS 2 receiver's PUBREC [MQTT-4.3.3-8] and PUBCOMP
[MQTT-4.3.3-11], the QoS 2 sender's PUBREL [MQTT-4.3.3-4] (the QoS charts cite
3.1.1's 4.3.2-2, 4.3.3-2 and 4.3.3-1: the sender's first PUBLISH, or other duties,
in 5.0)."""

SUBACK_OWED_5 = ("MQTT-3.8.4-1", "MQTT-3.8.4-2", "MQTT-3.8.4-6")
"""A SUBACK owed: sent [MQTT-3.8.4-1] with the SUBSCRIBE's identifier [MQTT-3.8.4-2]
and a Reason Code per filter [MQTT-3.8.4-6] (3.1.1's 3.8.4-5; 5.0's 3.8.4-5 is
handling several filters as a sequence of SUBSCRIBEs)."""


SESSION_IDS_5: dict[str, str | None] = {
    "MQTT-3.3.5-1": "MQTT-3.3.4-2",  # overlapping subscriptions: their maximum QoS
    "MQTT-4.8.0-1": _CLOSE,  # the session's connection closed for a Protocol Error
    "MQTT-3.1.2-24": _KEEP_ALIVE,  # ... for its Keep Alive
    "MQTT-3.1.4-2": "MQTT-3.1.4-3",  # ... taken over
    "MQTT-3.1.2-4": None,  # 3.1.1's Clean Session: 5.0's Clean Start and Session
    "MQTT-3.1.2-5": None,  # Expiry Interval are judged by ``v5.session`` (SESSION_5),
    "MQTT-3.1.2-6": None,  # whose ids these numbers are in 5.0 for other sentences
    "MQTT-3.2.2-1": None,  # 5.0: CONNACK's reserved bits
    "MQTT-3.2.2-2": None,  # 5.0: Session Present 0 for Clean Start 1 (``v5.session``)
}
"""The 3.1.1 session chart's ids that name another sentence (or none) in 5.0, as the
coverage of a level-5 session reads them: the 5.0 statement of the same requirement,
or None where the level-5 session's own chart (``v5.session``) is what judges it."""


def session_refs(refs: Iterable[str], level: int) -> tuple[str, ...]:
    """A session chart row's ids as a session of ``level`` covers them."""
    if level != MQTT_5:
        return tuple(refs)
    return tuple(dict.fromkeys(
        five for ref in refs
        if (five := SESSION_IDS_5.get(ref, ref)) is not None
    ))


TOPIC_IDS_5: dict[str, str | None] = {
    "MQTT-3.3.1-12": "MQTT-3.3.1-8",  # RETAIN 0 from the Client: not stored, none removed
    "MQTT-3.3.1-10": "MQTT-3.3.1-6",  # a zero-byte retained message removes the retained one
    "MQTT-3.3.1-11": "MQTT-3.3.1-7",  # ... and is not stored itself
    "MQTT-3.3.1-9": None,  # RETAIN 0 when forwarded: Retain As Published, ``v5``'s
    "MQTT-3.3.1-6": None,  # retained messages for a new subscription: Retain Handling,
    "MQTT-3.3.1-8": None,  # ... judged by ``v5.subscription_options`` (SUBSCRIPTION_5)
    "MQTT-3.3.1-7": None,  # a QoS 0 retained message replaced: no 5.0 statement
}
"""The 3.1.1 topic chart's ids (its retained message) as the coverage of a level-5
publisher or subscriber reads them: 5.0's statement of the same requirement (3.3.1),
or None where 5.0 numbers another sentence so and a level-5 rule module judges it."""


def topic_refs(refs: Iterable[str], level: int) -> tuple[str, ...]:
    """A topic chart row's ids as a client of ``level`` covers them."""
    if level != MQTT_5:
        return tuple(refs)
    return tuple(dict.fromkeys(
        five for ref in refs
        if (five := TOPIC_IDS_5.get(ref, ref)) is not None
    ))


_RESEND = "MQTT-4.4.0-1"
_IDENTIFIER = "MQTT-2.2.1-5"

FLOW_ROW_REFS_5: dict[tuple[str, str, str, str | None], tuple[str, ...]] = {
    # the server sends a QoS 1 message: an unused identifier, QoS 1 and DUP 0, held
    # unacknowledged until the PUBACK [MQTT-4.3.2-1..3]
    ("qos1_sender", "pending", "send_publish", "first_send"): (
        "MQTT-4.3.2-1", "MQTT-4.3.2-2", "MQTT-2.2.1-4"),
    ("qos1_sender", "awaiting_puback", "send_publish", "dup"): ("MQTT-3.3.1-1",),
    ("qos1_sender", "awaiting_puback", "receive_puback", None): ("MQTT-4.3.2-3", _IDENTIFIER),
    ("qos1_sender", "awaiting_puback", "connection_lost", None): (_RESEND,),
    ("qos1_sender", "publish_resend_due", "send_publish", "dup"): (_RESEND, "MQTT-3.3.1-1"),
    ("qos1_sender", "publish_resend_due", "connection_lost", None): (_RESEND,),
    ("qos1_sender", "pending", "connection_lost", None): (),  # kept or not: ``v5.session``
    # the server sends a QoS 2 message [MQTT-4.3.3-1..6]
    ("qos2_sender", "pending", "send_publish", "first_send"): (
        "MQTT-4.3.3-1", "MQTT-4.3.3-2", "MQTT-2.2.1-4"),
    ("qos2_sender", "awaiting_pubrec", "send_publish", "dup"): ("MQTT-3.3.1-1",),
    ("qos2_sender", "awaiting_pubrec", "receive_pubrec", None): ("MQTT-4.3.3-3", _IDENTIFIER),
    ("qos2_sender", "pubrel_due", "send_publish", "dup"): ("MQTT-3.3.1-1",),
    ("qos2_sender", "pubrel_due", "send_pubrel", None): ("MQTT-4.3.3-4", _IDENTIFIER),
    ("qos2_sender", "pubrel_due", "receive_pubrec", None): ("MQTT-4.3.3-4",),
    ("qos2_sender", "awaiting_pubcomp", "send_pubrel", None): (_RESEND,),
    ("qos2_sender", "awaiting_pubcomp", "receive_pubrec", None): ("MQTT-4.3.3-5",),
    ("qos2_sender", "awaiting_pubcomp", "receive_pubcomp", None): ("MQTT-4.3.3-5",),
    ("qos2_sender", "awaiting_pubrec", "connection_lost", None): (_RESEND,),
    ("qos2_sender", "publish_resend_due", "send_publish", "dup"): (_RESEND, "MQTT-3.3.1-1"),
    ("qos2_sender", "publish_resend_due", "connection_lost", None): (_RESEND,),
    ("qos2_sender", "pubrel_due", "connection_lost", None): (_RESEND,),
    ("qos2_sender", "awaiting_pubcomp", "connection_lost", None): (_RESEND,),
    ("qos2_sender", "pending", "connection_lost", None): (),
    # the server receives a QoS 1 message: PUBACK with its identifier [MQTT-4.3.2-4]
    ("qos1_receiver", "idle", "receive_publish", None): ("MQTT-4.3.2-4", "MQTT-3.3.4-1"),
    ("qos1_receiver", "puback_due", "receive_publish", None): ("MQTT-4.3.2-4",),
    ("qos1_receiver", "puback_due", "send_puback", None): ("MQTT-4.3.2-4", _IDENTIFIER),
    ("qos1_receiver", "puback_due", "connection_lost", None): (_RESEND,),
    ("qos1_receiver", "awaiting_resend", "connection_lost", None): (_RESEND,),
    ("qos1_receiver", "awaiting_resend", "receive_publish", None): (_RESEND, "MQTT-4.3.2-4"),
    ("qos1_receiver", "awaiting_resend", "send_puback", None): ("MQTT-4.3.2-4",),
    # the server receives a QoS 2 message: PUBREC [MQTT-4.3.3-8], no duplicate onward
    # [MQTT-4.3.3-10], PUBCOMP for the PUBREL [MQTT-4.3.3-11]
    ("qos2_receiver", "idle", "receive_publish", None): ("MQTT-4.3.3-8", "MQTT-3.3.4-1"),
    ("qos2_receiver", "pubrec_due", "receive_publish", None): ("MQTT-4.3.3-10",),
    ("qos2_receiver", "pubrec_due", "send_pubrec", None): ("MQTT-4.3.3-8", _IDENTIFIER),
    ("qos2_receiver", "awaiting_pubrel", "receive_publish", None): ("MQTT-4.3.3-10",),
    ("qos2_receiver", "awaiting_pubrel", "receive_pubrel", None): ("MQTT-4.3.3-11",),
    ("qos2_receiver", "pubrec_due", "receive_pubrel", None): ("MQTT-4.3.3-11",),
    ("qos2_receiver", "idle", "receive_pubrel", None): ("MQTT-4.3.3-11",),
    ("qos2_receiver", "pubcomp_due", "receive_pubrel", None): ("MQTT-4.3.3-11",),
    ("qos2_receiver", "pubcomp_due", "send_pubcomp", None): ("MQTT-4.3.3-11", _IDENTIFIER),
    ("qos2_receiver", "pubrec_due", "connection_lost", None): (_RESEND,),
    ("qos2_receiver", "awaiting_pubrel", "connection_lost", None): (_RESEND,),
    ("qos2_receiver", "pubcomp_due", "connection_lost", None): (_RESEND,),
}
"""(chart, source, event, guard) of each 3.1.1 QoS flow row -> the 5.0 statements it
covers on a level-5 connection, read from 4.3 and 4.4 of 5.0 (3.1.1's 4.3.2-2 and
4.3.3-2, the receiver's duties, are the sender's DUP 0 in 5.0; its 2.3.1-x are 5.0's
2.2.1-x). An empty reading covers nothing: the level-5 session rules judge it."""


def flow_refs(chart: str, row: Transition, level: int) -> tuple[str, ...]:
    """The statements a QoS flow row of ``chart`` covers on a connection of ``level``."""
    if level != MQTT_5:
        return row.refs
    return FLOW_ROW_REFS_5[(chart, row.source, row.event, row.guard)]


PUBLISH_AFTER_PUBREL_5 = "MQTT-4.3.3-6"
"""A PUBLISH re-sent after its PUBREL: "the sender MUST NOT re-send the PUBLISH once
it has sent the corresponding PUBREL packet" (3.1.1 names it within its 4.3.3-1;
5.0's 4.3.3-1 is assigning an unused identifier)."""


def renumbered(refs: Iterable[str], level: int) -> tuple[str, ...]:
    """``refs`` as a connection of ``level`` cites them: 3.1.1-only ids in 5.0's
    numbers (``ONLY_3_1_1_TO_5``) at level 5."""
    if level != MQTT_5:
        return tuple(refs)
    return tuple(dict.fromkeys(ONLY_3_1_1_TO_5.get(ref, ref) for ref in refs))


def row_refs(row: Transition, level: int) -> tuple[str, ...]:
    """The statements ``row`` stands for on a connection of ``level``: its own (3.1.1's)
    below 5, its 5.0 reading at 5."""
    if level != MQTT_5:
        return row.refs
    return ROW_REFS_5[(row.source, row.event, row.guard)]
