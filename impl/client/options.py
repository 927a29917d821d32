"""What goes into CONNECT and the limits the client core enforces, checked when built."""

from __future__ import annotations

from typing import Protocol

import attrs

from mqttref.impl.client import validation
from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.codec.packets import PacketType, Properties, ProtocolLevel, UserProperty, Will
from mqttref.impl.codec.properties import WILL

MAX_U16 = 65_535
MAX_U32 = 4_294_967_295


class Authenticator(Protocol):
    """The client's side of MQTT 5.0 enhanced authentication (4.12), pluggable.

    The core asks it for the Authentication Data of CONNECT, hands it each
    AUTH challenge (reason 0x18) and the data of the final CONNACK (or AUTH
    0x00 after a re-authentication). A method such as SCRAM-SHA-256 implements
    this; the core only carries its bytes. Raising ``AuthenticationFailed``
    from ``challenge`` or ``finish`` closes the connection.
    """

    @property
    def method(self) -> str:
        """The Authentication Method property, e.g. ``"SCRAM-SHA-256"``."""
        ...

    def initial_data(self) -> bytes | None:
        """Authentication Data for CONNECT (or AUTH 0x19 when re-authenticating)."""
        ...

    def challenge(self, data: bytes | None) -> bytes | None:
        """The server's AUTH 0x18 data; returns the data of the AUTH 0x18 answer."""
        ...

    def finish(self, data: bytes | None) -> None:
        """The exchange succeeded on the server's side: check its final data."""
        ...


def _user_properties(value: object) -> tuple[UserProperty, ...]:
    return tuple((str(k), str(v)) for k, v in value)  # type: ignore[attr-defined]


@attrs.frozen
class ClientOptions:
    """What goes into CONNECT, and the limits the core enforces."""

    client_id: str = ""
    clean_session: bool = True
    """Clean Session below 5.0; Clean Start at 5.0 (3.1.2.4)."""
    keep_alive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    protocol_level: ProtocolLevel = ProtocolLevel.MQTT_3_1_1
    max_inflight: int = 20
    """Outgoing QoS 1/2 messages awaiting acknowledgement at once (mosquitto: 20);
    at 5.0 the server's Receive Maximum lowers it [MQTT-3.3.4-7]."""
    connect_timeout: float = 10.0
    """Seconds to wait for CONNACK."""
    ping_timeout: float = 10.0
    """Seconds to wait for PINGRESP before calling the connection dead."""
    max_packet_size: int = validation.MAX_REMAINING_LENGTH
    resubscribe: bool = True
    """Subscribe again to the known filters when the broker has no session."""
    # -- MQTT 5.0 only (3.1.2.11); None leaves a property out of CONNECT ------------------
    session_expiry_interval: int | None = None
    receive_maximum: int | None = None
    """QoS 1/2 deliveries the server may have unacknowledged with us at once."""
    topic_alias_maximum: int = 16
    """Topic aliases the server may use towards us (0: none)."""
    request_response_information: bool = False
    request_problem_information: bool | None = None
    user_properties: tuple[UserProperty, ...] = attrs.field(default=(), converter=_user_properties)
    authenticator: Authenticator | None = None
    auto_topic_alias: bool = True
    """Give repeated topics an alias, within the server's Topic Alias Maximum."""

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
            validation.check_publish_properties(self.will.properties, self.protocol_level, WILL)
        if not 1 <= self.max_inflight <= validation.MAX_PACKET_ID:
            raise InvalidArgument("max_inflight must be 1..65535")
        self._check_mqtt5()

    @property
    def mqtt5(self) -> bool:
        return self.protocol_level is ProtocolLevel.MQTT_5

    def _check_mqtt5(self) -> None:
        five_only = {
            "session_expiry_interval": self.session_expiry_interval is not None,
            "receive_maximum": self.receive_maximum is not None,
            "request_response_information": self.request_response_information,
            "request_problem_information": self.request_problem_information is not None,
            "user_properties": bool(self.user_properties),
            "authenticator": self.authenticator is not None,
        }
        if not self.mqtt5:
            used = [name for name, set_ in five_only.items() if set_]
            if used:
                raise InvalidArgument(f"{', '.join(used)} need MQTT 5.0 (Client(protocol=5))")
            return
        ranges = {
            "session_expiry_interval": (self.session_expiry_interval, 0, MAX_U32),
            "receive_maximum": (self.receive_maximum, 1, MAX_U16),  # 0 is a protocol error
            "topic_alias_maximum": (self.topic_alias_maximum, 0, MAX_U16),
        }
        for name, (value, low, high) in ranges.items():
            if value is not None and not low <= value <= high:
                raise InvalidArgument(f"{name} must be {low}..{high}, not {value!r}")
        validation.check_properties(
            self.connect_properties(authenticate=False), PacketType.CONNECT, self.protocol_level
        )

    def connect_properties(self, *, authenticate: bool = True) -> Properties:
        """The CONNECT properties these options ask for (empty below 5.0).

        With ``authenticate`` the authenticator is asked for its first data, which
        starts an exchange: do it once per CONNECT.
        """
        if not self.mqtt5:
            return Properties()
        authenticator = self.authenticator if authenticate else None
        maximum_packet_size = None
        if self.max_packet_size < validation.MAX_REMAINING_LENGTH:
            # Ours bounds the Remaining Length; the property counts the whole packet.
            maximum_packet_size = self.max_packet_size + 5
        return Properties(
            session_expiry_interval=self.session_expiry_interval,
            receive_maximum=self.receive_maximum,
            maximum_packet_size=maximum_packet_size,
            topic_alias_maximum=self.topic_alias_maximum or None,
            request_response_information=1 if self.request_response_information else None,
            request_problem_information=(
                None
                if self.request_problem_information is None
                else int(self.request_problem_information)
            ),
            user_properties=self.user_properties,
            authentication_method=None if authenticator is None else authenticator.method,
            authentication_data=None if authenticator is None else authenticator.initial_data(),
        )
