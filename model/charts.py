"""Every chart of the model, in the order the documentation presents them.

``CHARTS`` are MQTT 3.1.1's, ``CHARTS_5`` MQTT 5.0's (their rows cite 5.0 statement ids:
``Chart.protocol``), ``ALL_CHARTS`` both, as ``mqttref charts`` draws them.
"""

from __future__ import annotations

from mqttref.model.chart import Chart
from mqttref.model.connection import CONNECTION
from mqttref.model.qos import QOS1_RECEIVER, QOS1_SENDER, QOS2_RECEIVER, QOS2_SENDER
from mqttref.model.session import SESSION
from mqttref.model.topic import TOPIC
from mqttref.model.v5.auth import AUTH_5
from mqttref.model.v5.disconnect import SERVER_DISCONNECT_5
from mqttref.model.v5.flow_control import FLOW_CONTROL_5
from mqttref.model.v5.message_expiry import MESSAGE_EXPIRY_5
from mqttref.model.v5.packet_size import PACKET_SIZE_5
from mqttref.model.v5.qos2_receiver import QOS2_RECEIVER_5
from mqttref.model.v5.reason_codes import PROBLEM_INFORMATION_5
from mqttref.model.v5.session import SESSION_5
from mqttref.model.v5.shared import SHARED_5
from mqttref.model.v5.subscription_options import SUBSCRIPTION_5
from mqttref.model.v5.topic_alias import TOPIC_ALIAS_5
from mqttref.model.v5.will import WILL_5

CHARTS: tuple[Chart, ...] = (
    CONNECTION,
    SESSION,
    TOPIC,
    QOS1_SENDER,
    QOS1_RECEIVER,
    QOS2_SENDER,
    QOS2_RECEIVER,
)

CHARTS_5: tuple[Chart, ...] = (
    SESSION_5,
    WILL_5,
    AUTH_5,
    SERVER_DISCONNECT_5,
    FLOW_CONTROL_5,
    TOPIC_ALIAS_5,
    MESSAGE_EXPIRY_5,
    QOS2_RECEIVER_5,
    PACKET_SIZE_5,
    SUBSCRIPTION_5,
    SHARED_5,
    PROBLEM_INFORMATION_5,
)

ALL_CHARTS: tuple[Chart, ...] = CHARTS + CHARTS_5
