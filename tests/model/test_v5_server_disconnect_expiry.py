"""The server's DISCONNECT carries no Session Expiry Interval [MQTT-3.14.2-2].

Only the client may send one (3.14.2.2.2): the broker model judges every server
DISCONNECT on a level-5 connection for it, whatever the reason the server closes,
so that a broker adding one (e.g. ``expiry_in_server_disconnect`` of
``tests/stateful/faults5.py``) is found by the stateful machine.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import ConnAck, Disconnect, Properties
from mqttref.model import BrokerModel, Closed, Send
from tests.model.test_levels_mix import connect5, connected5, refs_of

NO_EXPIRY = Properties()
WITH_EXPIRY = Properties(session_expiry_interval=0)


@pytest.fixture
def model() -> BrokerModel:
    return BrokerModel(expiry_margin=2.0)


def test_a_takeovers_disconnect_carries_no_session_expiry_interval(
    model: BrokerModel,
) -> None:
    """A level-5 connection taken over by a new one with its ClientID is sent
    DISCONNECT 0x8E [MQTT-3.1.4-3]; with a Session Expiry Interval (even 0) that
    DISCONNECT breaks [MQTT-3.14.2-2], and the model stays as it was."""
    connected5(model, "old", client_id="id", clean_start=False, session_expiry=60)
    model.apply(connect5("new", client_id="id", clean_start=False, session_expiry=60))
    model.observe("new", ConnAck(True, 0x00))
    assert refs_of(model, "old", Disconnect(0x8E, WITH_EXPIRY)) == ("MQTT-3.14.2-2",)
    model.observe("old", Disconnect(0x8E, NO_EXPIRY))
    model.observe("old", Closed())
    assert model.check_quiescent() == []


def test_a_protocol_errors_disconnect_carries_no_session_expiry_interval(
    model: BrokerModel,
) -> None:
    """A client's DISCONNECT with a Session Expiry Interval after a CONNECT's 0 is a
    Protocol Error (3.14.2.2.2): DISCONNECT 0x82 fits it, but not with a Session
    Expiry Interval of the server's own [MQTT-3.14.2-2]."""
    connected5(model, "a")
    model.apply(Send("a", Disconnect(0x00, Properties(session_expiry_interval=60))))
    assert refs_of(model, "a", Disconnect(0x82, WITH_EXPIRY)) == ("MQTT-3.14.2-2",)
    model.observe("a", Disconnect(0x82, NO_EXPIRY))
    model.observe("a", Closed())
    assert model.check_quiescent() == []
