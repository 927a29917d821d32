"""The broker's password_file and the anonymous rule (issue 18): files mosquitto_passwd
wrote let their users in, files mqttref passwd wrote let them into mosquitto, and a bad
file stops the broker naming its line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttref.cli import main
from mqttref.impl.broker.admission import connect_return_code
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.codec.codec import Decoder, Role
from mqttref.impl.codec.packets import ConnAck, Connect, ConnectReturnCode, ProtocolLevel
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.peers import MosquittoProcess, mosquitto_installed, require_peer
from tests.helpers.raw_client import RawClient

V311, V5 = ProtocolLevel.MQTT_3_1_1, ProtocolLevel.MQTT_5
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
MOSQUITTO_PUB = Path("/usr/bin/mosquitto_pub")


def connack(port: int, level: ProtocolLevel, user: str | None, password: bytes | None
            ) -> int:
    with RawClient(port) as client:
        client.decoder = Decoder(role=Role.CLIENT, protocol_level=level)
        client.send(Connect(level, "c1", username=user, password=password), level)
        packet = client.receive()
        assert isinstance(packet, ConnAck), packet
        return packet.return_code


def test_a_file_mosquitto_passwd_wrote_lets_its_users_in_and_nobody_else(
        tmp_path: Path, start_broker: Callable[..., BrokerThread]) -> None:
    require_peer("mosquitto_passwd", MOSQUITTO_PASSWD.exists(),
                 "users must be able to bring their mosquitto password file along")
    path = tmp_path / "passwords"
    subprocess.run([str(MOSQUITTO_PASSWD), "-c", "-b", str(path), "alice", "in wonder"],
                   check=True, timeout=10)
    broker = start_broker(password_file=str(path), allow_anonymous=False)
    assert connack(broker.port, V311, "alice", b"in wonder") == ConnectReturnCode.ACCEPTED
    # A wrong password and an unknown user get the same answer: names do not leak.
    assert connack(broker.port, V311, "alice", b"in wonder!") == 0x04
    assert connack(broker.port, V311, "bob", b"in wonder") == 0x04
    assert connack(broker.port, V311, "alice", None) == 0x04
    assert connack(broker.port, V311, None, None) == 0x05
    assert connack(broker.port, V5, "alice", b"in wonder") == 0x00
    assert connack(broker.port, V5, "alice", b"nope") == 0x86
    assert connack(broker.port, V5, "bob", b"nope") == 0x86
    assert connack(broker.port, V5, None, None) == 0x87


def test_a_file_mqttref_passwd_wrote_is_accepted_by_mosquitto(tmp_path: Path) -> None:
    require_peer("mosquitto", mosquitto_installed() and MOSQUITTO_PUB.exists(),
                 "mqttref passwd must write files mosquitto 2.0 reads")
    path = tmp_path / "passwords"
    assert main(["passwd", "-c", "-b", str(path), "alice", "s3cret"]) == 0
    path.chmod(0o644)  # mosquitto reads it as the user it drops to
    with MosquittoProcess(tmp_path, allow_anonymous=False,
                          options=(f"password_file {path}",)) as mosquitto:
        def publish(password: str) -> int:
            return subprocess.run(
                [str(MOSQUITTO_PUB), "-h", "127.0.0.1", "-p", str(mosquitto.port), "-u",
                 "alice", "-P", password, "-t", "t", "-m", "m"],
                capture_output=True, timeout=10, check=False).returncode
        assert publish("s3cret") == 0
        assert publish("wrong") != 0


@pytest.mark.parametrize(("config", "accepted"), [
    (Config(), True),
    (Config(host="0.0.0.0"), False),
    (Config(host="0.0.0.0", allow_anonymous=True), True),
    (Config(allow_anonymous=False), False),
    (Config(listeners=(Listener(port=1), Listener(port=2, host="::1"))), True),
    (Config(listeners=(Listener(port=1), Listener(port=2, host="192.0.2.1"))), False),
])
def test_anonymous_clients_are_allowed_by_default_only_when_every_listener_is_loopback(
        config: Config, accepted: bool) -> None:
    code = connect_return_code(Connect(V311, "c"), config, open_connections=1)
    assert code == (ConnectReturnCode.ACCEPTED if accepted else ConnectReturnCode.NOT_AUTHORIZED)


@pytest.mark.parametrize(("key", "text", "where"), [
    ("password_file", "alice:$7$101$AAAA$" + "A" * 86 + "==\nbob:plain\n", ":2:"),
    ("acl_file", "user alice\ntopic read a\ntopik b\n", ":3:"),
])
def test_a_bad_file_stops_the_broker_with_exit_2_naming_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, text: str,
        where: str) -> None:
    bad = tmp_path / "file"
    bad.write_text(text)
    config = tmp_path / "broker.toml"
    config.write_text(f'{key} = "{bad}"\nport = 0\n')
    assert main(["broker", "-c", str(config), "--memory"]) == 2
    error = capsys.readouterr().err
    assert f"{key}: {bad}{where}" in error
    assert error.count("\n") == 1
