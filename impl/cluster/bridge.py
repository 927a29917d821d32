"""A NATS connection on a thread of its own, for the broker's synchronous ports.

Why a thread. The broker's session table and store are synchronous by design
(``SessionPort.open_session`` returns the session; ``Store.commit`` returns once
what it recorded is durable, before the acknowledgements it covers are written).
In a cluster both wait for NATS: a takeover must own the client id before
CONNACK, and a persistent session's queue must be in JetStream before PUBACK.
So the node's NATS calls for sessions run on this thread's event loop, and the
broker's loop waits for them (``call``), for a bounded time.

While it waits, the broker's loop still does one kind of work: what other nodes
ask of it through NATS (release a client id). Those requests are posted to an
``Inbox`` that the waiting call drains, so two nodes that take a client id from
each other at the same moment do not wait for each other until a timeout; nodes
on one event loop (a test) share the inbox of their thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Inbox:
    """Work for the broker's loop thread, posted from the NATS thread."""

    _by_thread: dict[int, Inbox] = {}
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    @classmethod
    def of_thread(cls, thread_id: int) -> Inbox:
        """The inbox of the broker loop running on ``thread_id`` (one per thread)."""
        with cls._lock:
            inbox = cls._by_thread.get(thread_id)
            if inbox is None:
                inbox = cls._by_thread[thread_id] = cls()
            return inbox

    def post(self, work: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        """Run ``work`` on ``loop``'s thread soon: at its next turn, or inside a ``wait``."""
        self._work.put(work)
        loop.call_soon_threadsafe(self.drain)

    async def run(self, work: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        """From the NATS thread: run ``work`` on ``loop``'s thread and wait for it."""
        here = asyncio.get_running_loop()
        done: asyncio.Future[None] = here.create_future()

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # handed to the waiting side, which re-raises
                here.call_soon_threadsafe(done.set_exception, exc)
            else:
                here.call_soon_threadsafe(done.set_result, None)

        self.post(run, loop)
        await done

    def drain(self) -> None:
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                return
            work()

    def wait(self, future: concurrent.futures.Future[T], timeout: float) -> T:
        """The result of ``future``, running posted work meanwhile; TimeoutError after
        ``timeout`` seconds."""
        future.add_done_callback(lambda _f: self._work.put(_nothing))
        deadline = time.monotonic() + timeout
        while not future.done():
            left = deadline - time.monotonic()
            if left <= 0:
                future.cancel()
                raise TimeoutError(f"no answer from NATS within {timeout:.1f} s")
            try:  # a timeout on the queue, not a timer thread per call (CPU per commit)
                work = self._work.get(timeout=left)
            except queue.Empty:
                continue
            work()
        return future.result()


async def _cancel_others() -> None:
    """Cancel every other task of the running loop and wait for them to end: a loop
    stopped with pending tasks leaves "Task was destroyed but it is pending" warnings."""
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _nothing() -> None:
    """Wakes a ``wait``."""


class NatsThread:
    """An event loop on a daemon thread, where the node's session I/O with NATS runs."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the NATS thread; its result as a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the NATS thread and wait for it on the calling thread (the
        broker's loop), running what other nodes asked of this one meanwhile."""
        inbox = Inbox.of_thread(threading.get_ident())
        return inbox.wait(self.submit(coro), timeout)

    async def call_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the NATS thread without blocking the calling loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        """Stop the loop and wait for the thread (the NATS connection is closed first)."""
        if self._started:
            if self._thread.is_alive():
                # Tasks still pending (a reaper, nats-py's own) end before the loop.
                with contextlib.suppress(Exception):  # stopping anyway
                    self.submit(_cancel_others()).result(timeout=5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self._started = False
        if not self.loop.is_running():
            self.loop.close()
