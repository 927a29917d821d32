"""``mqttref pub``: publish one message (or one per stdin line), like mosquitto_pub."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mqttref.impl.client.command_line import (
    EXIT_BAD_OPTION,
    EXIT_CODES_HELP,
    EXIT_OK,
    add_connection_options,
    build_client,
    disconnect,
    fail,
    resolve_url,
    run_client_command,
)
from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.client.validation import check_topic_name

PROG = "mqttref pub"


def register(add_parser: Any) -> None:
    parser = add_parser(
        "pub",
        add_help=False,
        help="publish a message (mosquitto_pub's options)",
        description="Publish a message to an MQTT broker, with mosquitto_pub's options.",
        epilog=EXIT_CODES_HELP,
    )
    add_connection_options(parser)
    parser.add_argument(
        "-t", "--topic", help="topic to publish to (required, unless an mqtt(s) -L URL gives it)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--message", help="the payload, as UTF-8 text")
    source.add_argument("-f", "--file", type=Path, help="send the contents of a file")
    source.add_argument(
        "-l", "--stdin-line", action="store_true", help="one message per line of stdin"
    )
    source.add_argument("-n", "--null-message", action="store_true", help="an empty payload")
    source.add_argument("-s", "--stdin-file", action="store_true", help="all of stdin as one")
    parser.add_argument("-r", "--retain", action="store_true", help="retain the message")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        resolve_url(args)
        args.topic = _topic(args)
        check_topic_name(args.topic)  # before connecting: a bad option, not a broker error
    except InvalidArgument as exc:
        return fail(PROG, str(exc), EXIT_BAD_OPTION)
    if args.file is not None:
        try:
            args.payload = args.file.read_bytes()
        except OSError as exc:
            return fail(PROG, f"cannot read {args.file}: {exc.strerror}", EXIT_BAD_OPTION)
    elif args.stdin_file:
        args.payload = sys.stdin.buffer.read()
    elif args.null_message:
        args.payload = b""
    elif args.message is not None:
        args.payload = args.message.encode("utf-8")
    return run_client_command(PROG, lambda: publish(args))


def _topic(args: argparse.Namespace) -> str:
    """``-t``, or the path of an ``mqtt(s)`` ``-L`` URL: one of them, as in mosquitto_pub."""
    if args.url_topic is not None:
        if args.topic is not None:
            raise InvalidArgument("-t cannot go with -L mqtt(s)://host/topic: the URL gives it")
        topic: str = args.url_topic
        return topic
    if args.topic is None:
        if args.url is not None and not args.url.lower().startswith(("ws:", "wss:")):
            raise InvalidArgument("-L: the URL has no topic (mqtt://host[:port]/topic)")
        raise InvalidArgument(
            "the following arguments are required: -t (or -L mqtt://host/topic)"
        )
    given: str = args.topic
    return given


async def _stdin_lines() -> AsyncIterator[bytes]:
    """Lines of stdin without their line ending; blank lines are skipped (as mosquitto_pub)."""
    while True:
        line = await asyncio.to_thread(sys.stdin.buffer.readline)
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if line:
            yield line


async def publish(args: argparse.Namespace) -> int:
    client = build_client(args, prefix="mqttref-pub")
    properties = args.parsed_properties.get("publish")
    async with client:
        if args.stdin_line:
            async for line in _stdin_lines():
                await client.publish(args.topic, line, args.qos, args.retain, properties=properties)
        else:
            await client.publish(
                args.topic, args.payload, args.qos, args.retain, properties=properties
            )
        await disconnect(client, args)
    return EXIT_OK
