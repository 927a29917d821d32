"""The model's 5.0 frame reader writes the packet type numbers (2.1.2) again on purpose, so
that it shares no code with the codec it judges; this keeps the two copies in agreement."""

from mqttref.impl.codec.packets import PacketType
from mqttref.model.v5.frames import PacketType5


def test_the_model_and_the_codec_number_the_control_packets_alike() -> None:
    assert {t.name: t.value for t in PacketType5} == {t.name: t.value for t in PacketType}
