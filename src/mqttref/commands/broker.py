"""``mqttref broker``: run the MQTT 3.1/3.1.1 broker until SIGINT or SIGTERM."""

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

from mqttref.impl.broker import Broker
from mqttref.impl.config import Config, load_config
from mqttref.impl.errors import ConfigError
from mqttref.impl.store import StoreError

EXIT_BAD_CONFIG = 2
EXIT_CANNOT_LISTEN = 1
EXIT_STORE_FAILED = 1
"""The store could not write while running (disk full...): the broker stopped itself."""


def register(add_parser: Any) -> None:
    parser = add_parser(
        "broker",
        help="run the MQTT broker",
        description=(
            "Run the MQTT 3.1/3.1.1 broker (127.0.0.1:1883 unless told otherwise). "
            "Limits and timers come from a TOML config file; SIGINT or SIGTERM stop it. "
            "Sessions, queues and retained messages are kept in an SQLite database in the "
            "data directory, so a restart (even after kill -9) loses nothing."
        ),
    )
    parser.add_argument("-p", "--port", type=int, default=None,
                        help="TCP port to listen on (default 1883; 0 picks a free one)")
    parser.add_argument("--host", default=None,
                        help="address to listen on (default 127.0.0.1, local only)")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="TOML file with limits and options (see mqttref.impl.config)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log each connection and each packet type")
    parser.add_argument("--memory", action="store_true",
                        help="keep all state in memory: nothing on disk, lost on exit")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="directory for the broker's database (default: mqttref under "
                        "$XDG_DATA_HOME or ~/.local/share); one broker per directory")
    parser.set_defaults(run=run)


def build_config(args: argparse.Namespace) -> Config:
    """The file's settings, then the command line's on top; ConfigError names the key."""
    if args.memory and args.data_dir is not None:
        raise ConfigError("--memory and --data-dir: choose one (memory keeps nothing on disk)")
    base = Config(store="sqlite")  # the command keeps state on disk unless told otherwise
    config = load_config(args.config, base=base) if args.config is not None else base
    changes: dict[str, Any] = {}
    if args.port is not None:
        changes["port"] = args.port
    if args.host is not None:
        changes["host"] = args.host
    if args.memory:
        changes["store"] = "memory"
    if args.data_dir is not None:
        changes["store"] = "sqlite"
        changes["data_dir"] = args.data_dir
    return attrs.evolve(config, **changes) if changes else config


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"mqttref broker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, the broker runs without it
    except ImportError:
        return asyncio.run(serve(config))
    result: int = uvloop.run(serve(config))
    return result


async def serve(config: Config) -> int:
    """Run until a signal arrives, or the store fails; then stop (connections closed,
    store flushed)."""
    broker = Broker(config)
    try:
        await broker.start()
    except StoreError as exc:
        print(f"mqttref broker: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except OSError as exc:
        print(f"mqttref broker: error: cannot listen on {config.host}:{config.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
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
