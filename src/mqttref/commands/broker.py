"""``mqttref broker``: run the MQTT broker until SIGINT or SIGTERM; SIGHUP reloads the
password and ACL files."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import attrs

from mqttref.impl.broker.broker import Broker
from mqttref.impl.broker.config import Config, load_config
from mqttref.impl.cluster.settings import ClusterConfig, cluster_from_value
from mqttref.impl.codec.errors import ConfigError
from mqttref.impl.logtext import BoundedFormatter
from mqttref.impl.store import StoreError

EXIT_BAD_CONFIG = 2
MAX_LOG_LINE = 2000
"""Characters of one log line at most (issue 20: a line stays under 2 KB)."""
MAX_LOG_TRACEBACK = 8000
"""Characters of a logged traceback at most."""
EXIT_CANNOT_LISTEN = 1
EXIT_STORE_FAILED = 1
"""The store could not write while running (disk full...): the broker stopped itself."""


def register(add_parser: Any) -> None:
    parser = add_parser(
        "broker",
        help="run the MQTT broker",
        description=(
            "Run the MQTT 3.1/3.1.1/5.0 broker: on 127.0.0.1:1883 over TCP unless told "
            "otherwise, or on the config file's [[listeners]] (TCP, TLS, WebSocket: "
            "docs/listeners.md). "
            "Limits and timers come from a TOML config file; SIGINT or SIGTERM stop it, "
            "SIGHUP reloads its password_file and acl_file (docs/security.md). "
            "Sessions, queues and retained messages are kept in an SQLite database in the "
            "data directory, so a restart (even after kill -9) loses nothing."
        ),
    )
    parser.add_argument("-p", "--port", type=int, default=None,
                        help="TCP port to listen on (default 1883; 0 picks a free one); "
                        "not with [[listeners]] in the config file")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default 127.0.0.1, local only); "
                        "not with [[listeners]] in the config file")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="TOML file with limits and options (see mqttref.impl.broker.config)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log each connection and each packet type")
    parser.add_argument("--memory", action="store_true",
                        help="keep all state in memory: nothing on disk, lost on exit")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="directory for the broker's database (default: mqttref under "
                        "$XDG_DATA_HOME or ~/.local/share); one broker per directory")
    parser.add_argument("--cluster", action="append", default=None, metavar="URL",
                        help="join a cluster of mqttref nodes on NATS JetStream at this "
                        "server (nats://HOST:PORT; repeat for more servers); overrides "
                        "[cluster] servers in the config file (docs/cluster.md)")
    parser.add_argument("--node-name", default=None, metavar="NAME",
                        help="this node's name in the cluster (letters, digits, - and _; "
                        "default: host name and process id)")
    parser.add_argument("--cluster-lease", default=None, type=float, metavar="SECONDS",
                        help="how long a dead node's sessions stay its own (default 10)")
    choices = parser.add_argument_group(
        "choices the specification leaves to a server",
        "mosquitto.conf's names where mosquitto has the option; they override the config "
        "file (see docs/broker.md)",
    )
    for key, kind, text in CHOICE_OPTIONS:
        flag = "--" + key.replace("_", "-")
        if kind is bool:
            choices.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction,
                                 default=None, help=text)
        else:
            choices.add_argument(flag, dest=key, default=None,
                                 metavar="N" if kind is int else "CHARS", help=text)
    parser.set_defaults(run=run)


CHOICE_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("max_qos", int, "highest QoS a SUBACK grants: 0, 1 or 2 (default 2)"),
    ("refuse_wildcard_subscriptions", bool,
     "refuse filters holding + or # with SUBACK 0x80 (default: granted)"),
    ("refuse_filter_characters", str,
     "refuse filters holding any of these characters with SUBACK 0x80 (default: none)"),
    ("allow_zero_length_clientid", bool,
     "give a client with an empty client id one of its own; --no-...: CONNACK 0x02 "
     "(default: allowed)"),
    ("reject_control_characters", bool,
     "close a connection whose packet has a UTF-8 string with a control character or a "
     "non-character (default: only topics are checked)"),
    ("max_topic_length", int, "bytes in a topic name or filter (default 65535)"),
    ("max_topic_levels", int, "levels in a topic name or filter (default 200)"),
    ("max_queued", int, "messages waiting per session (mosquitto: max_queued_messages; "
     "default 1000)"),
    ("queue_qos0_messages", bool,
     "queue QoS 0 messages for an absent persistent session (default: not kept)"),
)
"""Config keys the command line sets too: (key, value type, help)."""


def _option_value(key: str, kind: type, text: str | bool) -> object:
    """An option's value as the Config field wants it; a bad integer names the key."""
    if kind is int:
        try:
            return int(str(text), 10)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    return text


def build_config(args: argparse.Namespace) -> Config:
    """The file's settings, then the command line's on top; ConfigError names the key."""
    if args.memory and args.data_dir is not None:
        raise ConfigError("--memory and --data-dir: choose one (memory keeps nothing on disk)")
    base = Config(store="sqlite")  # the command keeps state on disk unless told otherwise
    config = load_config(args.config, base=base) if args.config is not None else base
    changes: dict[str, Any] = {}
    if config.listeners and (args.port is not None or args.host is not None):
        raise ConfigError("--port/--host: the config file names its [[listeners]]; "
                          "set addresses and ports there")
    if args.port is not None:
        changes["port"] = args.port
    if args.host is not None:
        changes["host"] = args.host
    if args.memory:
        changes["store"] = "memory"
    if args.data_dir is not None:
        changes["store"] = "sqlite"
        changes["data_dir"] = args.data_dir
    for key, kind, _ in CHOICE_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = _option_value(key, kind, value)
    cluster = _cluster(config.cluster, args)
    if cluster is not config.cluster:
        changes["cluster"] = cluster
    return attrs.evolve(config, **changes) if changes else config


def _cluster(file: ClusterConfig | None, args: argparse.Namespace) -> ClusterConfig | None:
    """The config file's ``[cluster]`` with ``--cluster`` and ``--node-name`` on top."""
    servers = getattr(args, "cluster", None)
    node_name = getattr(args, "node_name", None)
    lease = getattr(args, "cluster_lease", None)
    if servers is None and node_name is None and lease is None:
        return file
    if servers is None and file is None:
        raise ConfigError("--node-name, --cluster-lease: only with --cluster or a [cluster] "
                          "table")
    changes: dict[str, Any] = {}
    if servers is not None:
        changes["servers"] = servers
    if node_name is not None:
        changes["node_name"] = node_name
    if lease is not None:
        changes["lease"] = lease
    if file is None:
        return cluster_from_value(changes)
    return cluster_from_value({**attrs.asdict(file), **changes})


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"mqttref broker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    configure_logging(verbose=args.verbose)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, the broker runs without it
    except ImportError:
        return asyncio.run(serve(config))
    result: int = uvloop.run(serve(config))
    return result


def configure_logging(*, verbose: bool) -> None:
    """Log to stderr, one line per record: no record can exceed ``MAX_LOG_LINE``
    characters (a traceback ``MAX_LOG_TRACEBACK``), whatever a log call forgot to
    ``clip``; the cut is noted in the line."""
    handler = logging.StreamHandler()
    handler.setFormatter(BoundedFormatter("%(asctime)s %(levelname)s %(message)s",
                                          max_line=MAX_LOG_LINE,
                                          max_traceback=MAX_LOG_TRACEBACK))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def reload_security(broker: Broker) -> None:
    """SIGHUP: read the password and ACL files again, as mosquitto does, without
    dropping a client. A file that no longer reads is logged, and the tables in force
    stay (``Security.reload``)."""
    try:
        broker.ports.security.reload()
    except ConfigError as exc:
        logging.getLogger("mqttref.broker").error("SIGHUP: kept the files in force: %s", exc)


async def serve(config: Config) -> int:
    """Run until a signal arrives, or the store fails; then stop (connections closed,
    store flushed)."""
    try:
        broker = Broker(config)  # reads the password and ACL files
    except ImportError as exc:  # --cluster without nats-py installed
        print(f"mqttref broker: error: the cluster needs nats-py (pip install "
              f"'mqttref[cluster]'): {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except (ConfigError, StoreError) as exc:
        print(f"mqttref broker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        await broker.start()
    except ConfigError as exc:  # a bad password or ACL file, named with its line
        print(f"mqttref broker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except StoreError as exc:
        print(f"mqttref broker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except OSError as exc:
        where = (f"{config.host}:{config.port}: {exc.strerror or exc}" if not config.listeners
                 else str(exc))  # asyncio's message names the address it could not bind
        print(f"mqttref broker: error: cannot listen on {where}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, reload_security, broker)
    waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(broker.stopped.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await broker.stop()
    if broker.failure is not None:
        print(f"mqttref broker: error: {broker.failure}", file=sys.stderr)
        return EXIT_STORE_FAILED
    return 0
