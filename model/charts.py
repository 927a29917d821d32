"""Every chart of the model, in the order the documentation presents them."""

from __future__ import annotations

from mqttref.model.chart import Chart
from mqttref.model.connection import CONNECTION
from mqttref.model.qos import QOS1_RECEIVER, QOS1_SENDER, QOS2_RECEIVER, QOS2_SENDER
from mqttref.model.session import SESSION
from mqttref.model.topic import TOPIC

CHARTS: tuple[Chart, ...] = (
    CONNECTION,
    SESSION,
    TOPIC,
    QOS1_SENDER,
    QOS1_RECEIVER,
    QOS2_SENDER,
    QOS2_RECEIVER,
)
