"""``mqttref check`` against a broker that asks for passwords, speaks TLS or WebSocket, and
refuses topics (issue 18): the mqttref broker with ``allow_anonymous = false``, a password
file written by ``mqttref passwd``, an ACL, and TLS and WebSocket-over-TLS listeners."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqttref.cli import main
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.packets import Connect, ProtocolLevel
from mqttref.oracle import raw
from mqttref.oracle.connection import Connection, Credentials, use, with_credentials_raw
from tests.broker.listener_peers import Certificates, make_certificates
from tests.helpers.broker_thread import BrokerThread

ONLY = ("MQTT-3.1.4-4", "MQTT-3.8.4-5", "MQTT-3.3.1-5")
"""A CONNECT accepted, a SUBSCRIBE answered, a retained message: clients of both users."""

ACL = """\
user alice
topic readwrite mqttref-check/#
topic write secret/#

user bob
topic readwrite mqttref-check/#
topic readwrite secret/#
"""
"""alice may publish to secret/# but not read it; bob may do both."""


def mqttref(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mqttref", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "passwords"
    for create, user, password in ((["-c"], "alice", "alice-secret"),
                                   ([], "bob", "bob-secret")):
        done = mqttref("passwd", *create, "-b", str(path), user, password)
        assert done.returncode == 0, done.stderr
    return path


def secured_broker(certificates: Certificates, password_file: Path, acl: str,
                   directory: Path) -> BrokerThread:
    acl_file = directory / "acl"
    acl_file.write_text(acl)
    tls = Listener(port=0, transport="tls", certfile=str(certificates.server))
    wss = Listener(port=0, transport="wss", certfile=str(certificates.server))
    return BrokerThread(Config(port=0, allow_anonymous=False, password_file=str(password_file),
                               acl_file=str(acl_file), listeners=(tls, wss))).start()


def ports(running: BrokerThread) -> dict[str, int]:
    return {listener.transport: port for listener, port in running.broker.listening}


@pytest.fixture(scope="module")
def denying(certificates: Certificates, password_file: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    running = secured_broker(certificates, password_file, ACL, tmp_path_factory.mktemp("deny"))
    yield running
    running.stop()


def users(*extra: str) -> tuple[str, ...]:
    return ("-u", "alice", "-P", "alice-secret", "--user2", "bob", "--password2", "bob-secret",
            *extra)


def test_tls_with_passwords_and_an_acl_is_green_and_the_report_states_how_it_connected(
    denying: BrokerThread, certificates: Certificates, tmp_path: Path,
) -> None:
    port = ports(denying)["tls"]
    report, junit = tmp_path / "report.json", tmp_path / "report.xml"
    result = mqttref("check", "--protocol", "3.1.1",
                     "-L", f"mqtts://127.0.0.1:{port}", "--cafile",
                     str(certificates.ca), *users(), "--denied-filter", "secret/#",
                     "--only", *ONLY, "denied_filter_refused", "--json", str(report),
                     "--junit", str(junit))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"transport: TLS (server certificate checked against {certificates.ca})" \
        in result.stdout
    assert ("authentication: user 'alice' with password and user 'bob' with password"
            in result.stdout)
    assert "PASS         denied_filter_refused" in result.stdout
    data = json.loads(report.read_text())
    assert data["transport"].startswith("TLS")
    assert "'bob'" in data["authentication"]
    assert {v["verdict"] for v in data["statements"]} == {"PASS"}
    users_seen = {line.split("user=")[1].split()[0] for check in data["checks"]
                  for line in check["trace"] if "CONNECT" in line and "user=" in line}
    assert users_seen == {"'alice'", "'bob'"}
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert properties["transport"] == data["transport"]
    assert properties["authentication"] == data["authentication"]
    for text in (result.stdout, report.read_text(), junit.read_text()):
        assert "alice-secret" not in text
        assert "bob-secret" not in text


def test_websocket_over_tls_is_green_and_without_denied_filter_the_acl_check_is_not_applicable(
    denying: BrokerThread, certificates: Certificates,
) -> None:
    port = ports(denying)["wss"]
    result = mqttref("check", "--protocol", "3.1.1",
                     "-L", f"wss://127.0.0.1:{port}/mqtt", "--cafile",
                     str(certificates.ca), "-u", "alice", "-P", "alice-secret", "--only",
                     *ONLY, "denied_filter_refused")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "transport: WebSocket over TLS (path /mqtt; server certificate" in result.stdout
    assert "authentication: user 'alice' with password\n" in result.stdout
    assert "NOT APPLICABLE denied_filter_refused" in result.stdout
    assert "3 checked, 3 passed, 0 failed" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_whole_suite_is_green_against_the_mqttref_broker_over_tls_with_passwords_and_an_acl(
    denying: BrokerThread, certificates: Certificates,
) -> None:
    """Issue 18's acceptance: every check, two users, the ACL on. Only statements the ACL
    makes impossible to observe may be NOT APPLICABLE, and each names the refusal."""
    port = ports(denying)["tls"]
    result = mqttref("check", "--protocol", "3.1.1",
                     "-L", f"mqtts://127.0.0.1:{port}", "--cafile",
                     str(certificates.ca), *users(), "--denied-filter", "secret/#",
                     "--no-exploration", "--seed", "5", timeout=500)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    checked, passed, failed = (int(word) for word in last.split()[::2][:3])
    assert failed == 0, result.stdout
    assert passed == checked >= 90, last
    assert "oracle error" not in result.stdout


def test_a_secured_run_does_not_explore_over_anonymous_tcp_and_says_so(
    denying: BrokerThread, certificates: Certificates,
) -> None:
    """The budget is too small for the suite; what matters is the exploration's line."""
    result = mqttref("check", "--protocol", "3.1.1",
                     "-L", f"mqtts://127.0.0.1:{ports(denying)['tls']}", "--cafile",
                     str(certificates.ca), "-u", "alice", "-P", "alice-secret", "--budget", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("exploration: model exploration not available over TLS/WebSocket/with credentials"
            " yet") in result.stdout


def test_a_denied_filter_the_acl_grants_is_an_acl_finding_not_a_fail_of_a_statement(
    certificates: Certificates, password_file: Path, tmp_path: Path,
) -> None:
    granting = secured_broker(certificates, password_file,
                              ACL.replace("topic write secret/#", "topic readwrite secret/#"),
                              tmp_path)
    report = tmp_path / "report.json"
    try:
        result = mqttref("check", "--protocol", "3.1.1",
                         "-L", f"mqtts://127.0.0.1:{ports(granting)['tls']}",
                         "--cafile", str(certificates.ca), *users(), "--denied-filter",
                         "secret/#", "--only", "MQTT-3.8.4-5", "denied_filter_refused",
                         "--json", str(report))
    finally:
        granting.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert {v["verdict"] for v in data["statements"]} == {"PASS"}
    (acl,) = [r for r in data["robustness"] if r["check"] == "denied_filter_refused"]
    assert acl["outcome"] == "FAIL"
    assert [f["ids"] for f in acl["findings"]] == [[], []]
    assert "the SUBACK grants QoS 0 for 'secret/#'" in acl["findings"][0]["message"]
    assert "was delivered" in acl["findings"][1]["message"]


def test_a_wrong_password_exits_2_with_the_connect_refusal_in_one_line(
    denying: BrokerThread, certificates: Certificates,
) -> None:
    result = mqttref("check", "--protocol", "3.1.1",
                     "-L", f"mqtts://127.0.0.1:{ports(denying)['tls']}", "--cafile",
                     str(certificates.ca), "-u", "alice", "-P", "wrong", "--only",
                     "MQTT-3.1.4-4")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"mqttref check: 127.0.0.1:{ports(denying)['tls']}: CONNECT refused: 0x04 bad user"
        " name or password (user 'alice'); check -u/-P"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--broker", "127.0.0.1:1883", "-L", "mqtt://127.0.0.1"], "either --broker or -L/--url"),
    (["-L", "http://127.0.0.1"], "the scheme must be one of"),
    (["-L", "mqtts://127.0.0.1", "--cafile", "/nonexistent/ca.pem"],
     "--cafile: cannot read /nonexistent/ca.pem"),
    (["-L", "mqtts://127.0.0.1", "--cert", "/nonexistent/client.pem"],
     "--cert and --key go together"),
    (["-L", "mqtt://127.0.0.1", "--cafile", "ca.pem"], "need TLS: mqtts:// or wss://"),
    (["--broker", "127.0.0.1:1883", "-P", "secret"], "a password needs a user name"),
    (["--broker", "127.0.0.1:1883", "--denied-filter", "a/#/b"],
     "'#' must be a whole level and the last one"),
    ([], "--broker HOST:PORT or -L URL"),
])
def test_bad_connection_options_exit_2_with_one_line(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process (the whole CLI, without a subprocess's start-up time)."""
    with pytest.raises(SystemExit) as exited:
        main(["check", *arguments])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error


def test_a_raw_connect_gets_the_run_user_only_when_the_codec_writes_it_back_unchanged() -> None:
    level = ProtocolLevel.MQTT_3_1_1
    alice = Connection(users=(Credentials("alice", b"pw"),))
    plain = raw.connect("c1") + raw.subscribe(1, ("t", 0))
    odd = raw.connect("c1", flags=0x42)  # password flag without user name [MQTT-3.1.2-22]
    with use(alice):
        changed = with_credentials_raw(plain, level)
        assert with_credentials_raw(odd, level) == odd
    assert changed.endswith(raw.subscribe(1, ("t", 0)))
    assert changed.startswith(b"\x10")
    connect = Decoder(role=Role.SERVER, protocol_level=level).feed(changed)[0]
    assert isinstance(connect, Connect)
    assert (connect.client_id, connect.username, connect.password) == ("c1", "alice", b"pw")
    assert with_credentials_raw(plain, level) == plain  # outside the run: anonymous
