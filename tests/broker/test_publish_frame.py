"""The broker's hot-path PUBLISH encoder writes exactly the codec's bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.frames import publish_frame
from mqttref.impl.codec.packets import ProtocolLevel, Publish, QoS

topics = st.text(min_size=1, max_size=300).filter(
    lambda t: not set(t) & {"+", "#", "\x00"} and len(t.encode()) < 65536
)


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(st.sampled_from(QoS))
    return Publish(
        draw(topics),
        draw(st.binary(max_size=70_000)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) and qos > 0,
        draw(st.integers(1, 65535)) if qos else None,
    )


@given(publishes(), st.sampled_from([ProtocolLevel.MQTT_3_1, ProtocolLevel.MQTT_3_1_1]))
def test_publish_frame_is_the_codecs_encoding(packet: Publish, level: ProtocolLevel) -> None:
    frame = publish_frame(packet.topic, packet.payload, packet.qos, packet.retain,
                          dup=packet.dup, packet_id=packet.packet_id or 0)
    assert frame == encode(packet, level)
