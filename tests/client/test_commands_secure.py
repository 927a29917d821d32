"""``mqttref pub`` and ``mqttref sub`` against brokers that ask for TLS, WebSocket and passwords.

Real peers: the mqttref broker with a TLS and a WebSocket-over-TLS listener,
and mosquitto 2.0 with a TLS listener, a password file written by
``mosquitto_passwd`` and an ACL file. Every command runs as its own process,
as a shell script would run it. A subscriber reads a retained message, so no
test waits for a subscription to be in place.

Bad input ends with one line on stderr and the exit code of
``command_line``: a refused CONNECT is 4 and says "not authorized", a failed
TLS handshake is 3 and says why, a bad URL or an unreadable file is 2 and
names it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mqttref.cli import main
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.listeners import Listener
from tests.broker.listener_peers import Certificates, make_certificates
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import MosquittoProcess, mosquitto_installed, require_peer

TIMEOUT = 20
PASSWORDS = {"alice": "wonderland", "bob": "builder"}
ACL = """\
user alice
topic read public/#
topic readwrite alice/#

user bob
topic readwrite public/#
"""
"""alice reads public/# and owns alice/#; bob writes public/#; nobody may touch secret/#."""


def mqttref(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqttref", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("client-tls"))


@pytest.fixture(scope="module")
def mqttref_broker(certificates: Certificates) -> Iterator[BrokerThread]:
    """TLS on the first listener, WebSocket over TLS on the second."""
    listeners = (
        Listener(port=0, transport="tls", certfile=str(certificates.server)),
        Listener(port=0, transport="wss", certfile=str(certificates.server)),
    )
    with BrokerThread(Config(port=0, listeners=listeners)) as running:
        yield running


def listener_port(broker: BrokerThread, transport: str) -> int:
    ports = {listener.transport: port for listener, port in broker.broker.listening}
    return ports[transport]


def test_pub_and_sub_over_tls_with_cafile(
    mqttref_broker: BrokerThread, certificates: Certificates
) -> None:
    port = str(listener_port(mqttref_broker, "tls"))
    tls = ("-h", "localhost", "-p", port, "--cafile", str(certificates.ca))
    ok(mqttref("pub", *tls, "-t", "tls/a", "-m", "over TLS", "-r", "-q", "1"))
    assert ok(mqttref("sub", *tls, "-t", "tls/#", "-C", "1", "-v", "-W", "10")) == (
        "tls/a over TLS\n"
    )


def test_pub_and_sub_over_websocket_over_tls_with_url(
    mqttref_broker: BrokerThread, certificates: Certificates
) -> None:
    url = f"wss://localhost:{listener_port(mqttref_broker, 'wss')}/mqtt"
    cafile = ("--cafile", str(certificates.ca))
    ok(mqttref("pub", "-L", url, *cafile, "-t", "wss/a", "-m", "over wss", "-r", "-q", "2"))
    received = mqttref("sub", "-L", url, *cafile, "-t", "wss/#", "-C", "1", "-v", "-W", "10")
    assert ok(received) == "wss/a over wss\n"


def test_a_server_certificate_from_another_ca_fails_the_handshake_with_exit_3(
    mqttref_broker: BrokerThread, certificates: Certificates
) -> None:
    port = str(listener_port(mqttref_broker, "tls"))
    result = mqttref("pub", "-h", "localhost", "-p", port, "--cafile",
                     str(certificates.other_ca), "-t", "t", "-m", "x")  # fmt: skip
    assert one_line_error(result, 3) == (
        f"mqttref pub: error: TLS handshake with localhost:{port} failed: the server's "
        "certificate was not accepted: unable to get local issuer certificate\n"
    )


def test_plain_mqtt_to_a_tls_listener_is_no_connack(mqttref_broker: BrokerThread) -> None:
    """Without TLS options the client speaks MQTT in clear: the TLS listener drops it."""
    port = str(listener_port(mqttref_broker, "tls"))
    result = mqttref("pub", "-h", "localhost", "-p", port, "-t", "t", "-m", "x")
    assert one_line_error(result, 1).startswith("mqttref pub: error: ")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["pub", "-L", "http://localhost/t", "-m", "x"],
         "bad URL 'http://localhost/t': it must start with mqtt://, mqtts://, ws:// or wss://"),
        (["pub", "-L", "mqtt://localhost:0/t", "-m", "x"], "port must be 1..65535, not '0'"),
        (["pub", "-L", "mqtt://localhost:1883", "-m", "x"], "-L: the URL has no topic"),
        (["pub", "-L", "mqtt://localhost/a", "-t", "b", "-m", "x"], "-t cannot go with -L"),
        (["sub", "-L", "mqtt://localhost/a", "-p", "1884"], "-p cannot go with it"),
        (["sub", "-L", "mqtt://u:p@localhost/a", "-u", "v"], "-u cannot go with it"),
        (["pub", "-L", "mqtt://localhost/a", "--cafile", "ca.pem", "-m", "x"],
         "use mqtts://"),
        (["pub", "-t", "a", "-m", "x", "--cafile", "/nonexistent/ca.pem"],
         "cannot read --cafile /nonexistent/ca.pem: No such file or directory"),
        (["pub", "-t", "a", "-m", "x", "--cafile", __file__], "no PEM certificate in it"),
        (["sub", "-t", "a", "--cafile", __file__, "--cert", "c.pem"],
         "--cert and --key go together"),
        (["sub", "-t", "a", "--insecure"], "--insecure needs TLS"),
        (["sub", "-t", "a", "--cafile", __file__, "--tls-version", "tlsv1.1"],
         "--tls-version must be tlsv1.2 or tlsv1.3, not 'tlsv1.1'"),
    ],
)  # fmt: skip
def test_bad_urls_and_tls_options_are_one_line_and_exit_2(
    args: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (they fail before any connection): a child each would cost seconds."""
    code = main(args)
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.count("\n") == 1, error
    assert complaint in error


# -- mosquitto 2.0: password file, ACL, TLS listener ---------------------------------------


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MosquittoProcess, Path]]:
    """mosquitto with ``allow_anonymous false``, a password file, an ACL and only a TLS
    listener; returns it with the CA file that signed its certificate."""
    require_peer("mosquitto", mosquitto_installed() and shutil.which("mosquitto_passwd")
                 is not None, "mqttref pub/sub are tested against mosquitto's TLS and "
                 "password file")  # fmt: skip
    directory = tmp_path_factory.mktemp("mosquitto-secure")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    passwords = directory / "passwords"
    for index, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwords), user, password],
                       check=True, timeout=TIMEOUT)  # fmt: skip
    (directory / "acl").write_text(ACL)
    broker = MosquittoProcess(
        directory,
        allow_anonymous=False,
        options=(
            f"cafile {directory / 'ca.pem'}",
            f"certfile {directory / 'server.crt'}",
            f"keyfile {directory / 'server.key'}",
            "require_certificate false",
            f"password_file {passwords}",
            f"acl_file {directory / 'acl'}",
        ),
    )
    broker.start()
    try:
        yield broker, directory / "ca.pem"
    finally:
        broker.stop()


def secure(mosquitto: tuple[MosquittoProcess, Path], user: str, password: str) -> list[str]:
    broker, ca = mosquitto
    return ["-h", "localhost", "-p", str(broker.port), "--cafile", str(ca),
            "-u", user, "-P", password]  # fmt: skip


def test_users_of_mosquittos_password_file_publish_and_subscribe_over_tls(
    mosquitto: tuple[MosquittoProcess, Path],
) -> None:
    bob = secure(mosquitto, "bob", PASSWORDS["bob"])
    ok(mqttref("pub", *bob, "-t", "public/news", "-m", "from bob", "-r", "-q", "1"))
    broker, ca = mosquitto
    url = f"mqtts://alice:{PASSWORDS['alice']}@localhost:{broker.port}/public/%23"
    received = mqttref("sub", "-L", url.replace("%23", "#"), "--cafile", str(ca), "-C", "1",
                       "-v", "-W", "10")  # fmt: skip
    assert ok(received) == "public/news from bob\n"


def test_mosquittos_acl_refuses_a_publish_outside_the_users_topics(
    mosquitto: tuple[MosquittoProcess, Path],
) -> None:
    """alice may only read public/#: at 5.0 mosquitto answers her QoS 1 PUBLISH with
    PUBACK 0x87 (not authorized), which ``mqttref pub`` reports (exit 1)."""
    alice = secure(mosquitto, "alice", PASSWORDS["alice"])
    result = mqttref("pub", *alice, "-V", "mqttv5", "-q", "1", "-t", "public/x", "-m", "x")
    assert "not authorized (reason code 0x87)" in one_line_error(result, 1)


def test_a_wrong_password_is_connack_not_authorized_and_exit_4(
    mosquitto: tuple[MosquittoProcess, Path],
) -> None:
    result = mqttref("pub", *secure(mosquitto, "alice", "queen of hearts"), "-t", "alice/x",
                     "-m", "x")  # fmt: skip
    assert "connection refused by the broker: not authorized (return code 5)" in (
        one_line_error(result, 4)
    )
