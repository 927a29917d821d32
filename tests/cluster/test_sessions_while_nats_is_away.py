"""Sessions while NATS is away: what a node still accepts, and what it refuses.

A clean session that ends with its connection needs nothing from the cluster, so a
node accepts it while NATS is away (unowned: no other node can be told to close the
same client id meanwhile). A session meant to outlive its connection can neither be
owned nor written, so its CONNECT is closed without CONNACK; once NATS is back, it
is accepted again. (docs/cluster.md, "Sessions, takeover and wills".)
"""

from __future__ import annotations

import time

from mqttref.impl.codec.packets import ConnAck, Connect, ConnectReturnCode, ProtocolLevel
from tests.broker.paho_client import Paho
from tests.cluster.sessions_nodes import NatsServer, SessionNode, require_nats_server
from tests.helpers.raw_client import CLOSED, RawClient

LEASE = 2.0


def wait_until(condition: object, timeout: float = 10.0) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_only_clean_sessions_connect_while_nats_is_away_and_all_do_once_it_is_back() -> None:
    require_nats_server()
    nats = NatsServer().start()
    node = SessionNode(nats.url, "n1", LEASE)
    try:
        nats.stop(keep_store=True)
        assert wait_until(lambda: not node.handle.link.connected)
        clean = Paho(node.port, "clean-away").connect()
        assert clean.connect_code == 0
        clean.disconnect()
        with RawClient(node.port) as persistent:
            persistent.send(Connect(ProtocolLevel.MQTT_3_1_1, "kept-away", clean_session=False))
            assert persistent.receive() == CLOSED
        nats.start()
        assert wait_until(lambda: node.handle.link.connected)
        with RawClient(node.port) as persistent:
            assert persistent.connect("kept-away", clean_session=False) == ConnAck(
                False, ConnectReturnCode.ACCEPTED)
    finally:
        node.stop()
        nats.stop()
