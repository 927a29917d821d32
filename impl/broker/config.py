"""The broker's configuration: limits and timers, with sane defaults.

Every limit that protects the broker from one client (see BAD-INPUTS.md) is
here with a default in the spirit of mosquitto's, and every timer the tests
need to shorten (keep alive grace, retry, CONNECT timeout) is a field, so
that no test has to patch the code to make time pass faster.

A TOML file (``mqttref broker -c FILE``) sets the same fields by name, at the
top level or under a ``[broker]`` table. An unknown key or a value of the
wrong type or range raises ``ConfigError`` naming the key, which the command
turns into one line and exit code 2.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from mqttref.impl.broker.listeners import Listener, listeners_from_value
from mqttref.impl.cluster.settings import ClusterConfig, cluster_from_value
from mqttref.impl.codec.errors import ConfigError

MAX_REMAINING_LENGTH = 268_435_455
"""The largest Remaining Length the variable byte integer can carry (2.2.3)."""

MAX_PACKET_ID = 65_535


def _positive_int(maximum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{attribute.name}: expected an integer, got {value!r}")
        if not 1 <= value <= maximum:
            raise ConfigError(f"{attribute.name}: must be between 1 and {maximum}, got {value}")

    return check


def _non_negative_int(maximum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{attribute.name}: expected an integer, got {value!r}")
        if not 0 <= value <= maximum:
            raise ConfigError(f"{attribute.name}: must be between 0 and {maximum}, got {value}")

    return check


def _non_negative_number(
    _instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{attribute.name}: expected a number of seconds, got {value!r}")
    if not 0 <= value < 1e9:
        raise ConfigError(f"{attribute.name}: must be 0 or more seconds, got {value}")


def _positive_number(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    _non_negative_number(_instance, attribute, value)
    if value == 0:
        raise ConfigError(f"{attribute.name}: must be more than 0, got {value}")


def _port(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name}: expected a TCP port 0-65535, got {value!r}")


def _string(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{attribute.name}: expected a non-empty string, got {value!r}")


def _boolean(_instance: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, got {value!r}")


def _qos(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1, 2):
        raise ConfigError(f"{attribute.name}: must be 0, 1 or 2, got {value!r}")


def _characters(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{attribute.name}: expected a string of characters, got {value!r}")
    if "\x00" in value:
        raise ConfigError(f"{attribute.name}: U+0000 can never be in a topic filter")


def _optional_boolean(_instance: object, attribute: attrs.Attribute[bool | None],
                      value: bool | None) -> None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, got {value!r}")


def _optional_file(_instance: object, attribute: attrs.Attribute[str | None],
                   value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: expected a file path, got {value!r}")


def _users(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{attribute.name}: expected a table of user name = password strings")


def _store(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in STORES:
        raise ConfigError(f"{attribute.name}: expected one of {sorted(STORES)}, got {value!r}")


def _optional_path(_instance: object, attribute: attrs.Attribute[str | None],
                   value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: expected a directory path, got {value!r}")


STORES = frozenset({"memory", "sqlite"})
"""Store kinds this build knows: ``memory`` (nothing on disk) and ``sqlite`` (``data_dir``)."""

STORE_SYNCS = frozenset({"normal", "full"})


def _store_sync(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in STORE_SYNCS:
        raise ConfigError(
            f"{attribute.name}: expected one of {sorted(STORE_SYNCS)}, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Config:
    """Everything the broker can be told, with the defaults it runs with."""

    host: str = attrs.field(default="127.0.0.1", validator=_string)
    """Listen address; loopback only by default, like mosquitto 2.0's local-only mode."""
    port: int = attrs.field(default=1883, validator=_port)
    """0 picks a free port (``Broker.port`` tells which)."""
    listeners: tuple[Listener, ...] = attrs.field(default=(), converter=listeners_from_value)
    """Several listeners, each with its own address, port and transport
    (``[[listeners]]`` tables, ``mqttref.impl.broker.listeners``); empty (the default):
    one plain TCP listener on ``host``/``port``."""

    max_packet_size: int = attrs.field(
        default=1_048_576, validator=_positive_int(MAX_REMAINING_LENGTH + 5)
    )
    """Largest packet accepted, in bytes; a larger one closes the connection before
    its body is buffered (CVE-2017-7651)."""
    max_inflight: int = attrs.field(default=20, validator=_positive_int(MAX_PACKET_ID))
    """Outbound QoS 1/2 messages unacknowledged at once per session (mosquitto: 20)."""
    max_queued: int = attrs.field(default=1000, validator=_positive_int(10_000_000))
    """Messages waiting per session beyond the in-flight window, online or offline
    (mosquitto's ``max_queued_messages``, 1000 in 2.0). Drop policy: the newest message,
    the one that would exceed the limit, is dropped, logged and counted in
    ``Session.dropped``. QoS 0 messages count too when ``queue_qos0_messages`` is on."""
    max_queued_bytes: int = attrs.field(default=33_554_432, validator=_positive_int(1 << 40))
    """Bytes of payload and topic waiting per session beyond the in-flight window, online or
    offline (mosquitto's ``max_queued_bytes``; 32 MiB here, where mosquitto has no limit):
    memory is bounded in bytes, not only in messages. Beyond it the same drop policy as
    ``max_queued`` applies: QoS 0 messages and the newest QoS 1/2 message for that session
    are dropped, logged (rate-limited) and counted."""
    memory_high_water: int = attrs.field(default=536_870_912, validator=_positive_int(1 << 42))
    """Bytes queued in all sessions together beyond which the broker protects itself: a
    publisher whose batch met the mark pauses (at most ``backpressure_timeout``) and a
    message that would be queued beyond it is dropped; the log names the largest
    consumers. Far above one session's share (16 x ``max_queued_bytes``), so one client
    never reaches it alone."""
    stall_timeout: float = attrs.field(default=0.0, validator=_non_negative_number)
    """Seconds a subscriber may go without taking anything (no acknowledgement while its
    window is full, no drain while its socket is congested) before it is disconnected;
    0 (the default, as mosquitto) never disconnects it: its queue bounds what it costs."""
    sys_interval: float = attrs.field(default=10.0, validator=_non_negative_number)
    """Seconds between updates of the broker's status topics ``$SYS/broker/...``
    (``sys_topics``: version, uptime, clients, bytes and messages, subscriptions,
    retained and stored messages), published retained, each only when its value
    changed; 0 publishes none. mosquitto's ``sys_interval``, with its default."""
    max_awaiting_rel: int = attrs.field(default=1000, validator=_positive_int(MAX_PACKET_ID))
    """Inbound QoS 2 messages awaiting PUBREL per session; one more closes the
    connection (CVE-2023-28366). MQTT 5.0 clients are told it as the broker's Receive
    Maximum (3.2.2.3.3), and one more is DISCONNECT 0x93 [MQTT-3.3.4-9]."""
    max_connections: int = attrs.field(default=10_000, validator=_positive_int(10_000_000))
    """Connected clients (sockets that sent an accepted CONNECT); one more is answered
    CONNACK 0x03 and closed. Sockets that have not sent CONNECT count against
    ``max_pending_connections`` instead, so silent sockets cannot lock clients out."""
    max_pending_connections: int = attrs.field(default=4096, validator=_positive_int(10_000_000))
    """Sockets open without a CONNECT yet (each costs about 1-2 KB until ``connect_timeout``
    closes it). Accepting one more closes the oldest of them: a flood of silent sockets
    churns among itself and leaves room for a client that sends its CONNECT promptly."""
    max_pending_per_address: int = attrs.field(default=2048, validator=_positive_int(10_000_000))
    """Sockets without a CONNECT yet from one IP address; one more closes that address's
    oldest, so one host cannot fill ``max_pending_connections`` for everyone. High by
    default because many clients behind one NAT reconnect at once after a restart;
    lower it on a listener that faces the internet."""
    max_client_id_length: int = attrs.field(default=1024, validator=_positive_int(65_535))
    """Longest client id accepted, in UTF-8 bytes; a longer one is refused with CONNACK
    0x02 [MQTT-3.1.3-5: a server MAY allow more than 23 bytes]. mosquitto accepts up to
    65,535; 1024 covers every scheme in use (cloud brokers stop at 128) and bounds what
    one id costs in memory, logs and the store."""
    persistent_client_expiration: float = attrs.field(
        default=0.0, validator=_non_negative_number
    )
    """Seconds a persistent session (clean session 0) may stay disconnected before it is
    deleted, subscriptions and queue with it, as mosquitto's option of that name; 0 (the
    default, as mosquitto) keeps it forever. The deadline is wall-clock time kept in the
    store, so a session expires across broker restarts too."""
    max_keep_alive: int = attrs.field(default=65_535, validator=_positive_int(65_535))
    """A CONNECT asking for a longer keep alive is refused with 0x02, as mosquitto
    does for 3.1.1 clients, which cannot be told another value (CVE-2020-13849)."""
    max_topic_levels: int = attrs.field(default=200, validator=_positive_int(65_535))
    """Levels in a topic name or filter (mosquitto: 200; CVE-2019-11779). A deeper
    filter is refused with SUBACK 0x80; a deeper PUBLISH topic or will topic closes
    the connection (3.1.1 has no other way to refuse a PUBLISH)."""
    max_topic_length: int = attrs.field(default=65_535, validator=_positive_int(65_535))
    """Bytes (UTF-8) in a topic name or filter; 65535, the most a UTF-8 string can
    carry (1.5.3), is no limit of the broker's own. Beyond it: as ``max_topic_levels``."""
    write_buffer_limit: int = attrs.field(default=262_144, validator=_positive_int(1 << 40))
    """Bytes waiting to be written to one client beyond which it is *congested*: its
    QoS 1/2 messages wait in its session queue (within ``max_queued`` and
    ``max_queued_bytes``) until it drains. Its publishers do not wait for it."""
    write_buffer_max: int = attrs.field(default=4_194_304, validator=_positive_int(1 << 40))
    """Bytes waiting for one client beyond which QoS 0 messages to it are dropped and
    counted: a reader that never drains costs bounded memory (BAD-INPUTS.md)."""
    backpressure_timeout: float = attrs.field(default=1.0, validator=_non_negative_number)
    """Longest a publisher pauses when its batch met ``memory_high_water``. No publisher
    ever waits for one slow subscriber: that subscriber's own queue absorbs it."""

    connect_timeout: float = attrs.field(default=10.0, validator=_positive_number)
    """Seconds a new connection may take to send CONNECT before it is closed."""
    keep_alive_factor: float = attrs.field(default=1.5, validator=_positive_number)
    """The connection is closed after this many keep-alive periods of silence
    [MQTT-3.1.2-24]; tests shorten time by lowering it."""
    retry_interval: float = attrs.field(default=20.0, validator=_non_negative_number)
    """First resend of an unacknowledged QoS 1/2 message while a 3.x client stays
    connected, doubling on each try; 0 turns resending off (messages still resend on
    reconnect). MQTT 5.0 forbids resending but on reconnection [MQTT-4.4.0-1]."""
    retry_max_interval: float = attrs.field(default=300.0, validator=_positive_number)
    """The doubling resend interval never exceeds this."""

    max_qos: int = attrs.field(default=2, validator=_qos)
    """The highest QoS a SUBACK grants: min(requested, max_qos). The Server might grant a
    lower maximum QoS than requested [MQTT-3.8.4-6]; messages then go out at the lower of
    their QoS and the granted one. Unlike mosquitto's ``max_qos``, a 3.1.1 client that
    publishes above it is not disconnected (3.1.1 tells it nothing of the limit, and no
    statement allows closing): its PUBLISH is acknowledged and routed as usual."""
    refuse_wildcard_subscriptions: bool = attrs.field(default=False, validator=_boolean)
    """True: a filter holding ``+`` or ``#`` is refused with SUBACK 0x80 (a server that
    does not support wildcards MUST refuse them [MQTT-3.8.3-2]); the other filters of the
    same SUBSCRIBE are granted as usual."""
    refuse_filter_characters: str = attrs.field(default="", validator=_characters)
    """A filter containing any of these characters (e.g. ``" "``) is refused with
    SUBACK 0x80: a SUBACK return code may say the subscription failed [MQTT-3.8.4-5]
    (3.9.3: 0x80 Failure); the other filters of the same SUBSCRIBE are granted."""
    queue_qos0_messages: bool = attrs.field(default=False, validator=_boolean)
    """True: QoS 0 messages for a disconnected persistent session wait in its queue
    (counted against ``max_queued``), as mosquitto's option; False (the default, also
    mosquitto's): they are not kept. 3.1.2.4 lists them as optional session state."""

    retain_available: bool = attrs.field(default=True, validator=_boolean)
    """False: the broker keeps no retained messages. MQTT 5.0 clients are told so in
    CONNACK (Retain Available 0) and one that publishes with RETAIN 1 is disconnected
    with 0x9A [MQTT-3.2.2-14]; 3.1.1 has no such choice, so this applies to 5.0 only."""
    topic_alias_maximum: int = attrs.field(default=10, validator=_non_negative_int(65_535))
    """Topic aliases an MQTT 5.0 client may use towards the broker (CONNACK Topic Alias
    Maximum, 3.2.2.3.8); 0 accepts none. mosquitto's ``max_topic_alias`` and default."""
    response_information: str = attrs.field(default="", validator=_characters)
    """What CONNACK's Response Information says to a 5.0 client that asks for it (Request
    Response Information 1): a topic prefix for its responses, ``%c`` standing for its
    client id (e.g. ``reply/%c/``). Empty (the default): none is sent, as the Server MAY
    choose (3.2.2.3.15); none is ever sent to a client that did not ask [MQTT-3.1.2-28]."""
    send_topic_aliases: bool = attrs.field(default=False, validator=_boolean)
    """True: the broker gives topics it sends a 5.0 client Topic Aliases, up to the client's
    Topic Alias Maximum (3.3.2.3.4), so a repeated topic costs two bytes; False (the
    default, as mosquitto): every PUBLISH carries its topic name. Aliases live as long as
    the network connection [MQTT-3.3.2-7]."""
    validate_payload_format: bool = attrs.field(default=False, validator=_boolean)
    """True: a 5.0 PUBLISH whose Payload Format Indicator is 1 but whose payload is not
    well-formed UTF-8 is refused, as the receiver MAY (3.3.2.3.2): PUBACK or PUBREC 0x99,
    at QoS 0 DISCONNECT 0x99, and it goes to nobody; such a will is refused with CONNACK
    0x99 (3.1.3.2.3). False (the default, as mosquitto 2.0, which forwards it): the
    payload passes unread, as any other."""
    max_session_expiry_interval: int = attrs.field(
        default=0xFFFF_FFFF, validator=_non_negative_int(0xFFFF_FFFF)
    )
    """The longest Session Expiry Interval an MQTT 5.0 client gets, in seconds; a longer
    request is lowered and CONNACK says so (3.2.2.3.2). 4294967295 (the default) lets a
    session never expire."""
    shared_subscriptions: bool = attrs.field(default=True, validator=_boolean)
    """True: ``$share/{ShareName}/{filter}`` is a shared subscription (4.8.2) at every
    level, as in mosquitto. False: CONNACK says Shared Subscription Available 0 and a
    5.0 client's ``$share/...`` filter gets SUBACK 0x9E; below 5.0 it is an ordinary filter."""
    subscription_identifiers: bool = attrs.field(default=True, validator=_boolean)
    """True: a 5.0 SUBSCRIBE may carry a Subscription Identifier, which the messages it
    matches carry back [MQTT-3.3.4-3]. False: CONNACK says Subscription Identifier
    Available 0 and a SUBSCRIBE with one is DISCONNECT 0xA1 (3.8.2.1.2)."""

    allow_zero_length_clientid: bool = attrs.field(default=True, validator=_boolean)
    """False: a CONNECT with an empty client id is refused with CONNACK 0x02 and closed
    [MQTT-3.1.3-9]; True (mosquitto's default): with clean session 1 it gets a unique
    id [MQTT-3.1.3-6]."""
    reject_control_characters: bool = attrs.field(default=False, validator=_boolean)
    """True: a packet with a UTF-8 string (client id, will topic, user name, topic name,
    topic filter) holding U+0001-U+001F, U+007F-U+009F or a Unicode non-character closes
    the connection, before CONNACK without one: the receiver MAY close (1.5.3). False:
    only topic names and filters are checked for control characters (``limits``)."""
    allow_anonymous: bool | None = attrs.field(default=None, validator=_optional_boolean)
    """False: a CONNECT without a user name is refused with 0x05 (5.0: 0x87). True: it is
    accepted. Unset (the default): accepted only while every listener is on loopback,
    so only this machine can connect without a user name (``anonymous_allowed``;
    mosquitto 2.0's local-only rule, see docs/security.md)."""
    users: Mapping[str, str] = attrs.field(factory=dict, validator=_users, hash=False)
    """User name -> password; when not empty, other names or wrong passwords get 0x04.
    A testing aid: passwords stand in the file as written. MQTT 5.0 clients may also
    prove them with SCRAM-SHA-256 enhanced authentication (4.12)."""
    password_file: str | None = attrs.field(default=None, validator=_optional_file)
    """A password file as mosquitto 2.0's ``mosquitto_passwd`` (or ``mqttref passwd``)
    writes it: ``user:$7$...`` salted PBKDF2-SHA512 lines. Its users log in with their
    password; other names or wrong passwords get 0x04 (5.0: 0x86). SIGHUP reloads it."""
    acl_file: str | None = attrs.field(default=None, validator=_optional_file)
    """An access control list in mosquitto's ``acl_file`` syntax (``user``, ``topic``,
    ``pattern``): with one, a client may publish, subscribe to and receive only the
    topics it grants (``mqttref.impl.auth.acl``). SIGHUP reloads it."""
    scram_users: Mapping[str, str] = attrs.field(factory=dict, validator=_users, hash=False)
    """User name -> SCRAM-SHA-256 verifier (``SCRAM-SHA-256$4096:salt$StoredKey:ServerKey``,
    as ``mqttref.impl.auth.ScramCredentials.to_string`` writes it): users who can log in
    with SCRAM-SHA-256 enhanced authentication, no password kept."""

    store: str = attrs.field(default="memory", validator=_store)
    """Where sessions, subscriptions, queues and retained messages are kept. ``memory``
    for an embedded broker; ``mqttref broker`` defaults to ``sqlite``."""
    data_dir: str | None = attrs.field(default=None, validator=_optional_path)
    """The ``sqlite`` store's directory; None: ``$XDG_DATA_HOME/mqttref`` or
    ``~/.local/share/mqttref`` (see ``mqttref.impl.store.datadir``)."""
    store_sync: str = attrs.field(default="normal", validator=_store_sync)
    """``normal``: every group commit is written to the database's log before the
    acknowledgements go, so a crashed or killed broker (kill -9) loses nothing;
    ``full``: also fsync each group commit, so a power cut loses nothing either, at
    the price of one disk flush per batch (see bench/durability.py)."""
    cluster: ClusterConfig | None = attrs.field(default=None, converter=cluster_from_value)
    """The NATS JetStream cluster this node joins (a ``[cluster]`` table, or
    ``mqttref broker --cluster``; docs/cluster.md); None: a single node, which never
    loads the cluster code."""

    def __attrs_post_init__(self) -> None:
        if self.write_buffer_max < self.write_buffer_limit:
            raise ConfigError(
                f"write_buffer_max: must be at least write_buffer_limit "
                f"({self.write_buffer_limit}), got {self.write_buffer_max}"
            )

    @property
    def loopback(self) -> bool:
        """Every listener is on a loopback address: only this machine can connect."""
        if self.listeners:
            return all(listener.loopback for listener in self.listeners)
        return Listener(port=self.port, host=self.host).loopback

    @property
    def anonymous_allowed(self) -> bool:
        """Whether a CONNECT without a user name may be accepted: ``allow_anonymous`` if
        set, else only while every listener is on loopback (mosquitto 2.0 allows it only
        with no listener configured, which binds loopback alone)."""
        if self.allow_anonymous is not None:
            return self.allow_anonymous
        return self.loopback

    @property
    def timer_tick(self) -> float:
        """How often the broker looks for expired timers: fine enough for short test timers."""
        candidates = [1.0, self.connect_timeout / 4]
        if self.retry_interval > 0:
            candidates.append(self.retry_interval / 4)
        return max(0.01, min(candidates))


CONFIG_KEYS = frozenset(field.name for field in attrs.fields(Config))
FLOAT_KEYS = frozenset(
    field.name for field in attrs.fields(Config) if field.type in (float, "float")
)


def config_from_mapping(values: Mapping[str, Any], *, base: Config | None = None) -> Config:
    """Build a Config from ``key = value`` pairs, naming the key of any problem."""
    table = values.get("broker", values)
    if "broker" in values and len(set(values) - {"cluster"}) > 1:
        other = sorted(set(values) - {"broker", "cluster"})[0]
        raise ConfigError(f"{other}: unknown key (keys go at the top level or under [broker])")
    if not isinstance(table, Mapping):
        raise ConfigError("broker: expected a table")
    if table is not values and "cluster" in values:  # [cluster] beside [broker]
        table = {**table, "cluster": values["cluster"]}
    for key in table:
        if key not in CONFIG_KEYS:
            raise ConfigError(f"{key}: unknown key (known: {', '.join(sorted(CONFIG_KEYS))})")
    changes = dict(table)
    for key in FLOAT_KEYS:
        if isinstance(changes.get(key), int) and not isinstance(changes.get(key), bool):
            changes[key] = float(changes[key])
    return attrs.evolve(base or Config(), **changes)


def load_config(path: Path, *, base: Config | None = None) -> Config:
    """Read a TOML file; an unreadable file or bad TOML is a ConfigError too."""
    try:
        with path.open("rb") as file:
            values = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return config_from_mapping(values, base=base)
