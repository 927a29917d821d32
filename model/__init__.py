"""The executable specification: pure, synchronous statecharts of MQTT 3.1.1 and 5.0.

Nothing here imports ``mqttref.impl`` logic (only its packet *types*): the
model judges the implementation. Start with ``BrokerModel``::

    from mqttref.model import BrokerModel, Send, Closed
    model = BrokerModel()
    model.apply(Send("a", Connect(ProtocolLevel.MQTT_3_1_1, "a")))
    model.observe("a", ConnAck(False, 0))
    assert model.check_quiescent() == []

A CONNECT's Protocol Level says which rules judge its connection; 3.1.1 and 5.0
clients share one broker (``level5``). A level-5 client sends its 5.0 fields in
the packet types (``Connect(ProtocolLevel.MQTT_5, "b", clean_session=<Clean
Start>, properties=Properties(session_expiry_interval=60))``); time runs only
by ``TimePasses(seconds)``, which moves session expiry, will delay and message
expiry, each with ``BrokerModel(expiry_margin=...)`` of slack.
"""

from mqttref.model.broker import BrokerModel
from mqttref.model.chart import Chart, Event, State, Transition
from mqttref.model.client import ClientModel
from mqttref.model.errors import ChartError, ModelError, NoTransition, UsageError, Violation
from mqttref.model.events import (
    ClientEvent,
    Closed,
    Drop,
    Observation,
    Open,
    Send,
    SendMalformed,
    SendUnjudged,
    TimePasses,
    describe,
)
from mqttref.model.flows import Due, Flow, SideFlows
from mqttref.model.records import Obligation

__all__ = [
    "BrokerModel",
    "Chart",
    "ChartError",
    "ClientEvent",
    "ClientModel",
    "Closed",
    "Drop",
    "Due",
    "Event",
    "Flow",
    "ModelError",
    "NoTransition",
    "Obligation",
    "Observation",
    "Open",
    "Send",
    "SendMalformed",
    "SendUnjudged",
    "SideFlows",
    "State",
    "TimePasses",
    "Transition",
    "UsageError",
    "Violation",
    "describe",
]
