"""The broker's pre-built acknowledgements are exactly the codec's bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.frames import PUBACK, PUBCOMP, PUBREC, PUBREL, ack_frame
from mqttref.impl.codec.packets import ProtocolLevel, PubAck, PubComp, PubRec, PubRel


@pytest.mark.parametrize(
    ("first", "packet_type"),
    [(PUBACK, PubAck), (PUBREC, PubRec), (PUBREL, PubRel), (PUBCOMP, PubComp)],
)
@given(packet_id=st.integers(1, 65535),
       level=st.sampled_from([ProtocolLevel.MQTT_3_1, ProtocolLevel.MQTT_3_1_1]))
def test_an_ack_frame_is_the_codecs_encoding_of_the_acknowledgement(
    first: int, packet_type: type[PubAck | PubRec | PubRel | PubComp],
    packet_id: int, level: ProtocolLevel,
) -> None:
    assert ack_frame(first, packet_id) == encode(packet_type(packet_id), level)
