"""Bounded logging: what a client sends cannot make the log grow faster than the attack.

Three tools, for three ways a hostile but legitimate client could flood the log
(issue 20):

- ``clip`` renders a client-supplied string (client id, topic, user name, a
  protocol name) for a log line: control characters and other non-printables
  escaped compactly, cut to a fixed number of characters with the full length
  noted. A 65,000-character id of U+0001 is a line of about 120 characters,
  not 260 KB (mosquitto cuts at about 1,000).
- ``LogLimiter`` lets through at most ``burst`` lines of one kind per
  ``interval`` seconds and counts the rest; the next line of that kind (or
  ``flush``) says how many were suppressed. Time comes from an injectable clock.
- ``install_loop_handler`` puts the limiter in front of the event loop's own
  error log, where running out of file descriptors on accept would otherwise
  log a line (and a traceback) every retry.

``BoundedFormatter`` is the last resort of ``mqttref broker``: whatever a
caller forgot to clip, no formatted record exceeds its caps.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs

CLIP_LIMIT: Final = 100
"""Characters of a client string a log line shows (escapes included)."""

_SHORT_ESCAPES: Final = {"\\": "\\\\", "'": "\\'", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(char: str, quoted: bool = True) -> str:
    """One character as a log line shows it: itself if printable, else the shortest
    of Python's escapes (``\\x01``, ``\\u2028``, ``\\U000e0001``); between quotes, a
    quote and a backslash are escaped too."""
    if quoted or char not in "'\\":
        short = _SHORT_ESCAPES.get(char)
        if short is not None:
            return short
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_byte(byte: int) -> str:
    char = chr(byte)
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    return char if 0x20 <= byte < 0x7F else f"\\x{byte:02x}"


def _shown(pieces: Iterable[str], limit: int) -> tuple[str, int]:
    """The escaped pieces that fit in ``limit`` characters (none cut in half), and
    how many of them."""
    shown: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > limit:
            break
        shown.append(piece)
        used += len(piece)
    return "".join(shown), len(shown)


def clip(value: str | bytes | None, limit: int = CLIP_LIMIT) -> str:
    """``value`` quoted for a log line, at most ``limit`` characters between the quotes.

    Non-printable characters (C0 and C1 controls, line separators, unassigned
    code points...) are escaped, so a line stays one line and shows what was
    sent; a quote or backslash is escaped too, so the end of the string is
    unambiguous. A cut string ends in ``…`` and notes its full length, in
    characters for ``str`` and bytes for ``bytes``: ``'abc…' (65000 chars)``.
    Only the first ``limit`` characters are looked at, so the cost is bounded too.
    ``None`` (a connection without client id yet) is ``None``.
    """
    if value is None:
        return "None"
    if isinstance(value, str):
        if len(value) <= limit and value.isprintable() and "'" not in value \
                and "\\" not in value:
            return f"'{value}'"  # the common case: one scan, no copy
        prefix, unit = "", "chars"
        body, count = _shown(map(_escape_char, value[:limit]), limit)
    else:
        prefix, unit = "b", "bytes"
        body, count = _shown(map(_escape_byte, value[:limit]), limit)
    if count == len(value):
        return f"{prefix}'{body}'"
    return f"{prefix}'{body}…' ({len(value)} {unit})"


def clip_text(text: object, limit: int = 2 * CLIP_LIMIT) -> str:
    """``str(text)`` for a log line when it may quote what a client sent (an
    exception naming a protocol name or a topic, a close reason): escaped and cut
    like ``clip``, but not quoted, as it is our sentence, not the client's string."""
    text = str(text)
    if len(text) <= limit and text.isprintable():
        return text
    body, count = _shown((_escape_char(char, quoted=False) for char in text[:limit]), limit)
    return body if count == len(text) else f"{body}… ({len(text)} chars)"


@attrs.define
class _Window:
    """One kind's current interval (or burst): its first and last line, lines let
    through, lines counted."""

    start: float
    last: float
    level: int
    per_burst: bool
    logged: int = 0
    suppressed: int = 0

    def over(self, now: float, interval: float) -> bool:
        """An interval ends ``interval`` s after it began; a burst, ``interval`` s
        after its last line."""
        return now - (self.last if self.per_burst else self.start) >= interval


@attrs.define
class LogLimiter:
    """At most ``burst`` lines of one kind per ``interval`` seconds; the rest are counted.

    A kind names a warning a client can trigger at will ("protocol violation",
    "connect timeout"...). When its interval is over, the next line of that kind
    starts a new one and carries the count of what was suppressed in the last:
    ``... (37 similar lines suppressed in the last 10 s)``. A burst that simply
    stops is reported by ``flush`` (the broker's tick, and its stop).
    """

    logger: logging.Logger
    burst: int = 5
    interval: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _windows: dict[str, _Window] = attrs.field(factory=dict, init=False)

    def log(self, level: int, kind: str, msg: str, *args: object, **kwargs: Any) -> bool:
        """Log ``msg % args`` at ``level`` unless ``kind`` is over its rate; True if logged."""
        return self._log(level, kind, msg, args, kwargs, per_burst=False)

    def once_per_burst(self, level: int, kind: str, msg: str, *args: object,
                       **kwargs: Any) -> bool:
        """Log the first line of a burst of ``kind`` only: the burst lasts until
        ``interval`` seconds pass without one, and its count is reported then."""
        return self._log(level, kind, msg, args, kwargs, per_burst=True)

    def warning(self, kind: str, msg: str, *args: object, **kwargs: Any) -> bool:
        return self.log(logging.WARNING, kind, msg, *args, **kwargs)

    def error(self, kind: str, msg: str, *args: object, **kwargs: Any) -> bool:
        return self.log(logging.ERROR, kind, msg, *args, **kwargs)

    def info(self, kind: str, msg: str, *args: object, **kwargs: Any) -> bool:
        return self.log(logging.INFO, kind, msg, *args, **kwargs)

    def suppressed(self, kind: str) -> int:
        """Lines of ``kind`` counted but not logged in its current interval."""
        window = self._windows.get(kind)
        return window.suppressed if window is not None else 0

    def flush(self, *, everything: bool = False) -> None:
        """Report the suppressed lines of every kind whose interval is over (or of
        every kind, ``everything``: the broker is stopping) and forget those kinds."""
        now = self.clock()
        for kind, window in list(self._windows.items()):
            if everything or window.over(now, self.interval):
                del self._windows[kind]
                if window.suppressed:
                    self.logger.log(window.level, "%s: %s", kind, self._summary(window, now))

    def admit(self, level: int, kind: str, *, per_burst: bool = False) -> str | None:
        """Count one line of ``kind``: None if it is to be suppressed, else the note
        to add to it ("" or the count of what the last interval suppressed)."""
        now = self.clock()
        window = self._windows.get(kind)
        note = ""
        if window is None or window.over(now, self.interval):
            if window is not None and window.suppressed:
                note = self._summary(window, now)
            window = self._windows[kind] = _Window(now, now, level, per_burst)
        window.last = now
        if window.logged >= (1 if per_burst else self.burst):
            window.suppressed += 1
            return None
        window.logged += 1
        return note

    def _log(self, level: int, kind: str, msg: str, args: tuple[object, ...],
             kwargs: dict[str, Any], *, per_burst: bool) -> bool:
        note = self.admit(level, kind, per_burst=per_burst)
        if note is None:
            return False
        if note:
            msg = f"{msg} ({note})"
        self.logger.log(level, msg, *args, **kwargs)
        return True

    def _summary(self, window: _Window, now: float) -> str:
        lines = "line" if window.suppressed == 1 else "lines"
        seconds = max(1, round(now - window.start))
        return f"{window.suppressed} similar {lines} suppressed in the last {seconds} s"


broker_log: Final = LogLimiter(logging.getLogger("mqttref.broker"))
"""The broker's one limiter: every module of ``impl/broker`` logs repeatable warnings here."""


OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Errors of ``accept()`` that mean the process or system ran out of descriptors or memory."""

OUT_OF_DESCRIPTORS: Final = "accept: out of file descriptors"
"""The limiter's kind for them."""

LoopHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def install_loop_handler(
    loop: asyncio.AbstractEventLoop, limiter: LogLimiter = broker_log
) -> LoopHandler:
    """Rate-limit the loop's own error log; returns the handler installed.

    asyncio calls the exception handler with "socket.accept() out of system
    resource" and an ``OSError`` (EMFILE, ENFILE...) each time it retries accept
    while the process has no descriptor left, about once a second for as long as
    the flood lasts: that is logged once per burst (one line, without traceback,
    and the count when the next burst begins or the limiter is flushed).
    Other loop errors go to the handler that was there before (asyncio's default),
    at most ``limiter.burst`` per kind per interval.
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES:
            limiter.once_per_burst(
                logging.ERROR, OUT_OF_DESCRIPTORS,
                "out of file descriptors or memory accepting a connection (%s: %s); "
                "new connections wait until some close",
                str(context.get("message", ""))[:60],
                errno.errorcode.get(exc.errno or 0, exc.errno),
            )
            return
        kind = f"loop: {type(exc).__name__}" if exc is not None else \
            f"loop: {str(context.get('message', ''))[:40]}"
        note = limiter.admit(logging.ERROR, kind)
        if note is None:
            return
        if note:
            context = {**context, "message": f"{context.get('message', '')} ({note})"}
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return handler


class BoundedFormatter(logging.Formatter):
    """A formatter no record can make longer than its caps, whatever a caller forgot
    to ``clip``: the message line is cut at ``max_line`` characters and a traceback
    at ``max_traceback``, each cut noted with the length it had."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, *,
                 max_line: int = 2000, max_traceback: int = 8000) -> None:
        super().__init__(fmt, datefmt)
        self.max_line = max_line
        self.max_traceback = max_traceback

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _cut(super().formatMessage(record), self.max_line)

    def formatException(self, ei: Any) -> str:
        return _cut(super().formatException(ei), self.max_traceback)

    def formatStack(self, stack_info: str) -> str:
        return _cut(super().formatStack(stack_info), self.max_traceback)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"… [cut: {len(text)} chars]"
    return text[: max(0, limit - len(note))] + note
