"""A PUBLISH from the server is identified by its content, then its packet id and DUP
flag are judged against the message it carries.

The packet id is what [MQTT-2.3.1-4] puts under test, so it cannot be what decides
whether a PUBLISH is a re-send: a re-send under a new id would otherwise read as a
first send with a wrong DUP flag [MQTT-3.3.1-3], and a new message under an id in
use as a re-send. Each scenario feeds the model the packets of a broker that breaks
one statement and checks the model blames exactly that one.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    ProtocolLevel,
    PubAck,
    PubRec,
    PubRel,
    UnsubAck,
    Unsubscribe,
)
from mqttref.model import BrokerModel, Drop, Send, Violation
from tests.model.helpers import connect, publish, subscribe


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel()


def refs_of(model: BrokerModel, client: str, packet: object) -> tuple[str, ...]:
    """The statements the model names for ``packet``; it must reject it."""
    snapshot = [repr(o) for o in model.obligations()]
    with pytest.raises(Violation) as caught:
        model.observe(client, packet)  # type: ignore[arg-type]
    assert [repr(o) for o in model.obligations()] == snapshot  # a rejection changes nothing
    return caught.value.refs


def delivered_unacknowledged(model: BrokerModel, qos: int = 1, *, clean: bool = True) -> None:
    """``sub`` (subscribed to ``t``) got ``m1`` under packet id 4 and has not acknowledged it."""
    connect(model, "sub", clean=clean)
    subscribe(model, "sub", "t", qos)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m1", qos, 1)))
    model.observe("pub", PubAck(1) if qos == 1 else PubRec(1))
    model.observe("sub", publish("t", b"m1", qos, 4))


def test_a_retry_under_another_packet_id_breaks_the_same_id_rule(model: BrokerModel) -> None:
    """[MQTT-2.3.1-4]: the re-send is the message in flight (same topic and payload,
    DUP=1) under a new id; its DUP flag is right, so not [MQTT-3.3.1-3]."""
    delivered_unacknowledged(model)
    assert refs_of(model, "sub", publish("t", b"m1", 1, 5, dup=True)) == ("MQTT-2.3.1-4",)
    model.observe("sub", publish("t", b"m1", 1, 4, dup=True))  # the right re-send


def test_a_retry_under_an_id_of_another_message_is_still_a_re_send(model: BrokerModel) -> None:
    """[MQTT-2.3.1-4]: m1 re-sent under m2's id is m1 under the wrong id, not a
    corrupted re-send of m2."""
    delivered_unacknowledged(model)
    model.apply(Send("pub", publish("t", b"m2", 1, 2)))
    model.observe("pub", PubAck(2))
    model.observe("sub", publish("t", b"m2", 1, 5))
    assert refs_of(model, "sub", publish("t", b"m1", 1, 5, dup=True)) == ("MQTT-2.3.1-4",)


def test_a_re_send_on_reconnect_under_another_packet_id(model: BrokerModel) -> None:
    """[MQTT-2.3.1-4] [MQTT-4.4.0-1]: after a reconnect the unacknowledged PUBLISH
    must be re-sent with its original packet id."""
    delivered_unacknowledged(model, clean=False)
    model.apply(Drop("sub"))
    connect(model, "sub", clean=False, session_present=True)
    assert refs_of(model, "sub", publish("t", b"m1", 1, 5, dup=True)) == (
        "MQTT-2.3.1-4",
        "MQTT-4.4.0-1",
    )
    model.observe("sub", publish("t", b"m1", 1, 4, dup=True))


def test_a_re_delivery_without_dup_breaks_only_the_dup_rule(model: BrokerModel) -> None:
    """[MQTT-3.3.1-1]: the message in flight under its own id is a re-delivery; its
    packet id is right, only DUP=0 is wrong (not [MQTT-2.3.1-4])."""
    delivered_unacknowledged(model, clean=False)
    assert refs_of(model, "sub", publish("t", b"m1", 1, 4)) == ("MQTT-3.3.1-1",)
    model.apply(Drop("sub"))
    connect(model, "sub", clean=False, session_present=True)
    with pytest.raises(Violation, match="re-delivery must set DUP") as caught:
        model.observe("sub", publish("t", b"m1", 1, 4))
    assert caught.value.refs == ("MQTT-3.3.1-1",)


def test_an_extra_copy_of_the_message_in_flight_is_no_new_message(model: BrokerModel) -> None:
    """[MQTT-3.3.1-1]: with overlapping subscriptions, extra copies of m1 are allowed
    and pending while m1 is in flight; they are m1, so m1 under its own id with
    DUP=0 is a re-delivery without DUP, not a new message under an id in use
    (found by the hunt "forget DUP on redelivery")."""
    connect(model, "sub")
    subscribe(model, "sub", "t", 1)
    subscribe(model, "sub", "#", 0, packet_id=2)
    connect(model, "pub")
    model.apply(Send("pub", publish("t", b"m1", 1, 1)))
    model.observe("pub", PubAck(1))
    model.observe("sub", publish("t", b"m1", 1, 4))
    assert refs_of(model, "sub", publish("t", b"m1", 1, 4)) == ("MQTT-3.3.1-1",)
    assert refs_of(model, "sub", publish("t", b"m1", 1, 5, dup=True)) == ("MQTT-2.3.1-4",)
    model.observe("sub", publish("t", b"m1", 1, 4, dup=True))
    model.observe("sub", publish("t", b"m1", 0))  # the extra copy stays allowed


@pytest.mark.parametrize(("qos", "ref"), [(1, "MQTT-4.3.2-1"), (2, "MQTT-4.3.3-1")])
def test_a_new_message_under_an_id_in_flight_breaks_the_unused_id_rule(
    model: BrokerModel, qos: int, ref: str
) -> None:
    """[MQTT-4.3.2-1] [MQTT-4.3.3-1]: m2 is pending, not in flight, so it is a new
    message; the sender must give it an unused packet id. Not a re-send of m1."""
    delivered_unacknowledged(model, qos)
    model.apply(Send("pub", publish("t", b"m2", qos, 2)))
    model.observe("pub", PubAck(2) if qos == 1 else PubRec(2))
    assert refs_of(model, "sub", publish("t", b"m2", qos, 4)) == (ref,)
    model.observe("sub", publish("t", b"m2", qos, 5))


def test_a_publish_after_pubrel_breaks_only_the_qos_2_sender_rule(model: BrokerModel) -> None:
    """[MQTT-4.3.3-1]: once the server sent PUBREL it must not re-send the PUBLISH;
    DUP=1 is right for a re-send (not [MQTT-3.3.1-1]). Under another id it also
    breaks [MQTT-2.3.1-4]."""
    delivered_unacknowledged(model, 2)
    model.apply(Send("sub", PubRec(4)))
    model.observe("sub", PubRel(4))
    assert refs_of(model, "sub", publish("t", b"m1", 2, 4, dup=True)) == ("MQTT-4.3.3-1",)
    assert refs_of(model, "sub", publish("t", b"m1", 2, 5, dup=True)) == (
        "MQTT-2.3.1-4",
        "MQTT-4.3.3-1",
    )


def test_dup_on_a_first_send_breaks_the_dup_rule_only_for_a_due_message(
    model: BrokerModel,
) -> None:
    """[MQTT-3.3.1-3]: m2 is pending and in flight nowhere: DUP=1 is the publisher's
    flag propagated. A DUP=1 PUBLISH of a message that is not due at all is judged
    as not due, not as a DUP error."""
    delivered_unacknowledged(model)
    model.apply(Send("pub", publish("t", b"m2", 1, 2)))
    model.observe("pub", PubAck(2))
    assert refs_of(model, "sub", publish("t", b"m2", 1, 5, dup=True)) == ("MQTT-3.3.1-3",)
    assert refs_of(model, "sub", publish("t", b"m2", 0, dup=True)) == ("MQTT-3.3.1-2",)
    not_due = refs_of(model, "sub", publish("t", b"never", 1, 6, dup=True))
    assert "MQTT-3.3.1-3" not in not_due
    assert "MQTT-4.5.0-1" in not_due
    assert "MQTT-3.3.1-3" not in refs_of(model, "sub", publish("u", b"m2", 1, 6, dup=True))


def test_a_publish_matching_nothing_under_an_id_in_flight_is_not_due(model: BrokerModel) -> None:
    """[MQTT-4.5.0-1]: what no session is owed cannot be judged as a re-send or as a
    new message under a used id; it is not due."""
    delivered_unacknowledged(model)
    with pytest.raises(Violation, match="no such message is due"):
        model.observe("sub", publish("t", b"other", 1, 4))


def test_an_identical_message_in_flight_and_pending_names_both_readings(
    model: BrokerModel,
) -> None:
    """Two messages with the same topic and payload, one in flight (id 4), one pending:
    content cannot tell them apart, so a DUP=1 PUBLISH under a new id is either the
    first re-sent under another id [MQTT-2.3.1-4] or the second sent with DUP=1
    [MQTT-3.3.1-3]; the model names both, and still accepts both right packets."""
    delivered_unacknowledged(model)
    model.apply(Send("pub", publish("t", b"m1", 1, 2)))
    model.observe("pub", PubAck(2))
    assert refs_of(model, "sub", publish("t", b"m1", 1, 5, dup=True)) == (
        "MQTT-2.3.1-4",
        "MQTT-3.3.1-3",
    )
    assert refs_of(model, "sub", publish("t", b"m1", 1, 4)) == ("MQTT-3.3.1-1", "MQTT-4.3.2-1")
    model.observe("sub", publish("t", b"m1", 1, 4, dup=True))
    model.observe("sub", publish("t", b"m1", 1, 5))
    model.apply(Send("sub", PubAck(4)))
    model.apply(Send("sub", PubAck(5)))
    assert model.check_quiescent() == []


# ------------------------------------------------- subscriptions a clean session discarded


def stale_subscription(model: BrokerModel, *, clean_end: bool = True) -> None:
    """``c`` subscribed to ``s/#`` at QoS 1 in a session that is then discarded
    [MQTT-3.1.2-6]: ended by DISCONNECT (clean), or, persistent, by a clean CONNECT."""
    connect(model, "c", clean=clean_end)
    subscribe(model, "c", "s/#", 1)
    model.apply(Send("c", Disconnect()))
    connect(model, "c", clean=True)
    connect(model, "p")


def test_a_message_for_a_discarded_subscription_breaks_the_clean_session_rule(
    model: BrokerModel,
) -> None:
    """[MQTT-3.1.2-6]: the new session has no subscription; the message is due only
    to the one the clean session discarded (not [MQTT-3.3.2-3] [MQTT-3.10.4-2])."""
    stale_subscription(model)
    model.apply(Send("p", publish("s/x", b"m1", 1, 1)))
    model.observe("p", PubAck(1))
    assert refs_of(model, "c", publish("s/x", b"m1", 1, 1)) == ("MQTT-3.1.2-6",)


def test_a_persistent_session_discarded_by_a_clean_connect(model: BrokerModel) -> None:
    """[MQTT-3.1.2-6]: a clean CONNECT discards a disconnected persistent session."""
    stale_subscription(model, clean_end=False)
    model.apply(Send("p", publish("s/x", b"m1", 0)))
    assert refs_of(model, "c", publish("s/x", b"m1")) == ("MQTT-3.1.2-6",)


def test_a_higher_qos_from_a_discarded_subscription_is_no_qos_error(model: BrokerModel) -> None:
    """[MQTT-3.1.2-6]: subscribed again at QoS 0, the message arrives at the discarded
    subscription's QoS 1: that subscription should not exist, the grant is not at fault
    (not [MQTT-3.8.4-6])."""
    stale_subscription(model)
    subscribe(model, "c", "s/x", 0, packet_id=2)
    model.apply(Send("p", publish("s/x", b"m1", 1, 1)))
    model.observe("p", PubAck(1))
    assert refs_of(model, "c", publish("s/x", b"m1", 1, 1)) == ("MQTT-3.1.2-6",)
    model.observe("c", publish("s/x", b"m1", 0))


def test_an_extra_copy_from_a_discarded_subscription(model: BrokerModel) -> None:
    """[MQTT-3.1.2-6]: the owed copy arrived; a second one comes from the discarded
    subscription (not [MQTT-3.3.5-1], the new session's one subscription does not overlap)."""
    stale_subscription(model)
    subscribe(model, "c", "s/x", 1, packet_id=2)
    model.apply(Send("p", publish("s/x", b"m1", 1, 1)))
    model.observe("p", PubAck(1))
    model.observe("c", publish("s/x", b"m1", 1, 1))
    assert refs_of(model, "c", publish("s/x", b"m1", 1, 2)) == ("MQTT-3.1.2-6",)


def test_what_a_discarded_subscription_cannot_explain_is_judged_as_before(
    model: BrokerModel,
) -> None:
    """A message nobody published, a QoS above the discarded grant, and a filter
    subscribed again then unsubscribed ([MQTT-3.10.4-2]) are not blamed on
    [MQTT-3.1.2-6]."""
    stale_subscription(model)
    assert "MQTT-3.1.2-6" not in refs_of(model, "c", publish("s/x", b"never", 1, 1))
    model.apply(Send("p", publish("s/x", b"m2", 2, 1)))
    model.observe("p", PubRec(1))
    assert "MQTT-3.1.2-6" not in refs_of(model, "c", publish("s/x", b"m2", 2, 1))
    subscribe(model, "c", "s/#", 1, packet_id=2)
    model.apply(Send("c", Unsubscribe(3, ("s/#",))))
    model.observe("c", UnsubAck(3))
    model.apply(Send("p", publish("s/y", b"m3", 1, 2)))
    model.observe("p", PubAck(2))
    assert refs_of(model, "c", publish("s/y", b"m3", 1, 1)) == ("MQTT-3.3.2-3", "MQTT-3.10.4-2")


def test_a_connect_of_another_client_id_discards_nothing(model: BrokerModel) -> None:
    """Discarded subscriptions belong to their client id's session only."""
    stale_subscription(model)
    model.apply(Send("d", Connect(ProtocolLevel.MQTT_3_1_1, "d")))
    model.observe("d", ConnAck(False, 0))
    model.apply(Send("p", publish("s/x", b"m1", 0)))
    # "d" never subscribed nor unsubscribed: only the matching rule is broken.
    assert refs_of(model, "d", publish("s/x", b"m1")) == ("MQTT-3.3.2-3",)
