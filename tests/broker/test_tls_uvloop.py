"""TLS and WebSocket-over-TLS against ``mqttref broker`` as users run it: on uvloop.

uvloop's server-side ``start_tls`` loses bytes that arrive around the handshake
(uvloop issue 707): under it, a TLS client that connected just after another
closed often stalled in its handshake, and ``mqttref check`` over ``mqtts://``
ran into its 30 s timeouts. The
broker now does TLS itself (``tls.TLSLayer``); these tests run the broker as a
child process, so on uvloop, and have many clients send their first packets in
one write right after the handshake: one after the other (what stalled, within
a few dozen connections), then all at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request

from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    Packet,
    ProtocolLevel,
    PubAck,
    Publish,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from tests.broker.listener_peers import Certificates, make_certificates
from tests.helpers.peers import require_peer, stop_process

IN_TURN = 150
AT_ONCE = 20
WAIT = 5.0
LEVEL = ProtocolLevel.MQTT_3_1_1


@attrs.frozen
class RunningBroker:
    tls_port: int
    wss_port: int
    log: Path
    certificates: Certificates


def _ports(log: Path, process: subprocess.Popen[bytes]) -> dict[str, int]:
    """The listeners' ports, from the broker's "listening on" lines (port 0 in the config)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the broker exited with {process.returncode}: "
                                 f"{log.read_text('utf-8')}")
        ports: dict[str, int] = {}
        for line in log.read_text("utf-8").splitlines():
            if "listening on" in line:
                address, transport = line.rsplit(" ", 2)[-2:]
                ports[transport.strip("()")] = int(address.rsplit(":", 1)[1])
        if len(ports) == 2:
            return ports
        time.sleep(0.05)
    raise AssertionError(f"the broker did not listen within {WAIT} s: {log.read_text('utf-8')}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    require_peer("uvloop", importlib.util.find_spec("uvloop") is not None,
                 "mqttref broker runs on uvloop, whose start_tls lost early bytes")
    directory = tmp_path_factory.mktemp("tls-uvloop")
    certificates = make_certificates(directory)
    config = directory / "broker.toml"
    config.write_text("".join(
        f'[[listeners]]\nport = 0\ntransport = "{transport}"\n'
        f'certfile = "{certificates.server}"\n\n' for transport in ("tls", "wss")), "utf-8")
    log = directory / "broker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mqttref", "broker", "--memory", "-c", str(config)],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        ports = _ports(log, process)
        yield RunningBroker(ports["tls"], ports["wss"], log, certificates)
    finally:
        stop_process(process)


def first_packets(n: int, topic: str) -> bytes:
    """CONNECT, SUBSCRIBE to its own topic and a retained QoS 1 PUBLISH to it, as one write."""
    return b"".join((
        encode(Connect(LEVEL, f"early-{n}", True, 60), LEVEL),
        encode(Subscribe(1, (Subscription(topic, QoS(1)),)), LEVEL),
        encode(Publish(topic, b"sent with the handshake", QoS(1), retain=True, packet_id=2),
               LEVEL),
    ))


def check_answers(topic: str, packets: list[Packet]) -> None:
    """CONNACK, SUBACK, and (in either order) the PUBACK and the message itself."""
    connack, suback, *rest = packets
    assert isinstance(connack, ConnAck)
    assert connack.return_code == ConnectReturnCode.ACCEPTED
    assert isinstance(suback, SubAck)
    assert list(suback.return_codes) == [1]
    assert any(isinstance(p, PubAck) and p.packet_id == 2 for p in rest), rest
    assert [(p.topic, p.payload) for p in rest if isinstance(p, Publish)] == [
        (topic, b"sent with the handshake")]


async def read_packets(reader: asyncio.StreamReader, decoder: Decoder,
                       packets: list[Packet], unwrap: WSConnection | None = None) -> None:
    while len(packets) < 4:
        data = await reader.read(65536)
        assert data, f"the broker closed after {packets}"
        if unwrap is not None:
            unwrap.receive_data(data)
            data = b"".join(bytes(e.data) for e in unwrap.events()
                            if isinstance(e, BytesMessage))
        packets += decoder.feed(data)


def client_context(certificates: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificates.ca))


async def tls_client(broker: RunningBroker, n: int) -> list[Packet]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", broker.tls_port, ssl=client_context(broker.certificates),
        server_hostname="localhost")
    try:
        # right after the handshake, before any answer:
        writer.write(first_packets(n, f"uvloop/tls/{n}"))
        packets: list[Packet] = []
        await read_packets(reader, Decoder(role=Role.CLIENT, protocol_level=LEVEL), packets)
        return packets
    finally:
        writer.close()


async def wss_client(broker: RunningBroker, n: int) -> list[Packet]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", broker.wss_port, ssl=client_context(broker.certificates),
        server_hostname="localhost")
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        writer.write(ws.send(Request(host="localhost", target="/mqtt", subprotocols=["mqtt"])))
        while True:  # the upgrade request went right after the handshake
            data = await reader.read(65536)
            assert data, "the broker closed during the WebSocket handshake"
            ws.receive_data(data)
            if any(isinstance(event, AcceptConnection) for event in ws.events()):
                break
        writer.write(ws.send(BytesMessage(data=first_packets(n, f"uvloop/wss/{n}"))))
        packets: list[Packet] = []
        await read_packets(reader, Decoder(role=Role.CLIENT, protocol_level=LEVEL), packets,
                           unwrap=ws)
        return packets
    finally:
        writer.close()


def run_clients(broker: RunningBroker, transport: str) -> None:
    """Clients one after the other, each closing before the next connects (under the
    loop's own TLS a handshake then stalled within a few dozen), then many at once."""
    make = tls_client if transport == "tls" else wss_client

    async def everyone() -> list[list[Packet]]:
        answers = [await asyncio.wait_for(make(broker, n), WAIT) for n in range(IN_TURN)]
        return answers + await asyncio.wait_for(
            asyncio.gather(*(make(broker, n) for n in range(IN_TURN, IN_TURN + AT_ONCE))), WAIT)

    for n, packets in enumerate(asyncio.run(everyone())):
        check_answers(f"uvloop/{transport}/{n}", packets)
    log = broker.log.read_text("utf-8")
    assert "TLS handshake" not in log, log
    assert "TLS error" not in log, log


def test_tls_clients_writing_right_after_the_handshake_all_get_their_answers(
    broker: RunningBroker,
) -> None:
    run_clients(broker, "tls")


def test_wss_clients_writing_right_after_the_handshake_all_get_their_answers(
    broker: RunningBroker,
) -> None:
    run_clients(broker, "wss")
