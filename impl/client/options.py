"""What goes into CONNECT and the limits the client core enforces, checked when built."""

from __future__ import annotations

import attrs

from mqttref.impl.client import validation
from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.codec.packets import ProtocolLevel, Will


@attrs.frozen
class ClientOptions:
    """What goes into CONNECT, and the limits the core enforces."""

    client_id: str = ""
    clean_session: bool = True
    keep_alive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    protocol_level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1
    max_inflight: int = 20
    """Outgoing QoS 1/2 messages awaiting acknowledgement at once (mosquitto: 20)."""
    connect_timeout: float = 10.0
    """Seconds to wait for CONNACK."""
    ping_timeout: float = 10.0
    """Seconds to wait for PINGRESP before calling the connection dead."""
    max_packet_size: int = validation.MAX_REMAINING_LENGTH
    resubscribe: bool = True
    """Subscribe again to the known filters when the broker has no session."""

    def __attrs_post_init__(self) -> None:
        validation.check_connect_options(
            client_id=self.client_id,
            clean_session=self.clean_session,
            keep_alive=self.keep_alive,
            protocol_level=self.protocol_level,
            username=self.username,
            password=self.password,
        )
        if self.will is not None:
            validation.check_topic_name(self.will.topic)
            validation.check_qos(self.will.qos)
        if not 1 <= self.max_inflight <= validation.MAX_PACKET_ID:
            raise InvalidArgument("max_inflight must be 1..65535")
