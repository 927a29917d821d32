"""Pure pieces of the client: reconnection delays and ``sub -F`` formats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.client import Backoff, InvalidArgument, Message, QoS
from mqttref.impl.client.output_format import OutputFormat


def test_backoff_doubles_from_initial_up_to_maximum_without_jitter() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.0)
    assert [backoff.delay(n, lambda: 0.99) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@given(
    attempt=st.integers(0, 10_000),
    draw=st.floats(0, 1, exclude_max=True),
    jitter=st.floats(0, 1),
)
def test_backoff_delay_stays_between_the_jittered_floor_and_the_ceiling(
    attempt: int, draw: float, jitter: float
) -> None:
    backoff = Backoff(initial=0.1, maximum=30.0, jitter=jitter)
    ceiling = min(30.0, 0.1 * 2.0 ** min(attempt, 64))
    delay = backoff.delay(attempt, lambda: draw)
    assert ceiling * (1 - jitter) - 1e-9 <= delay <= ceiling


def test_backoff_jitter_spreads_clients_that_lost_the_broker_together() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.5)
    delays = {backoff.delay(3, lambda d=d: d / 10) for d in range(10)}  # type: ignore[misc]
    assert len(delays) == 10


@pytest.mark.parametrize(
    "arguments",
    [{"initial": -1.0}, {"initial": 5.0, "maximum": 1.0}, {"factor": 0.5}, {"jitter": 2.0},
     {"max_attempts": 0}],
)  # fmt: skip
def test_backoff_refuses_impossible_settings(arguments: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        Backoff(**arguments)  # type: ignore[arg-type]


MESSAGE = Message(topic="a/b", payload=b"\x00hi", qos=QoS.AT_LEAST_ONCE, retain=True, packet_id=42)


@pytest.mark.parametrize(
    ("spec", "output"),
    [
        ("%t", b"a/b"),
        ("%p", b"\x00hi"),
        ("%q %r %m %l", b"1 1 42 3"),
        ("%x|%X", b"006869|006869"),
        ("100%%", b"100%"),
        (r"%t\n%p\t.\\", b"a/b\n\x00hi\t.\\"),
        ("plain ü", "plain ü".encode()),
    ],
)
def test_format_specifiers_render_like_mosquitto_sub(spec: str, output: bytes) -> None:
    assert OutputFormat(spec).render(MESSAGE) == output


def test_format_message_id_of_qos0_is_zero() -> None:
    assert OutputFormat("%m").render(Message("t", b"")) == b"0"


def test_format_unix_time_is_a_number() -> None:
    rendered = OutputFormat("%U").render(MESSAGE)
    assert float(rendered) > 1_600_000_000


@pytest.mark.parametrize("spec", ["%z", "abc%", "\\q", "x\\"])
def test_unknown_format_specifiers_are_refused(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        OutputFormat(spec)
