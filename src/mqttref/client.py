"""The public client API: ``from mqttref.client import Client``.

The implementation lives in ``mqttref.impl.client``: a sans-IO protocol core
(``protocol``) and the asyncio shell (``client``). This module only gathers
the names users need.
"""

from mqttref.impl.client.backoff import Backoff
from mqttref.impl.client.client import Client, WhenDisconnected
from mqttref.impl.client.errors import (
    BrokerUnreachable,
    ConnectionClosed,
    ConnectionRefused,
    InvalidArgument,
    MQTTTimeout,
    NotConnected,
    PayloadTooLarge,
    ProtocolViolation,
    QueueFull,
    SessionDiscarded,
    SubscriptionRefused,
)
from mqttref.impl.client.events import (
    Connected,
    ConnectionEvent,
    Disconnected,
    Message,
    Reconnecting,
    Resubscribed,
)
from mqttref.impl.codec.errors import ClientError
from mqttref.impl.codec.packets import ProtocolLevel, QoS, Will

__all__ = [
    "Backoff",
    "BrokerUnreachable",
    "Client",
    "ClientError",
    "Connected",
    "ConnectionClosed",
    "ConnectionEvent",
    "ConnectionRefused",
    "Disconnected",
    "InvalidArgument",
    "MQTTTimeout",
    "Message",
    "NotConnected",
    "PayloadTooLarge",
    "ProtocolLevel",
    "ProtocolViolation",
    "QoS",
    "QueueFull",
    "Reconnecting",
    "Resubscribed",
    "SessionDiscarded",
    "SubscriptionRefused",
    "WhenDisconnected",
    "Will",
]
