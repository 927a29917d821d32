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

MQTT 5.0 (``protocol=5``): the core does the protocol; the shell adds the
request/response helper (``request``), whose responses are told apart by
their correlation data and never reach ``messages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

import attrs

from mqttref.impl.client import validation
from mqttref.impl.client.backoff import Backoff
from mqttref.impl.client.errors import (
    ConnectionClosed,
    ConnectionRefused,
    InvalidArgument,
    MQTTTimeout,
    NotConnected,
    QueueFull,
    SubscriptionRefused,
    UnsubscribeRefused,
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
from mqttref.impl.client.mqtt5 import ServerLimits
from mqttref.impl.client.options import Authenticator
from mqttref.impl.client.protocol import ClientOptions, ClientProtocol, ConnectionState
from mqttref.impl.client.transport import Transport, open_transport
from mqttref.impl.client.url import DEFAULT_WEBSOCKET_PATH, parse_url
from mqttref.impl.codec.errors import ClientError, ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    SUBACK_FAILURE,
    ConnectReturnCode,
    Packet,
    Properties,
    ProtocolLevel,
    QoS,
    Subscription,
    Will,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_REFUSALS = frozenset(
    {
        ConnectReturnCode.SERVER_UNAVAILABLE,
        ReasonCode.SERVER_UNAVAILABLE,
        ReasonCode.SERVER_BUSY,
        ReasonCode.QUOTA_EXCEEDED,
        ReasonCode.CONNECTION_RATE_EXCEEDED,
    }
)
"""Refusals about the server's state, not about who we are: worth another attempt."""

RequestResult = tuple[tuple[int, ...], Properties]


class WhenDisconnected(Enum):
    """What ``publish`` does while there is no connection."""

    RAISE = "raise"
    WAIT = "wait"
    QUEUE = "queue"


class _EndOfMessages:
    """Put in the messages queue when the client is finished."""


_END = _EndOfMessages()


class Client:
    """An MQTT 3.1/3.1.1/5.0 client for asyncio, used as ``async with Client(...) as client``."""

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
        protocol: ProtocolLevel | int | str = ProtocolLevel.MQTT_3_1_1,
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
        clean_start: bool | None = None,
        session_expiry_interval: int | None = None,
        receive_maximum: int | None = None,
        topic_alias_maximum: int = 16,
        auto_topic_alias: bool = True,
        request_response_information: bool = False,
        request_problem_information: bool | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
        authenticator: Authenticator | None = None,
        tls: ssl.SSLContext | bool | None = None,
        transport: str = "tcp",
        websocket_path: str = DEFAULT_WEBSOCKET_PATH,
    ) -> None:
        """Arguments beyond CONNECT's fields:

        ``tls``: an ``ssl.SSLContext`` (``TlsSettings(cafile=...).context()`` builds one
        from mosquitto's options), or ``True`` for the system's trusted authorities; the
        server's certificate is checked against ``hostname``. ``transport``: ``"tcp"``
        or ``"websockets"`` (MQTT over WebSocket, chapter 6, asking for
        ``websocket_path``). ``Client.from_url`` takes all of these from one URL.

        ``timeout``: seconds for TCP connect, CONNACK and PINGRESP. ``max_inflight``:
        outgoing QoS 1/2 messages unacknowledged at once. ``max_queued_messages``:
        bound of ``messages`` (reading stops when full). ``max_queued_publishes``: bound
        of ``WhenDisconnected.QUEUE``. ``reconnect``: a ``Backoff`` turns reconnection
        on. ``resubscribe``: subscribe again when the broker lost the session.
        ``on_event``: told ``Connected``, ``Disconnected``, ``Reconnecting``,
        ``Resubscribed``. ``on_packet(direction, packet)``: a trace of every packet
        "sent" or "received" (debugging, and the model check of the tests).

        ``protocol``: 5 (or ``"5"``, ``"5.0"``, ``"mqttv5"``), 4 (``"3.1.1"``,
        ``"mqttv311"``, the default) or 3 (``"3.1"``, ``"mqttv31"``). At 5.0 only:
        ``clean_start`` (defaults to ``clean_session``), ``session_expiry_interval``,
        ``receive_maximum``, ``topic_alias_maximum`` (aliases the server may use
        towards us), ``auto_topic_alias`` (alias repeated topics within the server's
        maximum; on by default, since it only shortens packets),
        ``request_response_information``, ``request_problem_information``,
        ``user_properties`` of CONNECT, and an ``authenticator`` for enhanced
        authentication (AUTH). ``max_packet_size`` is sent as Maximum Packet Size.
        """
        if isinstance(password, str):
            password = password.encode("utf-8")
        if max_queued_messages < 1 or max_queued_publishes < 0:
            raise InvalidArgument("queue bounds must be positive")
        if transport not in ("tcp", "websockets"):
            raise InvalidArgument(f"transport must be 'tcp' or 'websockets', not {transport!r}")
        if not websocket_path.startswith("/"):
            raise InvalidArgument(f"websocket_path must start with '/', not {websocket_path!r}")
        self.hostname = hostname
        self.port = port
        self.timeout = timeout
        self.tls: ssl.SSLContext | None = (
            ssl.create_default_context() if tls is True else (tls or None)
        )
        self.transport = transport
        self.websocket_path = websocket_path
        level = validation.check_protocol(protocol)
        if clean_start is not None:
            if level is not ProtocolLevel.MQTT_5:
                raise InvalidArgument("clean_start is MQTT 5.0's: use clean_session below 5.0")
            clean_session = clean_start
        self._core = ClientProtocol(
            ClientOptions(
                client_id=client_id,
                clean_session=clean_session,
                keep_alive=keepalive,
                will=will,
                username=username,
                password=password,
                protocol_level=level,
                max_inflight=max_inflight,
                connect_timeout=timeout,
                ping_timeout=timeout,
                max_packet_size=max_packet_size,
                resubscribe=resubscribe,
                session_expiry_interval=session_expiry_interval,
                receive_maximum=receive_maximum,
                topic_alias_maximum=topic_alias_maximum if level is ProtocolLevel.MQTT_5 else 0,
                auto_topic_alias=auto_topic_alias,
                request_response_information=request_response_information,
                request_problem_information=request_problem_information,
                user_properties=tuple(user_properties),
                authenticator=authenticator,
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
        self._publish_waiters: dict[int, asyncio.Future[int]] = {}
        self._request_waiters: dict[int, asyncio.Future[RequestResult]] = {}
        self._responses: dict[bytes, asyncio.Future[Message]] = {}
        """Correlation data of a pending ``request`` -> where its response goes."""
        self._response_topics: set[str] = set()
        self._response_base = f"mqttref/response/{uuid.uuid4().hex}"
        self._connack: asyncio.Future[bool] | None = None
        self._writer: Transport | None = None
        self._drain_lock = asyncio.Lock()
        self._timer_wakeup = asyncio.Event()
        self._close_error: ClientError | None = None
        self._connection_task: asyncio.Task[ClientError] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._final_error: ClientError | None = None
        self._closed_by_user = False

    @classmethod
    def from_url(
        cls, url: str, *, tls: ssl.SSLContext | bool | None = None, **options: Any
    ) -> Self:
        """A client for ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://`` ``[user[:password]@]
        host[:port][/path]``; ``options`` are the constructor's.

        A secure scheme without ``tls`` trusts the system's authorities; ``tls=False``
        with one is an error. Default ports: 1883, 8883, 80, 443. A WebSocket URL's path
        is the resource asked for (``/mqtt`` when absent); an ``mqtt(s)`` URL's path is
        a topic (mosquitto_pub's ``-L``), which a ``Client`` has no use for: refused.
        """
        parts = parse_url(url)
        if parts.topic is not None:
            raise InvalidArgument(
                f"{url!r}: the path of an {parts.scheme}:// URL is a topic "
                "(mqttref pub/sub -L); Client.from_url takes none"
            )
        if parts.secure and tls is False:
            raise InvalidArgument(f"{url!r} asks for TLS, and tls=False says no")
        if parts.secure and tls is None:
            tls = True
        if not parts.secure and tls:
            raise InvalidArgument(f"{url!r} is not a TLS URL: use mqtts:// or wss://")
        for key, value in (("username", parts.username), ("password", parts.password)):
            if value is not None:
                if options.get(key) is not None:
                    raise InvalidArgument(f"{key} is given both in the URL and as an argument")
                options[key] = value
        if parts.websocket:
            options["transport"] = "websockets"
            options["websocket_path"] = parts.websocket_path
        return cls(parts.host, parts.port, tls=tls, **options)

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

    @property
    def protocol_level(self) -> ProtocolLevel:
        return self._core.options.protocol_level

    @property
    def connack_properties(self) -> Properties:
        """The properties of the last 5.0 CONNACK (empty below 5.0)."""
        return self._core.connack_properties

    @property
    def server_limits(self) -> ServerLimits:
        """What the last 5.0 CONNACK allows: Receive Maximum, Maximum QoS, ..."""
        return self._core.limits

    @property
    def client_id(self) -> str:
        """Ours, or the one a 5.0 server assigned (3.2.2.3.7)."""
        return self._core.assigned_client_id or self._core.options.client_id

    @property
    def keepalive(self) -> int:
        """The keep alive in force: ours, or a 5.0 server's Server Keep Alive."""
        return self._core.keep_alive

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

    async def disconnect(
        self,
        reason_code: int = ReasonCode.SUCCESS,
        *,
        with_will: bool = False,
        session_expiry_interval: int | None = None,
        reason_string: str | None = None,
    ) -> None:
        """Send DISCONNECT (the will is discarded [MQTT-3.14.4-3]) and close.

        At 5.0: ``with_will`` sends reason 0x04, which asks the broker to publish the
        will (3.14.2.1); ``session_expiry_interval`` replaces CONNECT's (3.14.2.2.2).
        """
        if self._closed_by_user:
            return
        if with_will:
            reason_code = ReasonCode.DISCONNECT_WITH_WILL
        writer = self._writer
        if writer is not None and self.is_connected:
            self._core.disconnect(
                self._now(),
                reason_code,
                session_expiry_interval=session_expiry_interval,
                reason_string=reason_string,
            )
        self._closed_by_user = True
        if writer is not None:
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
        properties: Properties | None = None,
        content_type: str | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        message_expiry_interval: int | None = None,
        payload_format_indicator: int | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Publish and return once the QoS flow is complete (sent, PUBACK or PUBCOMP).

        Returns the reason code of the acknowledgement: 0, or at 5.0 0x10 when the
        broker had no matching subscriber. A 5.0 refusal (0x80 or more) raises
        ``PublishRefused`` with the code and the Reason String. Arguments are
        checked before anything is sent (``InvalidArgument``; ``NotSupportedByServer``
        or ``PayloadTooLarge`` for what the server's CONNACK rules out). The 5.0
        PUBLISH properties come as ``properties`` or as the named arguments.
        With ``WhenDisconnected.QUEUE`` and no connection, returns 0 once queued.
        """
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        level = validation.check_qos(qos)
        validation.check_topic_name(topic)
        validation.check_payload(topic, data, level, self._core.options.max_packet_size)
        base = properties or NO_PROPERTIES
        props = Properties(
            **{
                **attrs.asdict(base, recurse=False),
                "content_type": content_type or base.content_type,
                "response_topic": response_topic or base.response_topic,
                "correlation_data": (
                    base.correlation_data if correlation_data is None else correlation_data
                ),
                "message_expiry_interval": (
                    base.message_expiry_interval
                    if message_expiry_interval is None
                    else message_expiry_interval
                ),
                "payload_format_indicator": (
                    base.payload_format_indicator
                    if payload_format_indicator is None
                    else payload_format_indicator
                ),
                "user_properties": base.user_properties + tuple(user_properties),
            }
        )
        if props == NO_PROPERTIES:
            props = NO_PROPERTIES
        self._raise_if_finished()
        if not self.is_connected:
            if self._when_disconnected is WhenDisconnected.RAISE:
                raise NotConnected(f"not connected to {self.hostname}:{self.port}")
            if self._when_disconnected is WhenDisconnected.QUEUE:
                if self._core.queued_count >= self._max_queued_publishes:
                    raise QueueFull(f"{self._max_queued_publishes} messages already queued")
                self._core.publish(topic, data, level, retain, self._now(), properties=props)
                return 0
            await self._wait_for_connection(timeout)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        handle = self._core.publish(topic, data, level, retain, self._now(), properties=props)
        self._publish_waiters[handle] = future
        self._dispatch()
        self._flush()
        with contextlib.suppress(OSError):
            await self._drain()  # the socket's buffer pushes back on a fast publisher
        return await self._await(future, timeout, f"publish to {topic!r}")

    async def subscribe(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        timeout: float | None = None,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_identifier: int | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> QoS:
        """Subscribe to one filter; returns the granted QoS or raises ``SubscriptionRefused``
        (with the 5.0 reason code and Reason String). The keyword options are 5.0's
        (3.8.3.1); ``$share/{group}/{filter}`` is a shared subscription (4.8.2)."""
        subscription = Subscription(
            topic_filter,
            validation.check_qos(qos),
            no_local=no_local,
            retain_as_published=retain_as_published,
            retain_handling=retain_handling,
        )
        codes, properties = await self._subscribe(
            [subscription], timeout, subscription_identifier, user_properties
        )
        (code,) = codes
        if code >= SUBACK_FAILURE:
            raise SubscriptionRefused(topic_filter, code, properties.reason_string)
        return QoS(code)

    async def subscribe_many(
        self,
        subscriptions: Sequence[tuple[str, int] | Subscription],
        *,
        timeout: float | None = None,
        subscription_identifier: int | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, ...]:
        """One SUBSCRIBE for several filters; returns the SUBACK codes (0x80 and above:
        refused). A ``Subscription`` item carries 5.0 subscription options."""
        codes, _ = await self._subscribe(
            subscriptions, timeout, subscription_identifier, user_properties
        )
        return codes

    async def _subscribe(
        self,
        subscriptions: Sequence[tuple[str, int] | Subscription],
        timeout: float | None,
        subscription_identifier: int | None,
        user_properties: Sequence[tuple[str, str]],
    ) -> RequestResult:
        self._check_can_request()
        packet_id = self._core.subscribe(
            subscriptions,
            self._now(),
            subscription_identifier=subscription_identifier,
            user_properties=user_properties,
        )
        return await self._await_request(packet_id, timeout, "SUBACK")

    async def unsubscribe(
        self,
        *topic_filters: str,
        timeout: float | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, ...]:
        """Unsubscribe from the filters; returns on UNSUBACK with its 5.0 reason codes
        (0x11: there was no such subscription; empty below 5.0). A 5.0 refusal
        (0x80 or more) raises ``UnsubscribeRefused``."""
        self._check_can_request()
        packet_id = self._core.unsubscribe(
            topic_filters, self._now(), user_properties=user_properties
        )
        codes, properties = await self._await_request(packet_id, timeout, "UNSUBACK")
        for topic_filter, code in zip(topic_filters, codes, strict=False):
            if code >= 0x80:
                raise UnsubscribeRefused(topic_filter, code, properties.reason_string, codes)
        return codes

    async def request(
        self,
        topic: str,
        payload: bytes | str = b"",
        *,
        response_topic: str | None = None,
        qos: int = 1,
        timeout: float = 10.0,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> Message:
        """Send a 5.0 request and return its response (4.10): the PUBLISH carries a
        Response Topic and fresh Correlation Data; the client subscribes to the
        response topic (once) and returns the first message there with the same
        correlation data. Without ``response_topic`` a topic of this client's own is used.
        """
        if self.protocol_level is not ProtocolLevel.MQTT_5:
            raise InvalidArgument("request/response needs MQTT 5.0 (Client(protocol=5))")
        if response_topic is None:
            response_topic = self._response_base
        validation.check_topic_name(response_topic)
        if response_topic not in self._response_topics:
            await self.subscribe(response_topic, qos, timeout=timeout)
            self._response_topics.add(response_topic)
        correlation = uuid.uuid4().bytes
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._responses[correlation] = future
        try:
            await self.publish(
                topic,
                payload,
                qos,
                timeout=timeout,
                response_topic=response_topic,
                correlation_data=correlation,
                user_properties=user_properties,
            )
            return await self._await(future, timeout, f"the response to {topic!r}")
        finally:
            self._responses.pop(correlation, None)

    async def reauthenticate(self) -> None:
        """Start a 5.0 re-authentication with the client's authenticator (4.12.1)."""
        self._core.reauthenticate(self._now())
        self._flush()

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
        """One connection attempt: TCP (TLS, WebSocket), CONNECT, CONNACK."""
        transport = await open_transport(
            self.hostname,
            self.port,
            tls=self.tls,
            websocket_path=self.websocket_path if self.transport == "websockets" else None,
            timeout=self.timeout,
        )
        self._writer = transport
        self._close_error = None
        connack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._connack = connack
        self._core.connection_made(self._now())
        self._dispatch()
        self._flush()
        task = asyncio.create_task(self._serve(transport))
        self._connection_task = task
        waiters: set[asyncio.Future[Any]] = {connack, task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if connack.done():
            connack.result()  # raises ConnectionRefused, MQTTTimeout, ...
            return
        raise task.result()

    async def _serve(self, transport: Transport) -> ClientError:
        """Run one connection until it ends; return why it ended."""
        timer = asyncio.create_task(self._run_timer())
        try:
            error = await self._read(transport)
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

    async def _read(self, transport: Transport) -> ClientError:
        while True:
            try:
                data = await transport.read()
            except ConnectionClosed as exc:
                return exc
            if not data:
                return ConnectionClosed("the broker closed the connection")
            self._core.receive_data(data, self._now())
            for message in self._dispatch():
                if not self._is_response(message):
                    await self._deliver(message)
                self._core.acknowledge(message, self._now())
            self._flush()
            if self._close_error is not None:
                return self._close_error
            with contextlib.suppress(OSError):
                await self._drain()

    def _is_response(self, message: Message) -> bool:
        """Hand a response to its pending ``request``, by its correlation data."""
        correlation = message.properties.correlation_data
        if correlation is None or not self._responses:
            return False
        future = self._responses.get(correlation)
        if future is None:
            return False
        self._resolve(future, message)
        return True

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
                if exc.return_code not in RETRYABLE_REFUSALS:
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
                case PublishCompleted(handle=handle, reason_code=code):
                    self._resolve(self._publish_waiters.pop(handle, None), code)
                case PublishFailed(handle=handle, error=error):
                    self._fail(self._publish_waiters.pop(handle, None), error)
                case SubscribeCompleted(packet_id=packet_id, return_codes=codes):
                    result = (codes, event.properties)
                    self._resolve(self._request_waiters.pop(packet_id, None), result)
                case UnsubscribeCompleted(packet_id=packet_id, reason_codes=codes):
                    result = (codes, event.properties)
                    self._resolve(self._request_waiters.pop(packet_id, None), result)
                case Connected():
                    self._connected.set()
                    self._resolve(self._connack, event.session_present)
                    self._emit(event)
                case ConnectRefused(return_code=code):
                    refusal = ConnectionRefused(
                        code, reason_string=event.properties.reason_string, mqtt5=event.mqtt5
                    )
                    self._close_with(refusal)
                case CloseConnection(error=error):
                    self._close_with(error)
                case Resubscribed():
                    self._emit(event)
        return messages

    def _close_with(self, error: ClientError) -> None:
        if self._close_error is None:
            self._close_error = error
        self._fail(self._connack, error)
        self._flush()  # a 5.0 DISCONNECT telling the server why, if the core sent one
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
            *self._responses.values(),
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
    ) -> RequestResult:
        future: asyncio.Future[RequestResult] = asyncio.get_running_loop().create_future()
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
