"""The asyncio shell around ``ClientProtocol``: sockets, timers, reconnection, queues.

Theory of operation
-------------------
Everything MQTT decides lives in the sans-IO core; this module only moves
bytes and time. Per network connection two tasks run: a reader that feeds
the core and a timer that calls ``handle_timer`` at the instant the core
asks for. A supervisor task waits for a connection to end, reports
``Disconnected``, then either gives up (every waiter gets the error) or, when
a ``Backoff`` was given, reconnects after a jittered delay and lets the core
resume or rebuild the session.

Back-pressure: received messages go into a bounded queue (``max_queued_messages``).
When it is full the reader stops reading the socket, so TCP flow control
pushes back on the broker instead of memory growing; QoS 1/2 messages are
acknowledged only once they are in the queue. While reading is paused the
PINGRESP timeout is suspended, since a PINGRESP cannot be read.

Publishing while disconnected follows ``when_disconnected``: ``RAISE``
(``NotConnected``), ``WAIT`` (until the connection is back, subject to the
caller's timeout) or ``QUEUE`` (hand the message to the session, bounded by
``max_queued_publishes``, and return at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

from mqttref.impl.client import validation
from mqttref.impl.client.backoff import Backoff
from mqttref.impl.client.errors import (
    BrokerUnreachable,
    ConnectionClosed,
    ConnectionRefused,
    InvalidArgument,
    MQTTTimeout,
    NotConnected,
    QueueFull,
    SubscriptionRefused,
)
from mqttref.impl.client.events import (
    CloseConnection,
    Connected,
    ConnectionEvent,
    ConnectRefused,
    Disconnected,
    Message,
    MessageReceived,
    PublishCompleted,
    PublishFailed,
    Reconnecting,
    Resubscribed,
    SubscribeCompleted,
    UnsubscribeCompleted,
)
from mqttref.impl.client.protocol import ClientOptions, ClientProtocol, ConnectionState
from mqttref.impl.codec.errors import ClientError
from mqttref.impl.codec.packets import (
    SUBACK_FAILURE,
    ConnectReturnCode,
    Packet,
    ProtocolLevel,
    QoS,
    Will,
)

READ_SIZE = 65_536

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WhenDisconnected(Enum):
    """What ``publish`` does while there is no connection."""

    RAISE = "raise"
    WAIT = "wait"
    QUEUE = "queue"


class _EndOfMessages:
    """Put in the messages queue when the client is finished."""


_END = _EndOfMessages()


class Client:
    """An MQTT 3.1/3.1.1 client for asyncio, used as ``async with Client(...) as client``."""

    def __init__(
        self,
        hostname: str = "localhost",
        port: int = 1883,
        *,
        client_id: str = "",
        clean_session: bool = True,
        keepalive: int = 60,
        will: Will | None = None,
        username: str | None = None,
        password: str | bytes | None = None,
        protocol: ProtocolLevel = ProtocolLevel.MQTT_3_1_1,
        timeout: float = 10.0,
        max_inflight: int = 20,
        max_queued_messages: int = 1000,
        max_queued_publishes: int = 1000,
        max_packet_size: int = validation.MAX_REMAINING_LENGTH,
        when_disconnected: WhenDisconnected = WhenDisconnected.RAISE,
        reconnect: Backoff | None = None,
        resubscribe: bool = True,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        on_packet: Callable[[str, Packet], None] | None = None,
    ) -> None:
        """Arguments beyond CONNECT's fields:

        ``timeout``: seconds for TCP connect, CONNACK and PINGRESP. ``max_inflight``:
        outgoing QoS 1/2 messages unacknowledged at once. ``max_queued_messages``:
        bound of ``messages`` (reading stops when full). ``max_queued_publishes``: bound
        of ``WhenDisconnected.QUEUE``. ``reconnect``: a ``Backoff`` turns reconnection
        on. ``resubscribe``: subscribe again when the broker lost the session.
        ``on_event``: told ``Connected``, ``Disconnected``, ``Reconnecting``,
        ``Resubscribed``. ``on_packet(direction, packet)``: a trace of every packet
        "sent" or "received" (debugging, and the model check of the tests).
        """
        if isinstance(password, str):
            password = password.encode("utf-8")
        if max_queued_messages < 1 or max_queued_publishes < 0:
            raise InvalidArgument("queue bounds must be positive")
        self.hostname = hostname
        self.port = port
        self.timeout = timeout
        self._core = ClientProtocol(
            ClientOptions(
                client_id=client_id,
                clean_session=clean_session,
                keep_alive=keepalive,
                will=will,
                username=username,
                password=password,
                protocol_level=protocol,
                max_inflight=max_inflight,
                connect_timeout=timeout,
                ping_timeout=timeout,
                max_packet_size=max_packet_size,
                resubscribe=resubscribe,
            ),
            trace=on_packet,
        )
        self._max_queued_messages = max_queued_messages
        self._max_queued_publishes = max_queued_publishes
        self._when_disconnected = when_disconnected
        self._backoff = reconnect
        self._on_event = on_event
        self._random = random.Random()
        self._messages: asyncio.Queue[Message | _EndOfMessages] = asyncio.Queue()
        self._queue_has_room = asyncio.Event()
        self._queue_has_room.set()
        self._connected = asyncio.Event()
        self._publish_waiters: dict[int, asyncio.Future[None]] = {}
        self._request_waiters: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        self._connack: asyncio.Future[bool] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._drain_lock = asyncio.Lock()
        self._timer_wakeup = asyncio.Event()
        self._close_error: ClientError | None = None
        self._connection_task: asyncio.Task[ClientError] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._final_error: ClientError | None = None
        self._closed_by_user = False

    # -- life cycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    @property
    def is_connected(self) -> bool:
        return self._core.state is ConnectionState.CONNECTED

    @property
    def session_present(self) -> bool:
        """The Session Present flag of the last CONNACK [MQTT-3.2.2-2]."""
        return self._core.session_present

    @property
    def queued_messages(self) -> int:
        """Received messages waiting in ``messages``; never above ``max_queued_messages``."""
        return self._messages.qsize()

    @property
    def subscriptions(self) -> dict[str, QoS]:
        """Topic filters the broker granted, with their QoS."""
        return self._core.subscriptions

    async def connect(self) -> None:
        """Open the connection; raises ``ConnectionRefused``, ``BrokerUnreachable``, ..."""
        if self._supervisor is not None:
            raise ClientError("the client is already connected")
        self._final_error = None
        self._closed_by_user = False
        self._messages = asyncio.Queue()
        self._queue_has_room.set()
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise())

    async def disconnect(self) -> None:
        """Send DISCONNECT (the will is discarded [MQTT-3.14.4-3]) and close."""
        if self._closed_by_user:
            return
        self._closed_by_user = True
        writer = self._writer
        if writer is not None and self.is_connected:
            self._core.disconnect(self._now())
            self._flush()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self._drain(), self.timeout)
        self._close_transport()
        for task in (self._supervisor, self._connection_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClientError):
                    await task
        self._supervisor = None
        self._connection_task = None
        if self._core.state is not ConnectionState.CLOSED:
            self._core.connection_lost(self._now())
        self._finish(ConnectionClosed("the client disconnected", by_peer=False))

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once connected (after a reconnection, say); raise if the client gave up."""
        await self._wait_for_connection(timeout)

    # -- operations ---------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Publish and return once the QoS flow is complete (sent, PUBACK or PUBCOMP).

        Arguments are checked before anything is sent (``InvalidArgument``).
        With ``WhenDisconnected.QUEUE`` and no connection, returns once queued.
        """
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        level = validation.check_qos(qos)
        validation.check_topic_name(topic)
        validation.check_payload(topic, data, level, self._core.options.max_packet_size)
        self._raise_if_finished()
        if not self.is_connected:
            if self._when_disconnected is WhenDisconnected.RAISE:
                raise NotConnected(f"not connected to {self.hostname}:{self.port}")
            if self._when_disconnected is WhenDisconnected.QUEUE:
                if self._core.queued_count >= self._max_queued_publishes:
                    raise QueueFull(f"{self._max_queued_publishes} messages already queued")
                self._core.publish(topic, data, level, retain, self._now())
                return
            await self._wait_for_connection(timeout)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handle = self._core.publish(topic, data, level, retain, self._now())
        self._publish_waiters[handle] = future
        self._dispatch()
        self._flush()
        with contextlib.suppress(OSError):
            await self._drain()  # the socket's buffer pushes back on a fast publisher
        await self._await(future, timeout, f"publish to {topic!r}")

    async def subscribe(
        self, topic_filter: str, qos: int = 0, *, timeout: float | None = None
    ) -> QoS:
        """Subscribe to one filter; returns the granted QoS or raises ``SubscriptionRefused``."""
        (code,) = await self.subscribe_many([(topic_filter, qos)], timeout=timeout)
        if code == SUBACK_FAILURE:
            raise SubscriptionRefused(topic_filter)
        return QoS(code)

    async def subscribe_many(
        self, subscriptions: Sequence[tuple[str, int]], *, timeout: float | None = None
    ) -> tuple[int, ...]:
        """One SUBSCRIBE for several filters; returns the SUBACK codes (0x80: refused)."""
        self._check_can_request()
        packet_id = self._core.subscribe(subscriptions, self._now())
        return await self._await_request(packet_id, timeout, "SUBACK")

    async def unsubscribe(self, *topic_filters: str, timeout: float | None = None) -> None:
        """Unsubscribe from the filters; returns on UNSUBACK."""
        self._check_can_request()
        packet_id = self._core.unsubscribe(topic_filters, self._now())
        await self._await_request(packet_id, timeout, "UNSUBACK")

    @property
    def messages(self) -> AsyncIterator[Message]:
        """Received messages in arrival order.

        Ends when the client disconnects; raises the connection's error when it
        was lost for good. Stops reading the socket while the queue is full.
        """
        return self._iterate_messages()

    async def _iterate_messages(self) -> AsyncIterator[Message]:
        while True:
            item = await self._messages.get()
            if self._messages.qsize() < self._max_queued_messages:
                self._queue_has_room.set()
            if isinstance(item, _EndOfMessages):
                self._messages.put_nowait(item)  # other iterators end too
                if self._final_error is not None and not self._closed_by_user:
                    raise self._final_error
                return
            yield item

    # -- connections ------------------------------------------------------------

    async def _open(self) -> None:
        """One connection attempt: TCP, CONNECT, CONNACK."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.hostname, self.port), self.timeout
            )
        except TimeoutError as exc:
            raise BrokerUnreachable(
                f"cannot connect to {self.hostname}:{self.port}: timed out"
            ) from exc
        except ConnectionRefusedError as exc:
            raise BrokerUnreachable(
                f"cannot connect to {self.hostname}:{self.port}: connection refused"
            ) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise BrokerUnreachable(
                f"cannot connect to {self.hostname}:{self.port}: {reason}"
            ) from exc
        self._writer = writer
        self._close_error = None
        connack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._connack = connack
        self._core.connection_made(self._now())
        self._dispatch()
        self._flush()
        task = asyncio.create_task(self._serve(reader, writer))
        self._connection_task = task
        waiters: set[asyncio.Future[Any]] = {connack, task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if connack.done():
            connack.result()  # raises ConnectionRefused, MQTTTimeout, ...
            return
        raise task.result()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> ClientError:
        """Run one connection until it ends; return why it ended."""
        timer = asyncio.create_task(self._run_timer())
        try:
            error = await self._read(reader)
        except Exception as exc:
            # A bug here must fail the waiters, not leave them hanging: log it loudly.
            logger.exception("client connection failed")
            error = ClientError(f"internal error in the client: {exc!r}")
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            self._close_transport()
            self._core.connection_lost(self._now())
            self._connected.clear()
            self._dispatch()
        error = self._close_error or error
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        return error

    async def _read(self, reader: asyncio.StreamReader) -> ClientError:
        while True:
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:
                return ConnectionClosed(f"connection lost: {exc.strerror or exc}")
            if not data:
                return ConnectionClosed("the broker closed the connection")
            self._core.receive_data(data, self._now())
            for message in self._dispatch():
                await self._deliver(message)
                self._core.acknowledge(message, self._now())
            self._flush()
            if self._close_error is not None:
                return self._close_error
            with contextlib.suppress(OSError):
                await self._drain()

    async def _deliver(self, message: Message) -> None:
        """Queue a message for the application, waiting (not reading) while the queue is full."""
        if self._messages.qsize() >= self._max_queued_messages:
            self._core.set_reading_paused(True, self._now())
            self._timer_wakeup.set()
            while self._messages.qsize() >= self._max_queued_messages:
                self._queue_has_room.clear()
                await self._queue_has_room.wait()
            self._core.set_reading_paused(False, self._now())
            self._timer_wakeup.set()
        self._messages.put_nowait(message)

    async def _run_timer(self) -> None:
        while True:
            self._timer_wakeup.clear()
            deadline = self._core.get_timer()
            if deadline is None:
                await self._timer_wakeup.wait()
            elif deadline > self._now():
                # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that
                # races with the event being set, and this task would never end.
                alarm = asyncio.get_running_loop().call_at(deadline, self._timer_wakeup.set)
                try:
                    await self._timer_wakeup.wait()
                finally:
                    alarm.cancel()
            self._core.handle_timer(self._now())
            self._dispatch()
            self._flush()

    async def _supervise(self) -> None:
        """Watch the connection; reconnect with back-off or give up."""
        while True:
            assert self._connection_task is not None
            error = await self._connection_task
            if self._closed_by_user:
                return
            self._emit(Disconnected(error))
            backoff = self._backoff
            if backoff is None:
                self._finish(error)
                return
            if not await self._reconnect(backoff, error):
                return

    async def _reconnect(self, backoff: Backoff, error: ClientError) -> bool:
        attempt = 0
        while backoff.max_attempts is None or attempt < backoff.max_attempts:
            delay = backoff.delay(attempt, self._random.random)
            attempt += 1
            self._emit(Reconnecting(attempt, delay))
            await asyncio.sleep(delay)
            try:
                await self._open()
            except ConnectionRefused as exc:
                error = exc
                if exc.return_code != ConnectReturnCode.SERVER_UNAVAILABLE:
                    break  # refused for who we are: trying again cannot help
            except ClientError as exc:
                error = exc
            else:
                return True
        self._finish(error)
        return False

    # -- plumbing ---------------------------------------------------------------

    def _dispatch(self) -> list[Message]:
        """Act on the core's events; return the received messages for the reader."""
        messages: list[Message] = []
        for event in self._core.events():
            match event:
                case MessageReceived(message=message):
                    messages.append(message)
                case PublishCompleted(handle=handle):
                    self._resolve(self._publish_waiters.pop(handle, None), None)
                case PublishFailed(handle=handle, error=error):
                    self._fail(self._publish_waiters.pop(handle, None), error)
                case SubscribeCompleted(packet_id=packet_id, return_codes=codes):
                    self._resolve(self._request_waiters.pop(packet_id, None), codes)
                case UnsubscribeCompleted(packet_id=packet_id):
                    self._resolve(self._request_waiters.pop(packet_id, None), ())
                case Connected():
                    self._connected.set()
                    self._resolve(self._connack, event.session_present)
                    self._emit(event)
                case ConnectRefused(return_code=code):
                    self._close_with(ConnectionRefused(code))
                case CloseConnection(error=error):
                    self._close_with(error)
                case Resubscribed():
                    self._emit(event)
        return messages

    def _close_with(self, error: ClientError) -> None:
        if self._close_error is None:
            self._close_error = error
        self._fail(self._connack, error)
        self._close_transport()

    def _close_transport(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        data = self._core.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)
        self._timer_wakeup.set()

    async def _drain(self) -> None:
        if self._writer is None:
            return
        async with self._drain_lock:
            await self._writer.drain()

    def _finish(self, error: ClientError) -> None:
        """The client is done: fail every waiter with ``error`` and end ``messages``."""
        if self._final_error is None:
            self._final_error = error
        waiters: list[asyncio.Future[Any]] = [
            *self._publish_waiters.values(),
            *self._request_waiters.values(),
        ]
        for future in waiters:
            self._fail(future, error)
        self._publish_waiters.clear()
        self._request_waiters.clear()
        self._connected.set()  # wake waiters so they see the final error
        self._messages.put_nowait(_END)

    def _raise_if_finished(self) -> None:
        if self._final_error is not None:
            raise self._final_error
        if self._supervisor is None:
            raise NotConnected("the client is not connected: use 'async with' or connect()")

    def _check_can_request(self) -> None:
        self._raise_if_finished()
        if not self.is_connected and self._when_disconnected is WhenDisconnected.RAISE:
            raise NotConnected(f"not connected to {self.hostname}:{self.port}")

    async def _wait_for_connection(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            raise MQTTTimeout(f"not connected within {timeout:g} seconds") from exc
        if self._final_error is not None:
            raise self._final_error

    async def _await_request(
        self, packet_id: int, timeout: float | None, what: str
    ) -> tuple[int, ...]:
        future: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        self._request_waiters[packet_id] = future
        self._flush()
        return await self._await(future, timeout, what)

    async def _await(self, future: asyncio.Future[T], timeout: float | None, what: str) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError as exc:
            raise MQTTTimeout(f"{what} did not complete within {timeout:g} seconds") from exc

    def _emit(self, event: ConnectionEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a failing callback must not break the connection
                logger.exception("on_event callback failed on %r", event)

    @staticmethod
    def _resolve(future: asyncio.Future[Any] | None, value: Any) -> None:
        if future is not None and not future.done():
            future.set_result(value)

    @staticmethod
    def _fail(future: asyncio.Future[Any] | None, error: BaseException) -> None:
        if future is not None and not future.done():
            future.set_exception(error)
            future.exception()  # mark retrieved: nobody may be waiting any more

    def _now(self) -> float:
        return asyncio.get_running_loop().time()
