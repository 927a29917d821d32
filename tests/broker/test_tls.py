"""TLS listeners with real peers: paho and mosquitto_sub/pub over TLS, mutual TLS.

A client that fails the handshake (no certificate where one is required, an
expired one) is refused before it sends a byte of MQTT: the broker keeps
serving the others and logs the failure once (rate-limited).
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqttref.impl.broker import tls
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.broker.transport import SocketEdge
from mqttref.impl.codec.codec import Decoder, Role, encode
from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    ProtocolLevel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
)
from mqttref.impl.logtext import LogLimiter
from tests.broker.listener_peers import Certificates, PahoPeer, make_certificates
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import require_peer

CONNECT = bytes.fromhex("101000044d5154540402003c0004") + b"hand"
"""MQTT 3.1.1 CONNECT, clean session, client id "hand"; CONNACK 0 is 20 02 00 00."""
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def tls_listener(certificates: Certificates, **settings: object) -> Listener:
    return Listener(port=0, transport="tls", certfile=str(certificates.server), **settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def limiter(monkeypatch: pytest.MonkeyPatch) -> LogLimiter:
    """A limiter of the TLS edge's own for each test: the broker's is shared by the
    process, and earlier tests' failures would count against this test's lines."""
    fresh = LogLimiter(logging.getLogger("mqttref.broker"))
    monkeypatch.setattr(tls, "broker_log", fresh)
    return fresh


@pytest.fixture
def tls_broker(start_broker: Callable[..., BrokerThread],
               certificates: Certificates) -> BrokerThread:
    return start_broker(listeners=(tls_listener(certificates),))


@pytest.fixture
def mutual_broker(start_broker: Callable[..., BrokerThread],
                  certificates: Certificates) -> BrokerThread:
    """A listener requiring client certificates signed by the test CA; the CN of the
    client's certificate is its identity."""
    return start_broker(listeners=(tls_listener(
        certificates, cafile=str(certificates.ca), require_certificate=True,
        use_identity_as_username=True),))


@pytest.fixture
def peers() -> Iterator[list[PahoPeer]]:
    made: list[PahoPeer] = []
    yield made
    for peer in made:
        peer.close()


def client_context(certificates: Certificates, certificate: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.ca))
    if certificate is not None:
        context.load_cert_chain(str(certificate))
    return context


def handshake(port: int, context: ssl.SSLContext) -> bytes:
    """A TLS client that sends CONNECT after its handshake; what the broker answers,
    b"" when it closes instead. Under TLS 1.3 the client's handshake ends before the
    server has checked its certificate: a refusal shows as an alert or an end of
    connection at the first read."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(CONNECT)
                return tls.recv(4)
        except (ssl.SSLError, ConnectionError):
            return b""


def test_paho_over_tls_publishes_and_receives(tls_broker: BrokerThread,
                                              certificates: Certificates,
                                              peers: list[PahoPeer]) -> None:
    subscriber = PahoPeer(tls_broker.port, "tls-sub", ca=certificates.ca).connect()
    peers.append(subscriber)
    subscriber.subscribe("tls/#")
    publisher = PahoPeer(tls_broker.port, "tls-pub", ca=certificates.ca).connect()
    peers.append(publisher)
    publisher.publish("tls/a", b"over TLS")
    assert subscriber.received() == ("tls/a", b"over TLS")


def test_mosquitto_pub_and_sub_with_cafile(tls_broker: BrokerThread,
                                           certificates: Certificates) -> None:
    for tool in ("mosquitto_sub", "mosquitto_pub"):
        require_peer(tool, shutil.which(tool) is not None, "TLS with mosquitto's clients")
    common = ["-h", "localhost", "-p", str(tls_broker.port), "--cafile", str(certificates.ca)]
    receiver = subprocess.Popen(
        ["mosquitto_sub", *common, "-t", "m/#", "-q", "1", "-v", "-C", "2", "-W", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert tls_broker.wait_for(lambda broker: len(broker.sessions) == 1)
    time.sleep(0.3)  # connected; mosquitto_sub gives no "subscribed" signal
    for n in range(2):
        subprocess.run(["mosquitto_pub", *common, "-t", f"m/{n}", "-m", f"secret {n}",
                        "-q", "1"], check=True, timeout=10, capture_output=True)
    out, err = receiver.communicate(timeout=15)
    assert out.splitlines() == ["m/0 secret 0", "m/1 secret 1"], err


def test_tls_client_trusting_another_ca_fails_and_the_broker_logs_why(
    tls_broker: BrokerThread, certificates: Certificates, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mqttref.broker")
    context = ssl.create_default_context(cafile=str(certificates.other_ca))
    assert handshake(tls_broker.port, context) == b""
    assert tls_broker.wait_for(
        lambda _b: any("unknown ca" in r.getMessage() for r in caplog.records))


def test_mutual_tls_refuses_a_client_without_certificate_at_the_handshake(
    mutual_broker: BrokerThread, certificates: Certificates, peers: list[PahoPeer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mqttref.broker")
    assert handshake(mutual_broker.port, client_context(certificates)) == b""
    assert mutual_broker.call(lambda broker: len(broker.connections.connections)) == 0
    assert mutual_broker.wait_for(
        lambda _b: any("TLS handshake" in r.getMessage() for r in caplog.records))
    refused = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(refused) == 1, refused
    assert "did not return a certificate" in refused[0]
    # The broker serves a client with a certificate all the same.
    alice = PahoPeer(mutual_broker.port, "alice-1", ca=certificates.ca,
                     certificate=certificates.client).connect()
    peers.append(alice)
    alice.subscribe("a")
    alice.publish("a", b"still serving")
    assert alice.received() == ("a", b"still serving")


def test_mutual_tls_refuses_an_expired_client_certificate(
    mutual_broker: BrokerThread, certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mqttref.broker")
    assert handshake(mutual_broker.port,
                     client_context(certificates, certificates.expired_client)) == b""
    assert mutual_broker.wait_for(
        lambda _b: any("expired" in r.getMessage() for r in caplog.records))
    assert mutual_broker.call(lambda broker: len(broker.connections.connections)) == 0


def test_mutual_tls_identity_is_the_certificate_common_name(
    mutual_broker: BrokerThread, certificates: Certificates,
) -> None:
    """The edge part of ``use_identity_as_username``: the CN reaches the connection."""
    assert handshake(mutual_broker.port,
                     client_context(certificates, certificates.client)) == CONNACK_ACCEPTED

    def identities(broker: object) -> list[str | None]:
        edges: list[SocketEdge] = list(broker.connections.connections.values())  # type: ignore[attr-defined]
        return [edge.identity for edge in edges]

    # The handshake helper closed its socket: ask while a second client stays connected.
    alice = PahoPeer(mutual_broker.port, "alice-2", ca=certificates.ca,
                     certificate=certificates.client).connect()
    try:
        assert mutual_broker.call(identities) == ["alice"]
    finally:
        alice.close()


def test_tls_version_sets_the_lowest_version_accepted(
    start_broker: Callable[..., BrokerThread], certificates: Certificates,
) -> None:
    running = start_broker(listeners=(tls_listener(certificates, tls_version="tlsv1.3"),))
    old = client_context(certificates)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(running.port, old) == b""
    assert handshake(running.port, client_context(certificates)) == CONNACK_ACCEPTED


def test_failed_handshakes_are_logged_at_a_bounded_rate(
    mutual_broker: BrokerThread, certificates: Certificates, limiter: LogLimiter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any client can fail a handshake at will: a burst of failures is a few lines
    and a count, not a line each."""
    caplog.set_level(logging.WARNING, "mqttref.broker")
    attempts = limiter.burst + 3
    for _ in range(attempts):
        assert handshake(mutual_broker.port, client_context(certificates)) == b""
    assert mutual_broker.wait_for(
        lambda _b: limiter.suppressed(tls.HANDSHAKE_FAILED) == attempts - limiter.burst)
    logged = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(logged) == limiter.burst
    assert mutual_broker.call(lambda broker: len(broker.connections.connections)) == 0


def test_websocket_over_mutual_tls_carries_the_identity_too(
    start_broker: Callable[..., BrokerThread], certificates: Certificates,
) -> None:
    running = start_broker(listeners=(Listener(
        port=0, transport="wss", certfile=str(certificates.server), cafile=str(certificates.ca),
        require_certificate=True, use_identity_as_username=True),))
    alice = PahoPeer(running.port, "alice-ws", transport="wss", ca=certificates.ca,
                     certificate=certificates.client).connect()
    try:
        assert running.call(lambda broker: [
            edge.identity for edge in broker.connections.connections.values()  # type: ignore[attr-defined]
        ]) == ["alice"]
    finally:
        alice.close()


def test_use_identity_as_username_makes_the_certificate_name_the_user_the_acl_sees(
    start_broker: Callable[..., BrokerThread], certificates: Certificates, tmp_path: Path,
) -> None:
    """mosquitto's ``use_identity_as_username``: the CN of the client certificate is the
    user name, whatever the CONNECT says, no password is asked (the password check
    would refuse 'mallory'), and the ACL judges the client as that user."""
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n", "utf-8")
    running = start_broker(
        listeners=(tls_listener(certificates, cafile=str(certificates.ca),
                                require_certificate=True, use_identity_as_username=True),),
        users={"bob": "secret"}, allow_anonymous=False, acl_file=str(acl))
    level = ProtocolLevel.MQTT_3_1_1
    connect = Connect(level, "who", True, 60, None, "mallory", b"wrong")
    subscribe = Subscribe(1, (Subscription("alice/x", QoS(1)), Subscription("mallory/x", QoS(1))))
    context = client_context(certificates, certificates.client)
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as client:
        client.sendall(encode(connect, level) + encode(subscribe, level))
        decoder = Decoder(role=Role.CLIENT, protocol_level=level)
        packets: list[object] = []
        while len(packets) < 2:
            data = client.recv(4096)
            assert data, f"closed after {packets}"
            packets += decoder.feed(data)
    connack, suback = packets
    assert isinstance(connack, ConnAck)
    assert connack.return_code == ConnectReturnCode.ACCEPTED
    assert isinstance(suback, SubAck)
    assert list(suback.return_codes) == [1, 0x80]


def test_a_client_that_never_finishes_the_handshake_is_closed_at_connect_timeout(
    start_broker: Callable[..., BrokerThread], certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "mqttref.broker")
    running = start_broker(listeners=(tls_listener(certificates),), connect_timeout=0.3)
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
        started = time.monotonic()
        raw.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        assert raw.recv(64) == b""
        assert time.monotonic() - started < 3
    assert running.wait_for(lambda _b: any(
        "no handshake within connect_timeout" in r.getMessage() for r in caplog.records))
    assert running.call(lambda broker: len(broker.connections.connections)) == 0


def test_the_broker_ends_a_tls_connection_with_close_notify(tls_broker: BrokerThread,
                                                            certificates: Certificates) -> None:
    """A second CONNECT is a protocol violation [MQTT-3.1.0-2]: the broker closes the
    network connection, TLS first (close_notify), so the client sees a clean end and
    not a truncation (which it reads as ``SSLEOFError`` here)."""
    context = client_context(certificates)
    with socket.create_connection(("127.0.0.1", tls_broker.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost",
                                suppress_ragged_eofs=False) as client:
        client.sendall(CONNECT)
        assert client.recv(4) == CONNACK_ACCEPTED
        client.sendall(CONNECT)
        assert client.recv(4) == b""  # close_notify; a bare TCP end would raise SSLEOFError


def test_mosquitto_pub_and_sub_with_a_password_over_tls(
    start_broker: Callable[..., BrokerThread], certificates: Certificates, tmp_path: Path,
) -> None:
    """mosquitto's own clients against the broker as a user moving from mosquitto would
    run it: TLS, anonymous clients refused, users from a file the real mosquitto_passwd
    wrote; a wrong password is refused and the others carry on."""
    for tool in ("mosquitto_sub", "mosquitto_pub", "mosquitto_passwd"):
        require_peer(tool, shutil.which(tool) is not None, "mosquitto's clients, with users")
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "alice", "alice-pw"],
                   check=True, timeout=10, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "bob", "bob-pw"],
                   check=True, timeout=10, capture_output=True)
    running = start_broker(listeners=(tls_listener(certificates),), allow_anonymous=False,
                           password_file=str(passwords))
    common = ["-h", "localhost", "-p", str(running.port), "--cafile", str(certificates.ca)]
    receiver = subprocess.Popen(
        ["mosquitto_sub", *common, "-u", "alice", "-P", "alice-pw", "-t", "u/#", "-q", "1",
         "-v", "-C", "1", "-W", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert running.wait_for(lambda broker: len(broker.sessions) == 1)
    time.sleep(0.3)  # connected; mosquitto_sub gives no "subscribed" signal
    wrong = subprocess.run(["mosquitto_pub", *common, "-u", "bob", "-P", "nope", "-t", "u/x",
                            "-m", "forged"], check=False, timeout=10, capture_output=True,
                           text=True)
    assert wrong.returncode != 0
    anonymous = subprocess.run(["mosquitto_pub", *common, "-t", "u/x", "-m", "anonymous"],
                               check=False, timeout=10, capture_output=True, text=True)
    assert anonymous.returncode != 0
    subprocess.run(["mosquitto_pub", *common, "-u", "bob", "-P", "bob-pw", "-t", "u/x",
                    "-m", "from bob", "-q", "1"], check=True, timeout=10, capture_output=True)
    out, err = receiver.communicate(timeout=15)
    assert out.splitlines() == ["u/x from bob"], err
