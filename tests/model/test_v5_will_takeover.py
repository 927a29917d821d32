"""A level-5 will of a connection taken over by a CONNECT that ends its session: due at
once (3.1.4, [MQTT-3.1.2-8]), whatever later connections do to the new session.

3.1.4's comment: "If the Session Expiry Interval of the existing Network Connection
is 0, or the new Network Connection has Clean Start set to 1 then if the existing
Network Connection has a Will Message it will be sent because the original Session
is ended on the takeover." The server's DISCONNECT 0x8E and its close of the old
connection may come after the new CONNACK; the will is due from then whatever the
delay, and a later resumption of the new session (which is not the will's) cancels
nothing. Found by the level-5 machine's control hunt: the will a Clean Start 1
takeover published came back retained after the client resumed its new session,
and the model named it cancelled.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import ConnAck, Disconnect
from mqttref.model import BrokerModel, Closed, Drop
from tests.model.helpers import publish
from tests.model.test_levels_mix import connect5, connected5, subscribed_to_wills, will5


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel(expiry_margin=2.0)


def taken_over(model: BrokerModel, *, clean_start: bool, present: bool) -> None:
    """``old`` (ClientID ``id``, a will of 10 s, a session that never expires) is
    taken over by ``new``, whose CONNACK comes before the old connection's close."""
    subscribed_to_wills(model)
    connected5(model, "old", client_id="id", clean_start=False, session_expiry=0xFFFFFFFF,
               will=will5(10))
    model.apply(connect5("new", client_id="id", clean_start=clean_start, session_expiry=1))
    model.observe("new", ConnAck(present, 0x00))
    model.observe("old", Disconnect(0x8E))
    model.observe("old", Closed())


def test_a_clean_start_takeover_makes_the_will_due_at_once(model: BrokerModel) -> None:
    """Clean Start 1 ends the original session: its will may go out now, not only
    after its delay [MQTT-3.1.2-8]. (A taken-over connection's will stays allowed
    rather than owed, as at 3.1.1: the model's ``will_optional``.)"""
    taken_over(model, clean_start=True, present=False)
    model.observe("watcher", publish("wills/a", b"gone"))
    assert model.check_quiescent() == []


def test_the_will_a_takeover_ended_stays_allowed_after_a_resumption(
    model: BrokerModel,
) -> None:
    """The new session, resumed by a later connection, is not the will's: the will
    the takeover made due may still come [MQTT-3.1.2-8]."""
    taken_over(model, clean_start=True, present=False)
    model.apply(Drop("new"))
    connected5(model, "back", client_id="id", clean_start=False, session_expiry=1,
               present=True)
    model.observe("watcher", publish("wills/a", b"gone"))
    assert model.check_quiescent() == []

