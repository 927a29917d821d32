"""The log grows slower than the attack (issue 20, point 3).

A client string in a log line is escaped and cut to ``CLIP_LIMIT`` characters
with its length noted; a warning a client can repeat at will is let through at
most ``burst`` times per interval, and the rest are counted in the log; running
out of file descriptors is logged once per burst. ``mqttref broker``'s
formatter caps whatever a log call forgot to clip.
"""

from __future__ import annotations

import ast
import asyncio
import errno
import logging
import re
import socket
import struct
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.codec.packets import ConnAck, Connect, ProtocolLevel
from mqttref.impl.logtext import (
    CLIP_LIMIT,
    OUT_OF_DESCRIPTORS,
    BoundedFormatter,
    LogLimiter,
    clip,
    clip_text,
    install_loop_handler,
)
from tests.helpers.broker_thread import BrokerThread
from tests.helpers.raw_client import RawClient

StartBroker = Callable[..., BrokerThread]

LINE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
"""The format of ``mqttref broker`` (without its last-resort cap: the lines themselves
must be short)."""

NOTE_BOUND = len("b'…' (18446744073709551616 bytes)")
"""What ``clip`` adds to ``limit`` characters at most: prefix, quotes, ellipsis, length."""


# Helpers: a logger whose records we keep, a clock that moves only when told -----------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Kept(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@pytest.fixture
def kept() -> Iterator[tuple[logging.Logger, Kept]]:
    logger = logging.getLogger("mqttref.test_log_bounds")
    handler = Kept()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)


@pytest.fixture
def broker_records() -> Iterator[Kept]:
    """Every record of every logger, at every level, while the test runs."""
    root = logging.getLogger()
    handler = Kept()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


# clip ---------------------------------------------------------------------------------

any_value = st.text() | st.binary() | st.text(min_size=300, max_size=3000) \
    | st.binary(min_size=300, max_size=3000)


@given(value=any_value, limit=st.integers(0, 300))
def test_clip_output_is_bounded_by_the_limit_plus_a_constant_whatever_the_input(
    value: str | bytes, limit: int
) -> None:
    assert len(clip(value, limit)) <= limit + NOTE_BOUND


@given(value=any_value, limit=st.integers(0, 300))
def test_clip_output_never_holds_a_control_character_or_a_line_break(
    value: str | bytes, limit: int
) -> None:
    shown = clip(value, limit)
    assert shown.isprintable()  # no C0, no C1, no U+2028, no unassigned code point
    assert not re.search("[\x00-\x1f\x7f-\x9f]", shown)


@given(value=st.text(st.characters(blacklist_characters="'\\",
                                   blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl",
                                                         "Zp")),
                     max_size=CLIP_LIMIT))
def test_a_short_printable_string_is_shown_plainly_quoted(value: str) -> None:
    if value.isprintable():
        assert clip(value) == f"'{value}'" == repr(value)


@given(value=st.text(max_size=50) | st.binary(max_size=50))
def test_an_uncut_clip_reads_back_as_the_value_it_shows(value: str | bytes) -> None:
    """The escapes are Python's, so nothing is ambiguous: a quote in a client id
    cannot end the quoted string early."""
    assert ast.literal_eval(clip(value, limit=10 * len(value) + 10)) == value


@given(value=st.text(min_size=CLIP_LIMIT + 1, max_size=1000))
def test_a_cut_string_ends_with_an_ellipsis_and_its_full_length(value: str) -> None:
    assert clip(value).endswith(f"…' ({len(value)} chars)")



@given(text=st.text() | st.text(min_size=300, max_size=3000))
def test_clip_text_of_an_error_is_bounded_one_line_and_plain_when_short(text: str) -> None:
    shown = clip_text(text, 200)
    assert len(shown) <= 200 + NOTE_BOUND
    assert shown.isprintable()
    if len(text) <= 200 and text.isprintable():
        assert shown == text

def test_control_characters_are_escaped_compactly_and_bytes_counted_in_bytes() -> None:
    assert clip("a\x01b\x9f\u2028") == r"'a\x01b\x9f\u2028'"
    assert clip("\x01" * 65_000) == "'" + r"\x01" * 25 + "…' (65000 chars)"
    assert clip(b"\xf0\x00" * 100, 16) == r"b'\xf0\x00\xf0\x00…' (200 bytes)"
    assert clip("x" * 100) == "'" + "x" * 100 + "'"


# LogLimiter --------------------------------------------------------------------------


def test_the_limiter_lets_through_burst_lines_per_interval_then_counts_the_rest(
    kept: tuple[logging.Logger, Kept],
) -> None:
    logger, handler = kept
    clock = FakeClock()
    limiter = LogLimiter(logger, burst=5, interval=10.0, clock=clock)
    logged = [limiter.warning("violation", "closing %s", n) for n in range(42)]
    assert logged == [True] * 5 + [False] * 37
    assert handler.messages == [f"closing {n}" for n in range(5)]
    assert limiter.suppressed("violation") == 37
    clock.now += 10.0
    assert limiter.warning("violation", "closing %s", 42)
    assert handler.messages[-1] == "closing 42 (37 similar lines suppressed in the last 10 s)"
    assert handler.records[-1].levelno == logging.WARNING


def test_the_limiter_counts_each_kind_apart(kept: tuple[logging.Logger, Kept]) -> None:
    logger, handler = kept
    limiter = LogLimiter(logger, burst=2, interval=10.0, clock=FakeClock())
    for _ in range(3):
        limiter.warning("connect timeout", "timeout")
        limiter.error("keep alive", "keep alive")
        limiter.info("refused filter", "filter")
    assert handler.messages == ["timeout", "keep alive", "filter"] * 2
    assert [limiter.suppressed(kind) for kind in ("connect timeout", "keep alive",
                                                  "refused filter")] == [1, 1, 1]


def test_a_burst_that_stops_is_counted_by_flush_once_its_interval_is_over(
    kept: tuple[logging.Logger, Kept],
) -> None:
    logger, handler = kept
    clock = FakeClock()
    limiter = LogLimiter(logger, burst=1, interval=10.0, clock=clock)
    for _ in range(4):
        limiter.warning("violation", "closing")
    limiter.flush()
    assert handler.messages == ["closing"]  # the interval is not over: nothing yet
    clock.now += 12.0
    limiter.flush()
    assert handler.messages == ["closing", "violation: 3 similar lines suppressed in the "
                                           "last 12 s"]
    limiter.flush()
    assert len(handler.messages) == 2  # counted once
    assert limiter.warning("violation", "closing")  # a fresh interval


def test_flush_everything_counts_every_kind_at_once(kept: tuple[logging.Logger, Kept]) -> None:
    logger, handler = kept
    limiter = LogLimiter(logger, burst=1, interval=10.0, clock=FakeClock())
    for kind in ("a", "a", "b", "b", "b", "c"):
        limiter.error(kind, "line")
    limiter.flush(everything=True)
    assert handler.messages[3:] == ["a: 1 similar line suppressed in the last 1 s",
                                    "b: 2 similar lines suppressed in the last 1 s"]


def test_once_per_burst_logs_the_first_line_until_the_errors_stop_for_an_interval(
    kept: tuple[logging.Logger, Kept],
) -> None:
    logger, handler = kept
    clock = FakeClock()
    limiter = LogLimiter(logger, burst=5, interval=10.0, clock=clock)
    for _ in range(30):  # one a second for 30 s: one burst
        limiter.once_per_burst(logging.ERROR, "fds", "out of descriptors")
        clock.now += 1.0
    assert handler.messages == ["out of descriptors"]
    clock.now += 10.0
    limiter.once_per_burst(logging.ERROR, "fds", "out of descriptors")
    assert handler.messages == [
        "out of descriptors", "out of descriptors (29 similar lines suppressed in the last 40 s)"
    ]


# The event loop's own errors ------------------------------------------------------------


def test_out_of_descriptors_on_accept_is_logged_once_per_burst_without_traceback(
    kept: tuple[logging.Logger, Kept], caplog: pytest.LogCaptureFixture,
) -> None:
    logger, handler = kept
    clock = FakeClock()
    limiter = LogLimiter(logger, burst=5, interval=10.0, clock=clock)
    loop = asyncio.new_event_loop()
    try:
        install_loop_handler(loop, limiter)
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            for _ in range(100):  # what asyncio's accept does, once a second, while EMFILE
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                })
                clock.now += 1.0
        limiter.flush(everything=True)
    finally:
        loop.close()
    assert not [r for r in caplog.records if r.name == "asyncio"]  # nor asyncio's own log
    assert len(handler.records) == 2
    assert "EMFILE" in handler.messages[0]
    assert handler.records[0].exc_info is None
    assert handler.messages[1] == f"{OUT_OF_DESCRIPTORS}: 99 similar lines suppressed in the " \
                                  "last 100 s"


def test_other_loop_errors_reach_the_default_handler_rate_limited_by_kind(
    kept: tuple[logging.Logger, Kept], caplog: pytest.LogCaptureFixture,
) -> None:
    logger, _ = kept
    limiter = LogLimiter(logger, burst=3, interval=10.0, clock=FakeClock())
    loop = asyncio.new_event_loop()
    try:
        install_loop_handler(loop, limiter)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for _ in range(20):
                loop.call_exception_handler({"message": "boom", "exception": ValueError("x")})
                loop.call_exception_handler({"message": "bang", "exception": KeyError("y")})
    finally:
        loop.close()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == ["boom", "bang"] * 3


# The last resort of mqttref broker ------------------------------------------------------


def test_the_command_line_formatter_cuts_a_record_over_its_cap_and_says_so() -> None:
    formatter = BoundedFormatter(LINE_FORMAT, max_line=2000, max_traceback=8000)
    record = logging.LogRecord("mqttref.broker", logging.WARNING, __file__, 1,
                               "client %r", ("\x01" * 65_000,), None)
    line = formatter.format(record)
    assert len(line) <= 2000
    assert re.search(r"… \[cut: \d+ chars\]$", line)
    short = logging.LogRecord("mqttref.broker", logging.INFO, __file__, 1, "hello", (), None)
    assert formatter.format(short).endswith("INFO hello")


def test_the_command_line_formatter_cuts_a_huge_traceback() -> None:
    formatter = BoundedFormatter(LINE_FORMAT, max_line=2000, max_traceback=8000)
    try:
        raise ValueError("x" * 100_000)
    except ValueError:
        record = logging.LogRecord("mqttref.broker", logging.ERROR, __file__, 1, "crash", (),
                                   __import__("sys").exc_info())
    assert len(formatter.format(record)) <= 2000 + 1 + 8000


# Against a real broker, over sockets -------------------------------------------------


def formatted(record: logging.LogRecord) -> bytes:
    return logging.Formatter(LINE_FORMAT).format(record).encode("utf-8", "backslashreplace")


@pytest.mark.parametrize("max_client_id_length", [None, 65_535],
                         ids=["default limit (refused)", "65535 (accepted)"])
def test_a_65000_character_client_id_makes_no_log_line_over_2_kb(
    start_broker: StartBroker, broker_records: Kept, max_client_id_length: int | None,
) -> None:
    """Whether the id is refused (0x02) or accepted, every line the connection
    makes, at every level, is under 2 KB, and shows the id clipped if at all."""
    overrides = {} if max_client_id_length is None else \
        {"max_client_id_length": max_client_id_length}
    broker = start_broker(**overrides)
    client_id = "\x01" * 65_000
    with RawClient(broker.port) as client:
        client.send(Connect(ProtocolLevel.MQTT_3_1_1, client_id, True, 60))
        answer = client.receive()
        assert isinstance(answer, ConnAck)
        if answer.return_code == 0:
            client.send_bytes(b"\xf0\x00")  # and a protocol violation, which logs its client
        assert client.is_closed_by_broker()
    broker.stop()
    lines = [formatted(record) for record in broker_records.records]
    assert lines
    assert max(map(len, lines)) < 2048
    for line in lines:
        if b"\\x01" in line:
            assert b"(65000 chars)" in line


def bad_protocol_name_connect(name_length: int) -> bytes:
    """A CONNECT whose protocol name is ``name_length`` bytes of junk [MQTT-3.1.2-1]."""
    body = struct.pack("!H", name_length) + b"\x01" * name_length \
        + b"\x04\x02\x00\x3c" + struct.pack("!H", 1) + b"c"
    assert len(body) < 128 * 128
    return bytes([0x10, 0x80 | (len(body) & 0x7F), len(body) >> 7]) + body


def test_a_thousand_garbage_connections_log_less_than_a_tenth_of_their_bytes(
    start_broker: StartBroker, broker_records: Kept,
) -> None:
    """The issue's repro: each connection sends a CONNECT of about 1 KB with a bad
    protocol name and is closed. The log, at the broker's default level, stays under
    a tenth of the bytes sent, and counts the lines it suppressed."""
    broker = start_broker()
    garbage = bad_protocol_name_connect(1000)
    sent = 0
    for _ in range(1000):
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
            sock.sendall(garbage)
            sent += len(garbage)
            assert sock.recv(16) == b""  # the broker closes without an answer
    broker.stop()
    records = [record for record in broker_records.records if record.levelno >= logging.INFO]
    logged = sum(len(formatted(record)) + 1 for record in records)
    assert logged < sent / 10, f"{logged} bytes of log for {sent} bytes sent"
    messages = [record.getMessage() for record in records]
    shown = sum("protocol name" in message for message in messages)
    suppressed = sum(int(count) for message in messages
                     for count in re.findall(r"(\d+) similar lines? suppressed", message))
    assert suppressed > 0
    assert shown + suppressed == 1000


def test_a_refused_filter_is_logged_clipped_and_rate_limited(
    start_broker: StartBroker, broker_records: Kept,
) -> None:
    """A SUBSCRIBE refused with 0x80 (here: too many levels) is an INFO line per
    filter: at most a few, each short, then a count."""
    broker = start_broker(max_topic_levels=3)
    with RawClient(broker.port) as client:
        client.connect("refused")
        for packet_id in range(1, 51):
            assert client.subscribe("/" * 10 + "\x01" * 5000, packet_id=packet_id) \
                .return_codes == (0x80,)
    broker.stop()
    lines = [record.getMessage() for record in broker_records.records
             if "refused the filter" in record.getMessage()]
    assert 1 <= len(lines) < 10
    assert all(len(line) < 400 and "(5010 chars)" in line for line in lines)
    summaries = [record.getMessage() for record in broker_records.records
                 if "similar lines suppressed" in record.getMessage()]
    assert sum(int(re.findall(r"(\d+) similar", s)[0]) for s in summaries) + len(lines) == 50

