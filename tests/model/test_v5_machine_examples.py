"""Failing examples of the mixed-levels model machine (``test_v5_broker_machine``), each
settled from the specification's text and kept here as an explicit example."""

from __future__ import annotations

import attrs
import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.model import BrokerModel, Drop, Send, TimePasses
from mqttref.model.errors import Violation
from tests.model.helpers import connect, subscribe
from tests.model.test_levels_mix import connected5, refs_of
from tests.model.test_v5_broker_publish import subscribe5


def level5_at_receive_maximum_1(model: BrokerModel, client: str, client_id: str) -> None:
    connect = Connect(
        ProtocolLevel.MQTT_5, client_id, False, 0, properties=Properties(receive_maximum=1)
    )
    model.apply(Send(client, connect))
    model.observe(client, ConnAck(False, 0))


def test_a_copy_deleted_when_its_message_expired_is_not_lost() -> None:
    """Found by the machine (its invariant said "accepted message 2 lost for A"). A's
    Receive Maximum of 1 holds its second message back behind the first, unacknowledged;
    the second one's Message Expiry Interval (2 s) passes before the server could start
    onward delivery, so the server MUST delete that copy [MQTT-3.3.2-5]: the copy is
    gone by the specification's word, not lost, and is no longer owed."""
    model = BrokerModel(max_inflight=2)
    level5_at_receive_maximum_1(model, "s0", "A")
    model.apply(Send("s0", Subscribe(1, (Subscription("a", QoS.AT_LEAST_ONCE),))))
    model.observe("s0", SubAck(1, (1,)))
    model.apply(Send("s0", Publish("a", b"first", QoS.AT_LEAST_ONCE, packet_id=2)))
    model.observe("s0", PubAck(2))
    model.observe("s0", Publish("a", b"first", QoS.AT_LEAST_ONCE, packet_id=1))
    expiring = Properties(message_expiry_interval=2)
    model.apply(Send("s0", Publish("a", b"second", QoS.AT_LEAST_ONCE, packet_id=3,
                                   properties=expiring)))  # fmt: skip
    model.observe("s0", PubAck(3))
    assert model.check_quiescent() == []  # held back by the quota (4.9)
    model.apply(TimePasses(4.0))
    assert model.check_invariants() == []
    model.apply(Send("s0", PubAck(1)))
    assert model.check_quiescent() == []
    assert not [p for p in model.allowed("s0") if isinstance(p, Publish)]


# ------------------------------------------- one copy per overlapping subscription


def overlapping(model: BrokerModel, level: int) -> None:
    """Client s subscribes ``a`` at QoS 1 (identifier 1 at 5.0) and ``#`` at QoS 2
    (identifier 2); p publishes a QoS 2 message to ``a``, released at once."""
    if level == 5:
        connected5(model, "s")
        connected5(model, "p")
        subscribe5(model, "s", "a", 1, packet_id=1, identifier=1)
        subscribe5(model, "s", "#", 2, packet_id=2, identifier=2)
    else:
        connect(model, "s")
        connect(model, "p")
        subscribe(model, "s", "a", 1, 1)
        subscribe(model, "s", "#", 2, 2)
    model.apply(Send("p", Publish("a", b"m", QoS.EXACTLY_ONCE, packet_id=7)))
    model.observe("p", PubRec(7))
    model.apply(Send("p", PubRel(7)))
    model.observe("p", PubComp(7))


def per_subscription(level: int, qos: int, identifier: int, packet_id: int) -> Publish:
    ids = (identifier,) if level == 5 else ()
    properties = Properties(subscription_identifiers=ids)
    return Publish("a", b"m", QoS(qos), packet_id=packet_id, properties=properties)


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("order", [(2, 1), (1, 2)], ids=["highest first", "highest last"])
def test_one_copy_per_matching_subscription_is_allowed_at_both_levels(
    level: int, order: tuple[int, int]
) -> None:
    """3.3.4 (5.0) as 3.3.5 (3.1.1): the message is owed at the highest QoS of the
    matching subscriptions [MQTT-3.3.4-2] [MQTT-3.3.5-1], and "the Server MAY deliver
    further copies of the message, one for each additional matching subscription and
    respecting the subscription's QoS". A 5.0 server sending several puts in each the
    identifier of its own subscription [MQTT-3.3.4-5], not all of them as the single
    copy does [MQTT-3.3.4-4]. The model owed that single copy still after the QoS 2
    copy carrying identifier 2 alone."""
    model = BrokerModel()
    overlapping(model, level)
    for packet_id, qos in enumerate(order, start=1):
        model.observe("s", per_subscription(level, qos, identifier=qos, packet_id=packet_id))
    assert model.check_quiescent() == []
    assert model.check_invariants() == []


def test_copies_per_subscription_below_the_highest_qos_leave_the_message_owed() -> None:
    """The copy of the QoS 1 subscription alone does not meet [MQTT-3.3.4-2]: the copy at
    QoS 2 (identifier 2) or the single copy (identifiers 1 and 2) is still owed."""
    model = BrokerModel()
    overlapping(model, 5)
    model.observe("s", per_subscription(5, 1, identifier=1, packet_id=1))
    assert [o.what for o in model.obligations()] == ["PUBLISH 'a' b'm' QoS [2] retain=0"]


def test_a_per_subscription_copy_must_carry_its_own_identifier_only() -> None:
    """A QoS 2 copy carrying identifier 1 (the QoS 1 subscription's) is neither the
    single copy (both identifiers [MQTT-3.3.4-4]) nor the copy of ``#`` (identifier 2)."""
    model = BrokerModel()
    overlapping(model, 5)
    assert refs_of(model, "s", per_subscription(5, 2, identifier=1, packet_id=1)) == (
        "MQTT-3.3.4-4",
    )


def test_after_a_copy_per_subscription_no_single_copy_comes_too() -> None:
    """Once the server sent a copy per subscription, a further copy with both identifiers
    is a third copy of a QoS 2 message the client already got at QoS 2: a duplicate to
    an onward recipient [MQTT-4.3.3-10] (5.0's number for 3.1.1's 4.3.3-2)."""
    model = BrokerModel()
    overlapping(model, 5)
    model.observe("s", per_subscription(5, 2, identifier=2, packet_id=1))
    model.observe("s", per_subscription(5, 1, identifier=1, packet_id=2))
    both = Properties(subscription_identifiers=(1, 2))
    single = Publish("a", b"m", QoS.EXACTLY_ONCE, packet_id=3, properties=both)
    assert refs_of(model, "s", single) == ("MQTT-4.3.3-10",)


# ------------------------------------------------- a group member resumed at 3.1.1


def member_resumed_at_3_1_1(model: BrokerModel) -> None:
    """A level-5 session joins ``$share/h/+`` (QoS 1, identifier 2, Retain As
    Published), its connection drops, and a 3.1.1 CONNECT with the same ClientID and
    CleanSession 0 resumes it; a level-5 client publishes on ``a`` with properties."""
    connect5 = Connect(
        ProtocolLevel.MQTT_5, "A", False, 0,
        properties=Properties(session_expiry_interval=0xFFFFFFFF),
    )  # fmt: skip
    model.apply(Send("s0", connect5))
    model.observe("s0", ConnAck(False, 0))
    subscribe5(model, "s0", "$share/h/+", 1, identifier=2, retain_as_published=True)
    model.apply(Drop("s0"))
    connect(model, "s1", client_id="A", clean=False, session_present=True)
    connected5(model, "p")


def test_a_group_message_reaches_a_member_resumed_at_3_1_1_without_properties() -> None:
    """Found by the machine: the model offered this copy (its ``allowed``) and then
    rejected it for lacking Subscription Identifier 2 [MQTT-3.3.4-3]. The session is the
    ClientID's and keeps its groups; a 3.1.1 PUBLISH has no properties, so the copy
    carries neither the identifier nor the message's Content Type (3.3.4 and 3.3.2.3 are
    5.0 rules), and it goes at the member's QoS [MQTT-4.8.2-3]."""
    model = BrokerModel()
    member_resumed_at_3_1_1(model)
    properties = Properties(content_type="text/plain")
    model.apply(Send("p", Publish("a", b"", QoS.AT_MOST_ONCE, True, properties=properties)))
    offered = [p for p in model.allowed("s1") if isinstance(p, Publish)]
    assert offered == [Publish("a", b"", QoS.AT_MOST_ONCE, True)]
    model.observe("s1", offered[0])
    assert model.check_quiescent() == []


def test_a_member_resumed_at_3_1_1_gets_a_group_message_at_its_granted_qos() -> None:
    """The copy to the 3.1.1 connection respects the member's granted QoS all the same
    [MQTT-4.8.2-3]: a QoS 2 message goes at QoS 1."""
    model = BrokerModel()
    member_resumed_at_3_1_1(model)
    model.apply(Send("p", Publish("a", b"x", QoS.EXACTLY_ONCE, packet_id=1)))
    model.observe("p", PubRec(1))
    model.apply(Send("p", PubRel(1)))
    model.observe("p", PubComp(1))
    assert "MQTT-4.8.2-3" in refs_of(model, "s1", Publish("a", b"x", QoS.EXACTLY_ONCE,
                                                            packet_id=1))  # fmt: skip
    model.observe("s1", Publish("a", b"x", QoS.AT_LEAST_ONCE, packet_id=1))
    assert model.check_quiescent() == []


def test_a_group_message_waits_while_a_member_the_server_may_choose_is_at_quota_0() -> None:
    """Found by the level-5 machine on the mqttref broker (a control finding): the
    server chose member ``z``, whose Receive Maximum of 1 was taken by a message still
    unacknowledged, so the group's message waited, and the model owed it at once
    (named on member ``b``, first by name). The server may choose any member (4.8.2)
    and sends nothing at a send quota of 0 [MQTT-3.3.4-9]: the message is owed again
    once the quota is free."""
    model = BrokerModel()
    level5_at_receive_maximum_1(model, "z", "z")
    connected5(model, "b")
    connected5(model, "p")
    subscribe5(model, "z", "x", 1, packet_id=1)
    subscribe5(model, "z", "$share/g/t", 1, packet_id=2)
    subscribe5(model, "b", "$share/g/t", 1, packet_id=1)
    model.apply(Send("p", Publish("x", b"first", QoS.AT_LEAST_ONCE, packet_id=1)))
    model.observe("p", PubAck(1))
    model.observe("z", Publish("x", b"first", QoS.AT_LEAST_ONCE, packet_id=1))
    model.apply(Send("p", Publish("t", b"shared", QoS.AT_LEAST_ONCE, packet_id=2)))
    model.observe("p", PubAck(2))
    assert model.check_quiescent() == []
    model.apply(Send("z", PubAck(1)))
    assert [r for o in model.obligations() for r in o.refs] == ["MQTT-4.5.0-1"]
    model.observe("z", Publish("t", b"shared", QoS.AT_LEAST_ONCE, packet_id=2))
    assert model.check_quiescent() == []


def group_of_a_and_b(model: BrokerModel) -> Connect:
    """Member A (a session outliving its connection) and member b of ``$share/g/t``,
    both at QoS 1; p publishes. Returns A's CONNECT, to come back with."""
    connect_a = Connect(
        ProtocolLevel.MQTT_5, "A", False, 0, properties=Properties(session_expiry_interval=100)
    )
    model.apply(Send("s0", connect_a))
    model.observe("s0", ConnAck(False, 0))
    connected5(model, "b")
    connected5(model, "p")
    subscribe5(model, "s0", "$share/g/t", 1)
    subscribe5(model, "b", "$share/g/t", 1)
    return connect_a


def test_a_handed_back_message_re_sent_to_its_member_may_be_acknowledged() -> None:
    """Found by the mixed-levels machine with shared filters (a crash of the model): A
    held a group's QoS 1 message, its connection broke (the message is handed back,
    4.8.2), A came back and the server re-sent it with DUP 1 as 4.4.0 owes; A's PUBACK
    then found no message A held. The re-send makes A its holder again."""
    model = BrokerModel()
    connect_a = group_of_a_and_b(model)
    model.apply(Send("p", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    model.observe("p", PubAck(1))
    model.observe("s0", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1))
    model.apply(Drop("s0"))
    model.apply(Send("s1", connect_a))
    model.observe("s1", ConnAck(True, 0))
    model.observe("s1", Publish("t", b"m", QoS.AT_LEAST_ONCE, dup=True, packet_id=1))
    model.apply(Send("s1", PubAck(1)))
    assert model.check_quiescent() == []
    assert refs_of(model, "b", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)) == ()


def test_a_group_message_is_offered_with_the_expiry_interval_left() -> None:
    """Found by the mixed-levels machine: the model offered a group's message with the
    Message Expiry Interval it was published with after time had passed, then rejected
    that copy [MQTT-3.3.2-6]. It is offered with the interval less the wait, and not
    at all once it must have expired [MQTT-3.3.2-5]."""
    model = BrokerModel(expiry_margin=1.0)
    group_of_a_and_b(model)
    model.apply(Drop("s0"))  # A away: the message waits, owed to nobody
    properties = Properties(message_expiry_interval=10)
    model.apply(Send("p", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1,
                                  properties=properties)))  # fmt: skip
    model.observe("p", PubAck(1))
    model.apply(TimePasses(4.0))
    offered = [p for p in model.allowed("b") if isinstance(p, Publish)]
    assert [p.properties.message_expiry_interval for p in offered] == [6]
    model.apply(TimePasses(8.0))
    assert not [p for p in model.allowed("b") if isinstance(p, Publish)]
    assert "MQTT-3.3.2-5" in refs_of(model, "b", offered[0])


# ------------------------------------------------- a zero-length ClientID at 5.0


def connect_without_client_id(model: BrokerModel, client: str) -> None:
    connect = Connect(
        ProtocolLevel.MQTT_5, "", True, 0, properties=Properties(session_expiry_interval=100)
    )
    model.apply(Send(client, connect))


def test_a_session_under_an_assigned_client_id_is_found_by_that_client_id() -> None:
    """The model kept a zero-length ClientID's session as ``<assigned #n>``, which no
    CONNECT can name, so coming back with the Assigned Client Identifier found no
    session. The Session State is identified by the ClientID the server assigned and
    returned [MQTT-3.1.3-2] [MQTT-3.1.3-7]: that CONNECT resumes it, and what was
    queued for it is owed."""
    model = BrokerModel()
    connect_without_client_id(model, "s0")
    offered = model.allowed("s0")[0]
    assert isinstance(offered, ConnAck)
    assert offered.properties.assigned_client_identifier
    model.observe("s0", ConnAck(False, 0, Properties(assigned_client_identifier="auto-1")))
    subscribe5(model, "s0", "t", 1)
    model.apply(Drop("s0"))
    connected5(model, "p")
    model.apply(Send("p", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    model.observe("p", PubAck(1))
    back = Properties(session_expiry_interval=100)
    model.apply(Send("s1", Connect(ProtocolLevel.MQTT_5, "auto-1", False, 0, properties=back)))
    model.observe("s1", ConnAck(True, 0))
    assert [o.what for o in model.obligations()] == ["PUBLISH 't' b'm' QoS [1] retain=0"]


def test_an_accepted_zero_length_client_id_needs_an_unused_assigned_one() -> None:
    """Accepting a zero-length ClientID, the server MUST assign one [MQTT-3.1.3-6] and
    return it [MQTT-3.1.3-7], one no other Session uses [MQTT-3.2.2-16]."""
    model = BrokerModel()
    connected5(model, "x", client_id="taken", session_expiry=100)
    connect_without_client_id(model, "s0")
    assert refs_of(model, "s0", ConnAck(False, 0)) == (
        "MQTT-3.1.3-6", "MQTT-3.1.3-7", "MQTT-3.2.2-16",
    )  # fmt: skip
    taken = ConnAck(False, 0, Properties(assigned_client_identifier="taken"))
    assert refs_of(model, "s0", taken) == ("MQTT-3.2.2-16",)


def test_a_member_holding_a_group_message_gets_no_second_new_copy_of_it() -> None:
    """Found by the mixed-levels machine (seed 53, then a crash of the model): a QoS 2
    message released after its publisher A joined a group at QoS 1 went to A twice
    under new packet identifiers. A's own subscription ``a`` (granted QoS 0) owes it a
    QoS 0 copy; the group, formed before the PUBREL, may send it one more copy, at A's
    QoS 1 (4.8.2: "the Client will receive a copy ... by virtue of it having the
    Non-shared Subscription. A second copy ... to one of the subscribers to the Shared
    Subscription"). A third copy, a second new one from the group while A holds the
    first, breaks 4.8's "only sent to ... one of these Sessions" (each message once):
    refused, under no statement id of its own (``ONLY_ONE_MEMBER``)."""
    model = BrokerModel(max_inflight=2)
    connected5(model, "s0", client_id="A")
    subscribe5(model, "s0", "a", 0, packet_id=1)
    model.apply(Send("s0", Publish("a", b"", QoS.EXACTLY_ONCE, packet_id=2)))
    model.observe("s0", PubRec(2))
    subscribe5(model, "s0", "$share/g/a", 1, packet_id=3)
    model.apply(Send("s0", PubRel(2)))
    model.observe("s0", PubComp(2))
    model.observe("s0", Publish("a", b"", QoS.AT_LEAST_ONCE, packet_id=1))
    with pytest.raises(Violation, match="a second new copy to A") as caught:
        model.observe("s0", Publish("a", b"", QoS.AT_LEAST_ONCE, packet_id=2))
    assert caught.value.refs == ()
    model.observe("s0", Publish("a", b""))  # the subscription's own copy, at QoS 0
    model.apply(Send("s0", PubAck(1)))
    assert model.check_quiescent() == []


def qos2_group_of_a_and_b(model: BrokerModel) -> Connect:
    """``group_of_a_and_b`` at QoS 2: A, then b, join ``$share/g/t`` granted QoS 2; p
    publishes one QoS 2 message, released at once, and the server sends it to A."""
    connect_a = Connect(
        ProtocolLevel.MQTT_5, "A", False, 0, properties=Properties(session_expiry_interval=100)
    )
    model.apply(Send("s0", connect_a))
    model.observe("s0", ConnAck(False, 0))
    connected5(model, "b")
    connected5(model, "p")
    subscribe5(model, "s0", "$share/g/t", 2)
    subscribe5(model, "b", "$share/g/t", 2)
    model.apply(Send("p", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1)))
    model.observe("p", PubRec(1))
    model.apply(Send("p", PubRel(1)))
    model.observe("p", PubComp(1))
    model.observe("s0", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1))
    return connect_a


@pytest.mark.parametrize("qos", [QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])
def test_a_second_new_copy_to_the_member_in_flight_or_done_is_refused(qos: QoS) -> None:
    """Each message of a group goes to one member, once (4.8): while A holds it
    unacknowledged, and after A acknowledged it, neither A (a new PUBLISH, DUP 0, a
    new Packet Identifier) nor b may be sent it; nothing more is owed either way."""
    model = BrokerModel()
    group_of_a_and_b(model) if qos == QoS.AT_LEAST_ONCE else qos2_group_of_a_and_b(model)
    if qos == QoS.AT_LEAST_ONCE:
        model.apply(Send("p", Publish("t", b"m", qos, packet_id=1)))
        model.observe("p", PubAck(1))
        model.observe("s0", Publish("t", b"m", qos, packet_id=1))
    new = [p for c in ("s0", "b") for p in model.allowed(c) if isinstance(p, Publish)]
    assert [p for p in new if not p.dup] == []  # a re-send is the QoS flow's business
    for client, packet_id in (("s0", 2), ("b", 1)):
        assert refs_of(model, client, Publish("t", b"m", qos, packet_id=packet_id)) == ()
    model.apply(Send("s0", PubAck(1) if qos == QoS.AT_LEAST_ONCE else PubRec(1)))
    for client, packet_id in (("s0", 2), ("b", 1)):
        assert refs_of(model, client, Publish("t", b"m", qos, packet_id=packet_id)) == ()
    if qos == QoS.EXACTLY_ONCE:
        model.observe("s0", PubRel(1))
        model.apply(Send("s0", PubComp(1)))
    assert model.check_quiescent() == []


def test_a_qos2_member_that_reconnects_is_owed_the_re_send_only() -> None:
    """A held the group's QoS 2 message when its connection broke: the server MUST
    complete the delivery when A reconnects [MQTT-4.8.2-4], as 4.3.3 does it, by
    re-sending the PUBLISH (DUP 1, the same Packet Identifier [MQTT-4.4.0-1]). That
    re-send and A's PUBREC leave nothing owed (the model owed a new copy as well
    before: a second delivery); a new copy instead of it is refused, and b gets none
    [MQTT-4.8.2-4]."""
    model = BrokerModel()
    connect_a = qos2_group_of_a_and_b(model)
    model.apply(Drop("s0"))
    assert refs_of(model, "b", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1)) == ()
    model.apply(Send("s1", connect_a))
    model.observe("s1", ConnAck(True, 0))
    assert [o.refs for o in model.obligations()] == [("MQTT-4.4.0-1", "MQTT-3.3.1-1")]
    assert refs_of(model, "s1", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=2)) == ()
    model.observe("s1", Publish("t", b"m", QoS.EXACTLY_ONCE, dup=True, packet_id=1))
    model.apply(Send("s1", PubRec(1)))
    model.observe("s1", PubRel(1))
    model.apply(Send("s1", PubComp(1)))
    assert model.check_quiescent() == []


def test_a_qos2_message_whose_members_session_ended_goes_to_no_other_member() -> None:
    """A's session ends while it holds the group's QoS 2 message unacknowledged: the
    server MUST NOT send it to any other subscribed client [MQTT-4.8.2-5] (what the
    fault ``shared_qos2_handed_over`` breaks); sending b nothing is right."""
    model = BrokerModel()
    qos2_group_of_a_and_b(model)
    model.apply(Send("s0", Disconnect(0, Properties(session_expiry_interval=0))))
    model.apply(Drop("s0"))
    assert refs_of(model, "b", Publish("t", b"m", QoS.EXACTLY_ONCE, packet_id=1)) == (
        "MQTT-4.8.2-5", "MQTT-4.1.0-2",
    )
    assert model.check_quiescent() == []


def test_a_qos1_message_whose_member_lost_its_connection_may_go_to_the_other() -> None:
    """A held the group's QoS 1 message when its connection broke: the server MAY send
    it to b at once (4.8.2); A, back, is re-sent its own copy all the same
    [MQTT-4.4.0-1], and both acknowledgements end it."""
    model = BrokerModel()
    connect_a = group_of_a_and_b(model)
    model.apply(Send("p", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    model.observe("p", PubAck(1))
    model.observe("s0", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1))
    model.apply(Drop("s0"))
    model.observe("b", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1))
    model.apply(Send("b", PubAck(1)))
    model.apply(Send("s1", connect_a))
    model.observe("s1", ConnAck(True, 0))
    model.observe("s1", Publish("t", b"m", QoS.AT_LEAST_ONCE, dup=True, packet_id=1))
    model.apply(Send("s1", PubAck(1)))
    assert model.check_quiescent() == []


# ------------------------------------------- found by the control hunt, group stories


def test_a_re_send_waits_for_the_send_quota() -> None:
    """Found by the level-5 control hunt (seed 1) once the group stories gave members
    messages to hold: a session holding two QoS 1 messages unacknowledged is resumed
    by a connection with a Receive Maximum of 1. The server re-sends the first
    [MQTT-4.4.0-1]; the second is a PUBLISH at QoS 1 too, which it MUST NOT send at a
    send quota of zero [MQTT-4.9.0-2], so it is not owed until the PUBACK."""
    model = BrokerModel()
    resume = Connect(ProtocolLevel.MQTT_5, "A", False, 0,
                     properties=Properties(session_expiry_interval=100))  # fmt: skip
    model.apply(Send("s0", resume))
    model.observe("s0", ConnAck(False, 0))
    subscribe5(model, "s0", "t", 1)
    connected5(model, "p")
    for packet_id in (1, 2):
        model.apply(Send("p", Publish("t", b"m%d" % packet_id, QoS.AT_LEAST_ONCE,
                                      packet_id=packet_id)))  # fmt: skip
        model.observe("p", PubAck(packet_id))
        model.observe("s0", Publish("t", b"m%d" % packet_id, QoS.AT_LEAST_ONCE,
                                    packet_id=packet_id))  # fmt: skip
    model.apply(Drop("s0"))
    window = attrs.evolve(resume, properties=Properties(session_expiry_interval=100,
                                                        receive_maximum=1))  # fmt: skip
    model.apply(Send("s1", window))
    model.observe("s1", ConnAck(True, 0))
    model.observe("s1", Publish("t", b"m1", QoS.AT_LEAST_ONCE, dup=True, packet_id=1))
    assert model.check_quiescent() == []
    assert "MQTT-4.9.0-2" in refs_of(
        model, "s1", Publish("t", b"m2", QoS.AT_LEAST_ONCE, dup=True, packet_id=2)
    )
    model.apply(Send("s1", PubAck(1)))
    assert [o.refs for o in model.obligations()] == [("MQTT-4.4.0-1", "MQTT-3.3.1-1")]
    model.observe("s1", Publish("t", b"m2", QoS.AT_LEAST_ONCE, dup=True, packet_id=2))
    model.apply(Send("s1", PubAck(2)))
    assert model.check_quiescent() == []


def test_messages_handed_over_come_in_any_order_among_themselves() -> None:
    """Found by the level-5 control hunt (seed 4): A's session ended holding m2 and
    m1 of the group, m2 first (m1 had been handed to A by a member that left before);
    the server handed both over to b in that order. The order of 4.6.0-6 binds a
    server's messages to one consumer as a publisher sent them, not the hand-overs
    4.8.2 asks for: each message handed over has an order of its own."""
    model = BrokerModel()
    group_of_a_and_b(model)
    for packet_id in (1, 2):
        model.apply(Send("p", Publish("t", b"m%d" % packet_id, QoS.AT_LEAST_ONCE,
                                      packet_id=packet_id)))  # fmt: skip
        model.observe("p", PubAck(packet_id))
    model.observe("s0", Publish("t", b"m1", QoS.AT_LEAST_ONCE, packet_id=1))
    model.observe("s0", Publish("t", b"m2", QoS.AT_LEAST_ONCE, packet_id=2))
    model.apply(Send("s0", Disconnect(0, Properties(session_expiry_interval=0))))
    model.apply(Drop("s0"))
    model.observe("b", Publish("t", b"m2", QoS.AT_LEAST_ONCE, packet_id=1))
    model.observe("b", Publish("t", b"m1", QoS.AT_LEAST_ONCE, packet_id=2))
    for packet_id in (1, 2):
        model.apply(Send("b", PubAck(packet_id)))
    assert model.check_quiescent() == []


def test_a_message_queued_for_a_member_that_left_may_reach_another_after_later_ones() -> None:
    """Found by the level-5 control hunt (seed 3): the server chose A for m2 while A's
    Receive Maximum of 1 held it back behind m1; A's session ended and m2 went to b,
    which had been sent m3 meanwhile. m2 was handed over (4.8.2), it may come after
    m3; that is no breach of [MQTT-4.6.0-6]."""
    model = BrokerModel()
    model.apply(Send("s0", Connect(ProtocolLevel.MQTT_5, "A", True, 0,
                                   properties=Properties(receive_maximum=1))))  # fmt: skip
    model.observe("s0", ConnAck(False, 0))
    connected5(model, "b")
    connected5(model, "p")
    subscribe5(model, "s0", "$share/g/t", 2)
    subscribe5(model, "b", "$share/g/t", 2)
    for packet_id in (1, 2, 3):
        model.apply(Send("p", Publish("t", b"m%d" % packet_id, QoS.AT_LEAST_ONCE,
                                      packet_id=packet_id)))  # fmt: skip
        model.observe("p", PubAck(packet_id))
    model.observe("s0", Publish("t", b"m1", QoS.AT_LEAST_ONCE, packet_id=1))
    model.observe("b", Publish("t", b"m3", QoS.AT_LEAST_ONCE, packet_id=1))
    model.apply(Send("s0", Disconnect(0)))  # Session Expiry Interval 0: it ends
    model.apply(Drop("s0"))
    model.observe("b", Publish("t", b"m2", QoS.AT_LEAST_ONCE, packet_id=2))
    model.observe("b", Publish("t", b"m1", QoS.AT_LEAST_ONCE, packet_id=3))
    for packet_id in (1, 2, 3):
        model.apply(Send("b", PubAck(packet_id)))
    assert model.check_quiescent() == []


def test_a_hand_over_racing_the_connack_that_ends_its_members_session_is_allowed_after() -> None:
    """Found by the level-5 fault hunts (will_before_delay and retain_as_published_ignored,
    seed 1: the same program, no fault involved): member c2, at a Receive Maximum of 1
    and holding a message, had m4 of the group queued while c3 got m3 and m5; a new
    connection took c2's session over with Clean Start 1, and the server handed m4 to
    c3 before its CONNACK said the session had ended. Judged before that CONNACK, m4
    is out of the group's order and refused, but the refusal must change nothing (the
    driver holds the packet and judges it again): once the CONNACK ends c2's session,
    m4 is a hand-over, which may come after m5 (4.8.2)."""
    model = BrokerModel()
    window = Properties(session_expiry_interval=1, receive_maximum=1)
    model.apply(Send("s4", Connect(ProtocolLevel.MQTT_5, "c2", False, 0, properties=window)))
    model.observe("s4", ConnAck(False, 0))
    subscribe5(model, "s4", "a", 2, packet_id=1)
    model.apply(Send("s4", Publish("a", b"m2", QoS.EXACTLY_ONCE, packet_id=2)))
    model.observe("s4", Publish("a", b"m2", QoS.EXACTLY_ONCE, packet_id=1))
    model.observe("s4", PubRec(2))
    connected5(model, "s2", client_id="c3")
    subscribe5(model, "s2", "$share/h/#", 2, packet_id=1)
    subscribe5(model, "s4", "$share/h/#", 1, packet_id=3)
    for packet_id, payload in ((4, b"m3"), (5, b"m4"), (6, b"m5")):
        model.apply(Send("s4", Publish("a", payload, QoS.AT_LEAST_ONCE, packet_id=packet_id)))
        model.observe("s4", PubAck(packet_id))
    model.observe("s2", Publish("a", b"m3", QoS.AT_LEAST_ONCE, packet_id=1))
    model.observe("s2", Publish("a", b"m5", QoS.AT_LEAST_ONCE, packet_id=2))
    forever = Properties(session_expiry_interval=0xFFFFFFFF)
    model.apply(Send("s3", Connect(ProtocolLevel.MQTT_5, "c2", True, 0, properties=forever)))
    handed = Publish("a", b"m4", QoS.AT_LEAST_ONCE, packet_id=3)
    assert refs_of(model, "s2", handed) == ("MQTT-4.6.0-6",)
    model.observe("s3", ConnAck(False, 0))
    model.observe("s2", handed)
    for packet_id in (1, 2, 3):
        model.apply(Send("s2", PubAck(packet_id)))
    assert [o for o in model.obligations() if o.client == "s2"] == []


# --------------------------------------- a group's QoS 0 message for a member away


@pytest.mark.parametrize("qos", [QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE])
def test_a_qos0_group_message_for_a_member_away_may_be_dropped(qos: QoS) -> None:
    """Found by the level-5 hunt of will_before_delay at seed 0 (no fault involved):
    member c3, alone in ``$share/h/#`` (identifier 31), lost its connection; two QoS 0
    messages were published to the group; c3 came back (Clean Start 0) and the model
    owed them to it [MQTT-4.5.0-1] 3 s later, though the server may have chosen c3 (the
    group's only member) while it was away, and a session holds QoS 0 messages pending
    transmission only optionally (4.1, Session State): they may be gone. A QoS 1
    message (granted QoS 1) is pending transmission in the session and owed on return."""
    model = BrokerModel()
    connect_c3 = Connect(
        ProtocolLevel.MQTT_5, "c3", False, 0,
        properties=Properties(session_expiry_interval=0xFFFFFFFF),
    )  # fmt: skip
    model.apply(Send("s2", connect_c3))
    model.observe("s2", ConnAck(False, 0))
    connected5(model, "p")
    subscribe5(model, "s2", "$share/h/#", 1, identifier=31)
    model.apply(Drop("s2"))
    model.apply(Send("p", Publish("b", b"m14", qos, packet_id=1 if qos else None)))
    if qos:
        model.observe("p", PubAck(1))
    model.apply(Send("s3", connect_c3))
    model.observe("s3", ConnAck(True, 0))
    owed = [r for o in model.obligations() for r in o.refs]
    assert owed == ([] if qos == QoS.AT_MOST_ONCE else ["MQTT-4.5.0-1"])


# ------------------------------------------- re-sends: only when a session resumes


@pytest.mark.parametrize("qos", [QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])
def test_a_level_5_re_send_within_its_connection_is_refused(qos: QoS) -> None:
    """5.0 drops 3.1.1's leeway for retries: a server re-sends an unacknowledged
    PUBLISH when the session resumes, and "MUST NOT resend messages at any other time"
    [MQTT-4.4.0-1]. A DUP=1 copy on the connection that sent the first is refused;
    the same copy after the session resumed on a new connection is owed."""
    model = BrokerModel()
    resume = Connect(ProtocolLevel.MQTT_5, "A", False, 0,
                     properties=Properties(session_expiry_interval=100))  # fmt: skip
    model.apply(Send("s0", resume))
    model.observe("s0", ConnAck(False, 0))
    subscribe5(model, "s0", "t", int(qos))
    connected5(model, "p")
    model.apply(Send("p", Publish("t", b"m", qos, packet_id=1)))
    model.observe("p", PubAck(1) if qos == QoS.AT_LEAST_ONCE else PubRec(1))
    model.observe("s0", Publish("t", b"m", qos, packet_id=7))
    assert refs_of(model, "s0", Publish("t", b"m", qos, dup=True, packet_id=7)) == (
        "MQTT-4.4.0-1",
    )
    model.apply(Drop("s0"))
    model.apply(Send("s1", resume))
    model.observe("s1", ConnAck(True, 0))
    model.observe("s1", Publish("t", b"m", qos, dup=True, packet_id=7))


def test_a_3_1_1_retry_within_its_connection_is_still_allowed() -> None:
    """3.1.1 requires the re-send on reconnect and leaves retries within a connection
    to the implementation (4.4): the same DUP=1 copy at level 4 is no violation."""
    model = BrokerModel()
    connect(model, "s0", clean=False)
    subscribe(model, "s0", "t", 1)
    connect(model, "p")
    model.apply(Send("p", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=1)))
    model.observe("p", PubAck(1))
    model.observe("s0", Publish("t", b"m", QoS.AT_LEAST_ONCE, packet_id=7))
    model.observe("s0", Publish("t", b"m", QoS.AT_LEAST_ONCE, dup=True, packet_id=7))
