"""Several listeners in one config: parsing (each bad key named) and serving them at once."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config, load_config
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.codec.errors import ConfigError
from tests.broker.listener_peers import Certificates, PahoPeer, make_certificates
from tests.helpers.broker_thread import BrokerThread


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("listeners"))


@pytest.fixture
def peers() -> Iterator[list[PahoPeer]]:
    made: list[PahoPeer] = []
    yield made
    for peer in made:
        peer.close()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(text)
    return path


def test_toml_listener_tables_give_each_its_transport_and_settings(
    tmp_path: Path, certificates: Certificates,
) -> None:
    config = load_config(write(tmp_path, f"""
max_inflight = 10

[[listeners]]
port = 1883

[[listeners]]
port = 8883
host = "0.0.0.0"
transport = "tls"
certfile = "{certificates.server}"
cafile = "{certificates.ca}"
require_certificate = true
use_identity_as_username = true
tls_version = "tlsv1.3"

[[listeners]]
port = 8080
transport = "ws"
max_frame_size = 65536
"""))
    assert config.max_inflight == 10
    tcp, tls, ws = config.listeners
    assert tcp == Listener(port=1883)
    assert (tls.host, tls.transport, tls.require_certificate, tls.tls_version) == \
        ("0.0.0.0", "tls", True, "tlsv1.3")
    assert tls.use_identity_as_username
    assert (ws.transport, ws.max_frame_size) == ("ws", 65536)


@pytest.mark.parametrize(("table", "message"), [
    ('port = 1\ncolour = "red"', "listeners[0].colour: unknown key"),
    ('host = "::1"', "listeners[0]: needs a port"),
    ("port = 70000", "listeners[0].port: a port 0-65535"),
    ('port = 1\ntransport = "quic"', "listeners[0].transport: one of tcp, tls, ws, wss"),
    ('port = 1\ncertfile = "x.pem"', "listeners[0].certfile: only for tls and wss listeners"),
    ('port = 1\ntransport = "tls"\nmax_frame_size = 9',
     "listeners[0].max_frame_size: only for ws and wss listeners"),
    ('port = 1\ntransport = "wss"', "listeners[0].certfile: a wss listener needs"),
    ('port = 1\ntransport = "tls"\ncertfile = "/nonexistent/server.pem"',
     "listeners[0].certfile: cannot read /nonexistent/server.pem"),
    ('port = 1\ntransport = "tls"\ncertfile = "{ca}"',
     "listeners[0].certfile: certfile {ca}: not a PEM certificate chain and its private key"),
    ('port = 1\ntransport = "tls"\ncertfile = "{server}"\ncafile = "/nonexistent/ca.pem"',
     "listeners[0].cafile: cannot read /nonexistent/ca.pem"),
    ('port = 1\ntransport = "tls"\ncertfile = "{server}"\nrequire_certificate = true',
     "listeners[0].require_certificate: needs a cafile"),
    ('port = 1\ntransport = "tls"\ncertfile = "{server}"\nuse_identity_as_username = true',
     "listeners[0].use_identity_as_username: needs require_certificate"),
    ('port = 1\ntransport = "tls"\ncertfile = "{server}"\ntls_version = "tlsv1.0"',
     "listeners[0].tls_version: one of tlsv1.2, tlsv1.3"),
    ('port = 1\ntransport = "tls"\ncertfile = "{server}"\nrequire_certificate = "yes"',
     "listeners[0].require_certificate: true or false"),
    ('port = 1\ntransport = "ws"\nmax_frame_size = 0', "listeners[0].max_frame_size: bytes"),
])
def test_bad_listener_names_the_key_and_the_file(
    tmp_path: Path, certificates: Certificates, table: str, message: str,
) -> None:
    files = {"ca": certificates.ca, "server": certificates.server}
    path = write(tmp_path, "[[listeners]]\n" + table.format(**files) + "\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(message.format(**files)), raised.value


def test_second_listener_table_is_numbered(tmp_path: Path) -> None:
    path = write(tmp_path, '[[listeners]]\nport = 1\n[[listeners]]\nport = 2\nhost = ""\n')
    with pytest.raises(ConfigError, match=r"^listeners\[1\]\.host: a host name"):
        load_config(path)


def test_message_crosses_from_a_tcp_listener_to_a_websocket_listener(
    start_broker: Callable[..., BrokerThread], peers: list[PahoPeer],
) -> None:
    running = start_broker(listeners=(Listener(port=0), Listener(port=0, transport="ws")))
    (tcp, tcp_port), (ws, ws_port) = running.broker.listening
    assert (tcp.transport, ws.transport) == ("tcp", "ws")
    assert tcp_port != ws_port
    assert running.port == tcp_port
    on_ws = PahoPeer(ws_port, "on-ws", transport="ws").connect()
    peers.append(on_ws)
    on_tcp = PahoPeer(tcp_port, "on-tcp").connect()
    peers.append(on_tcp)
    on_ws.subscribe("cross/#")
    on_tcp.subscribe("cross/#")
    on_tcp.publish("cross/1", b"tcp to ws")
    assert on_ws.received() == ("cross/1", b"tcp to ws")
    assert on_tcp.received() == ("cross/1", b"tcp to ws")
    on_ws.publish("cross/2", b"ws to tcp")
    assert on_tcp.received() == ("cross/2", b"ws to tcp")
    assert on_ws.received() == ("cross/2", b"ws to tcp")


async def test_a_listener_that_cannot_bind_closes_those_already_open() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        broker = Broker(Config(store="memory", listeners=(
            Listener(port=free), Listener(port=busy, transport="ws"))))
        with pytest.raises(OSError):
            await broker.start()
        await asyncio.sleep(0)
        with socket.socket() as again:
            again.bind(("127.0.0.1", free))  # the first listener let its port go


def test_the_command_refuses_port_and_host_beside_configured_listeners(tmp_path: Path) -> None:
    """-p and --host set the one plain listener; with [[listeners]] in the file they would
    be ignored, so they are a bad argument instead (exit 2, one line)."""
    path = write(tmp_path, "[[listeners]]\nport = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "mqttref", "broker", "--memory", "-c", str(path), "-p", "1884"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mqttref broker: error: --port/--host: the config file names its [[listeners]];"
        " set addresses and ports there"]


def test_the_command_names_the_listener_address_it_cannot_bind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, f"[[listeners]]\nport = 0\n\n[[listeners]]\nport = {port}\n"
                               'transport = "ws"\n')
        result = subprocess.run(
            [sys.executable, "-m", "mqttref", "broker", "--memory", "-c", str(path)],
            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("mqttref broker: error: cannot listen on ")
    assert str(port) in error
