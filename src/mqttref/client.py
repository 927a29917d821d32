"""The public client API: ``from mqttref.client import Client``.

The implementation lives in ``mqttref.impl.client``: a sans-IO protocol core
(``protocol``) and the asyncio shell (``client``). This module only gathers
the names users need.
"""

from mqttref.impl.client.backoff import Backoff
from mqttref.impl.client.client import Client, WhenDisconnected
from mqttref.impl.client.errors import (
    AuthenticationFailed,
    BrokerUnreachable,
    ConnectionClosed,
    ConnectionRefused,
    InvalidArgument,
    MQTTTimeout,
    NotConnected,
    NotSupportedByServer,
    PayloadTooLarge,
    ProtocolViolation,
    PublishRefused,
    QueueFull,
    ServerDisconnected,
    SessionDiscarded,
    SubscriptionRefused,
    TLSHandshakeFailed,
    UnsubscribeRefused,
    WebSocketRefused,
)
from mqttref.impl.client.events import (
    Connected,
    ConnectionEvent,
    Disconnected,
    Message,
    Reconnecting,
    Resubscribed,
)
from mqttref.impl.client.mqtt5 import ServerLimits
from mqttref.impl.client.options import Authenticator
from mqttref.impl.client.tls import TlsSettings
from mqttref.impl.codec.errors import ClientError, ReasonCode
from mqttref.impl.codec.packets import Properties, ProtocolLevel, QoS, Subscription, Will

__all__ = [
    "AuthenticationFailed",
    "Authenticator",
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
    "NotSupportedByServer",
    "PayloadTooLarge",
    "Properties",
    "ProtocolLevel",
    "ProtocolViolation",
    "PublishRefused",
    "QoS",
    "QueueFull",
    "ReasonCode",
    "Reconnecting",
    "Resubscribed",
    "ServerDisconnected",
    "ServerLimits",
    "SessionDiscarded",
    "Subscription",
    "SubscriptionRefused",
    "TLSHandshakeFailed",
    "TlsSettings",
    "UnsubscribeRefused",
    "WebSocketRefused",
    "WhenDisconnected",
    "Will",
]
