"""An UNSUBSCRIBE of several Topic Filters at 5.0 (3.10.4): processed as that many
UNSUBSCRIBE packets in a row, answered by one UNSUBACK.

The client holds three subscriptions and unsubscribes two of them and one it never had in
one packet. Then a message on each unsubscribed topic and one on the kept topic, as the
end marker: the marker must come, nothing on the two removed subscriptions before it, and
exactly one UNSUBACK with a Reason Code per filter, in order.
"""

from __future__ import annotations

from mqttref.impl.codec.packets import (
    QoS,
    Subscription,
    UnsubAck,
    Unsubscribe,
)
from mqttref.oracle.checks5.common import (
    UNSUBACK_CODES,
    check5,
    collect_until,
    connect5,
    publish5,
    subscribe5,
)
from mqttref.oracle.flows import require
from mqttref.oracle.scenario import Context

Q1 = QoS.AT_LEAST_ONCE


@check5("MQTT-3.10.4-6",
        summary="an UNSUBSCRIBE of two held filters and one never held removes both, leaves"
        " the third subscription, and is answered by one UNSUBACK with three Reason Codes")
async def unsubscribe_many_filters_v5(ctx: Context) -> None:
    first, second, kept = (ctx.topic("unsub", name) for name in ("a", "b", "kept"))
    never = ctx.topic("unsub", "never")
    sub, _ = await connect5(ctx, "sub")
    await subscribe5(sub, *(Subscription(t, Q1) for t in (first, second, kept)), exact=False)
    packet_id = sub.new_packet_id()
    await sub.send(Unsubscribe(packet_id, (first, never, second)))
    unsuback = await sub.expect(UnsubAck, "UNSUBACK for UNSUBSCRIBE [MQTT-3.10.4-4]")
    codes = unsuback.reason_codes
    require(unsuback.packet_id == packet_id and len(codes) == 3,
            f"sub: the UNSUBSCRIBE of three filters must be answered by one UNSUBACK with its"
            f" Packet Identifier {packet_id} and a Reason Code for each filter, got id"
            f" {unsuback.packet_id} with {codes} [MQTT-3.10.4-6]")
    require(all(code in UNSUBACK_CODES for code in codes), f"sub: UNSUBACK codes {codes} must"
            " be Unsubscribe Reason Codes [MQTT-3.11.3-2]")
    pub, _ = await connect5(ctx, "pub")
    await publish5(pub, first, b"first", Q1)
    await publish5(pub, second, b"second", Q1)
    await publish5(pub, kept, b"kept", Q1)
    before = await collect_until(sub, b"kept", "(its subscription was not in the UNSUBSCRIBE)"
                                 " [MQTT-3.10.4-6]")
    removed = [m.payload for m in before if m.payload in (b"first", b"second")]
    require(not removed, f"sub: {removed} arrived on subscriptions the one UNSUBSCRIBE removed:"
            " each of its filters must be processed as its own UNSUBSCRIBE [MQTT-3.10.4-6]")
    # A second UNSUBACK would have come before the marker, which was published after it.
    extra = [p for p in sub.pending if isinstance(p, UnsubAck)]
    require(not extra, f"sub: just one UNSUBACK for one UNSUBSCRIBE, got {len(extra) + 1}"
            " [MQTT-3.10.4-6]")
