"""The client's Maximum Packet Size (MQTT 5.0) for every packet the broker sends but PUBLISH.

Theory of operation. A 5.0 client may say in CONNECT how large a packet it accepts, and
"the Server MUST NOT send packets exceeding Maximum Packet Size to the Client"
[MQTT-3.1.2-24]. Every packet the broker builds (all but the PUBLISH frames a session
packs itself) is encoded by ``fit``, in one place: the protocol core's ``send``, its
refusing CONNACK and its closing DISCONNECT.

What may give way is said packet by packet: the Reason String and the User Properties
MUST NOT be sent where they would make the packet larger than the maximum (CONNACK
[MQTT-3.2.2-19] [MQTT-3.2.2-20], PUBACK [MQTT-3.4.2-2] [MQTT-3.4.2-3], PUBREC
[MQTT-3.5.2-2] [MQTT-3.5.2-3], PUBREL [MQTT-3.6.2-2] [MQTT-3.6.2-3], PUBCOMP [MQTT-3.7.2-2]
[MQTT-3.7.2-3], SUBACK [MQTT-3.9.2-1] [MQTT-3.9.2-2], UNSUBACK [MQTT-3.11.2-1]
[MQTT-3.11.2-2], DISCONNECT [MQTT-3.14.2-3] [MQTT-3.14.2-4], AUTH [MQTT-3.15.2-2]
[MQTT-3.15.2-3]). So ``fit`` drops the Reason String first (a diagnostic the client
should not parse anyway), then the User Properties too, and takes the first that fits.
Nothing else is dropped: every other property changes what the packet means.

What still does not fit is ``None``, and then the specification has a rule only for an
Application Message: a PUBLISH is discarded as if it had been sent [MQTT-3.1.2-25]
(``session.py`` does that). For any other packet it is silent, and no packet can be left
out without breaking another rule (a SUBSCRIBE must be answered [MQTT-3.8.4-1], an
UNSUBSCRIBE too [MQTT-3.10.4-4], a PINGREQ [MQTT-3.12.4-1]). The protocol core therefore
closes the connection: after CONNACK with DISCONNECT 0x95, "the packet size is greater than
Maximum Packet Size for this Client" (3.14.2.1), which at three bytes fits any client that
took the CONNACK; before CONNACK, where no DISCONNECT may go [MQTT-3.14.0-1], with
CONNACK 0x80 if that fits, else silently. In practice that is a SUBACK or UNSUBACK for
many filters, or an authentication exchange, towards a client with a tiny maximum.
"""

from __future__ import annotations

import attrs

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Disconnect,
    Packet,
    ProtocolLevel,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    SubAck,
    UnsubAck,
)

_LEVEL = ProtocolLevel.MQTT_5

_TRIMMABLE = (ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth)
"""The packets the broker sends that may carry a Reason String and User Properties."""


def fit(packet: Packet, limit: int | None) -> bytes | None:
    """``packet`` encoded at 5.0 within ``limit`` bytes (None: no limit), without its
    Reason String and then without its User Properties if that is what it takes; None
    if it cannot fit. A PUBLISH is never trimmed: its User Properties go to every
    subscriber unaltered [MQTT-3.3.2-17]."""
    frame = encode(packet, _LEVEL)
    if limit is None or len(frame) <= limit:
        return frame
    if not isinstance(packet, _TRIMMABLE):
        return None
    properties = packet.properties
    for trimmed in (
        attrs.evolve(properties, reason_string=None),
        attrs.evolve(properties, reason_string=None, user_properties=()),
    ):
        if trimmed == properties:
            continue  # nothing of that kind to drop
        properties = trimmed
        frame = encode(attrs.evolve(packet, properties=trimmed), _LEVEL)
        if len(frame) <= limit:
            return frame
    return None

