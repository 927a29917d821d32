"""``mqttref pub`` and ``mqttref sub`` as a shell script uses them, beside mosquitto's own tools.

Every command runs as a real process; a subscriber is known to be ready when
mosquitto's log shows the SUBACK it sent to that client id.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.client.brokers import Broker
from tests.helpers.peers import free_port

TIMEOUT = 60
"""An upper bound only (a command that works ends in about a second): a fresh-clone CI run
with both cores loaded took over 20 s to start a command and its broker."""


def mqttref(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mqttref", *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )


STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _kill_leftover_processes() -> Iterator[None]:
    """A failing test must not leave subscribers running."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.communicate()


def start(command: Sequence[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(process)
    return process


def start_mqttref_sub(broker: Broker, client_id: str, *args: str) -> subprocess.Popen[bytes]:
    process = start(
        [sys.executable, "-m", "mqttref", "sub", "-h", broker.host, "-p", str(broker.port),
         "-i", client_id, *args]
    )  # fmt: skip
    try:
        broker.wait_for_subscription(client_id)
    except AssertionError as exc:
        # Say what the subscriber itself printed, or that it still runs, not only that the
        # broker saw no SUBSCRIBE.
        if process.poll() is None:
            process.kill()
        out, err = process.communicate(timeout=TIMEOUT)
        raise AssertionError(
            f"{exc}; mqttref sub exited {process.returncode}: {err!r} {out!r}"
        ) from exc
    return process


def finish(process: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def pub(broker: Broker, *args: str, stdin: bytes | None = None) -> None:
    result = mqttref("pub", "-h", broker.host, "-p", str(broker.port), *args, stdin=stdin)
    assert result.returncode == 0, result.stderr


def mosquitto_pub(broker: Broker, *args: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), *args],
        check=True,
        timeout=TIMEOUT,
    )


def test_sub_prints_three_messages_from_mqttref_pub_and_mosquitto_pub_then_exits(
    broker: Broker,
) -> None:
    """The issue's acceptance check: -C 3 -t 'x/#' -v, QoS 2 included."""
    sub = start_mqttref_sub(broker, "acceptance", "-C", "3", "-t", "x/#", "-v", "-q", "2")
    pub(broker, "-t", "x/one", "-m", "from mqttref", "-q", "2")
    mosquitto_pub(broker, "-t", "x/two", "-m", "from mosquitto", "-q", "2")
    pub(broker, "-t", "x/three/deep", "-m", "qos one", "-q", "1")
    code, out, err = finish(sub)
    assert (code, err) == (0, b"")
    assert out.splitlines() == [
        b"x/one from mqttref",
        b"x/two from mosquitto",
        b"x/three/deep qos one",
    ]


@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_mosquitto_sub_receives_what_mqttref_pub_sends(broker: Broker, qos: str) -> None:
    sub = start(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-i", "msub",
         "-t", "m/#", "-q", qos, "-C", "1", "-F", "%t %q %p"]
    )  # fmt: skip
    broker.wait_for_subscription("msub")
    pub(broker, "-t", "m/q", "-m", "hello", "-q", qos)
    code, out, _ = finish(sub)
    assert (code, out) == (0, f"m/q {qos} hello\n".encode())


def test_sub_exits_after_count_messages_even_when_more_arrive(broker: Broker) -> None:
    sub = start_mqttref_sub(broker, "count", "-C", "2", "-t", "c")
    for n in range(5):
        mosquitto_pub(broker, "-t", "c", "-m", str(n), "-q", "1")
    code, out, _ = finish(sub)
    assert (code, out) == (0, b"0\n1\n")


def test_sub_wait_ends_with_code_27_and_prints_what_came_before(broker: Broker) -> None:
    sub = start_mqttref_sub(broker, "waiter", "-W", "1", "-t", "w")
    mosquitto_pub(broker, "-t", "w", "-m", "early")
    code, out, err = finish(sub)
    assert (code, out) == (27, b"early\n")
    assert err == b"mqttref sub: error: timed out\n"


def test_sub_count_reached_before_wait_expires_exits_zero(broker: Broker) -> None:
    sub = start_mqttref_sub(broker, "both", "-W", "10", "-C", "1", "-t", "w")
    mosquitto_pub(broker, "-t", "w", "-m", "quick")
    assert finish(sub)[:2] == (0, b"quick\n")


def test_sub_format_specifiers(broker: Broker) -> None:
    mosquitto_pub(broker, "-t", "f/t", "-m", "AB", "-q", "1", "-r")
    result = mqttref(
        "sub", "-h", broker.host, "-p", str(broker.port), "-t", "f/#", "-q", "1", "-C", "1",
        "-F", r"%t|%p|%q|%r|%l|%x|%X|%%|\t.",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"f/t|AB|1|1|2|4142|4142|%|\t.\n"


def test_sub_no_retained_option_skips_stale_messages(broker: Broker) -> None:
    mosquitto_pub(broker, "-t", "s", "-m", "stale", "-r")
    sub = start_mqttref_sub(broker, "fresh", "-R", "-C", "1", "-t", "s")
    mosquitto_pub(broker, "-t", "s", "-m", "fresh")
    assert finish(sub)[:2] == (0, b"fresh\n")


def test_pub_payload_sources(broker: Broker, tmp_path: Path) -> None:
    payload_file = tmp_path / "payload.bin"
    payload_file.write_bytes(b"\x00\x01binary")
    sub = start_mqttref_sub(broker, "sources", "-C", "6", "-t", "p/#", "-F", r"%t %x")
    pub(broker, "-t", "p/m", "-m", "hi")
    pub(broker, "-t", "p/f", "-f", str(payload_file))
    pub(broker, "-t", "p/n", "-n")
    pub(broker, "-t", "p/s", "-s", stdin=b"all\nof it")
    pub(broker, "-t", "p/l", "-l", stdin=b"line one\n\nline two\n")
    code, out, _ = finish(sub)
    assert code == 0
    assert out.decode().splitlines() == [
        "p/m " + b"hi".hex(),
        "p/f " + b"\x00\x01binary".hex(),
        "p/n ",
        "p/s " + b"all\nof it".hex(),
        "p/l " + b"line one".hex(),
        "p/l " + b"line two".hex(),
    ]


def test_pub_retain_flag_reaches_a_later_subscriber(broker: Broker) -> None:
    pub(broker, "-t", "keep", "-m", "kept", "-r", "-q", "1")
    result = mqttref(
        "sub", "-h", broker.host, "-p", str(broker.port), "-t", "keep", "-C", "1", "-F", "%r %p"
    )
    assert result.stdout == b"1 kept\n"


def test_sub_will_options_set_the_will(broker: Broker) -> None:
    watcher = start(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-i", "watch",
         "-t", "last/words", "-C", "1"]
    )  # fmt: skip
    broker.wait_for_subscription("watch")
    victim = start_mqttref_sub(
        broker, "victim", "-t", "nothing", "--will-topic", "last/words",
        "--will-payload", "bye", "--will-qos", "1",
    )  # fmt: skip
    victim.kill()  # no DISCONNECT: the broker publishes the will
    victim.communicate(timeout=TIMEOUT)
    assert finish(watcher)[:2] == (0, b"bye\n")


def test_persistent_sub_receives_messages_queued_while_it_was_away(broker: Broker) -> None:
    first = mqttref(
        "sub", "-h", broker.host, "-p", str(broker.port), "-i", "durable", "-c", "-q", "1",
        "-t", "d", "-W", "1",
    )  # fmt: skip
    assert first.returncode == 27
    pub(broker, "-t", "d", "-m", "while away", "-q", "1")
    second = mqttref(
        "sub", "-h", broker.host, "-p", str(broker.port), "-i", "durable", "-c", "-q", "1",
        "-t", "d", "-C", "1",
    )  # fmt: skip
    assert (second.returncode, second.stdout) == (0, b"while away\n")


def test_refused_connection_is_one_line_and_exit_4(closed_broker: Broker) -> None:
    host, port = closed_broker.host, str(closed_broker.port)
    result = mqttref("pub", "-h", host, "-p", port, "-t", "a", "-m", "x")
    assert result.returncode == 4
    assert result.stderr == (
        b"mqttref pub: error: connection refused by the broker: not authorized (return code 5)\n"
    )


@pytest.mark.parametrize("command", ["pub", "sub"])
def test_unreachable_broker_is_one_line_and_exit_3(command: str) -> None:
    port = str(free_port())
    extra = ["-m", "x"] if command == "pub" else []
    result = mqttref(command, "-h", "127.0.0.1", "-p", port, "-t", "a", *extra)
    assert result.returncode == 3
    assert (
        result.stderr
        == (
            f"mqttref {command}: error: cannot connect to 127.0.0.1:{port}: connection refused\n"
        ).encode()
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["pub", "-t", "a"], b"one of the arguments -m/--message"),
        (["pub", "-t", "a", "-m", "x", "-n"], b"not allowed with argument"),
        (["pub", "-t", "a", "-m", "x", "-q", "3"], b"QoS must be 0, 1 or 2"),
        (["pub", "-t", "a/+", "-m", "x"], b"invalid topic name"),
        (["pub", "-t", "a", "-f", "/nonexistent/file"], b"cannot read"),
        (["sub", "-t", "a/#/b"], b"invalid topic filter"),
        (["sub"], b"the following arguments are required: -t"),
        (["sub", "-t", "a", "-p", "70000"], b"port must be"),
        (["sub", "-t", "a", "-F", "%z"], b"unknown format specifier"),
        (["sub", "-t", "a", "-c"], b"-c needs a client id"),
        (["sub", "-t", "a", "-P", "secret"], b"-P needs -u"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], complaint: bytes) -> None:
    port = [] if "-p" in args else ["-h", "127.0.0.1", "-p", str(free_port())]
    result = mqttref(*args, *port)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert result.stderr.count(b"\n") == 1


def test_minus_h_is_the_host_and_help_is_double_dash(broker: Broker) -> None:
    result = mqttref("pub", "--help")
    assert result.returncode == 0
    assert b"-h HOST" in result.stdout
    pub(broker, "-t", "h", "-m", "x")  # -h given by the helper reached the broker
