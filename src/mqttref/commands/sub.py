"""``mqttref sub``: subscribe and print messages, like mosquitto_sub."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from mqttref.impl.client.client import Client
from mqttref.impl.client.command_line import (
    EXIT_BAD_OPTION,
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_SUBSCRIPTION_REFUSED,
    EXIT_TIMED_OUT,
    add_connection_options,
    build_client,
    disconnect,
    fail,
    non_negative_int,
    resolve_url,
    run_client_command,
)
from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.client.events import Message
from mqttref.impl.client.output_format import OutputFormat
from mqttref.impl.client.validation import check_topic_filter
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    SUBACK_FAILURE,
    Properties,
    QoS,
    Subscription,
)

PROG = "mqttref sub"


def register(add_parser: Any) -> None:
    parser = add_parser(
        "sub",
        add_help=False,
        help="subscribe and print messages (mosquitto_sub's options)",
        description="Subscribe to topics on an MQTT broker and print what arrives, "
        "with mosquitto_sub's options.",
        epilog=EXIT_CODES_HELP,
    )
    add_connection_options(parser)
    parser.add_argument(
        "-t",
        "--topic",
        action="append",
        default=[],
        help="topic filter (repeatable; an mqtt(s) -L URL gives one more)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload'")
    parser.add_argument(
        "-C", "--count", type=non_negative_int, default=0, help="exit after COUNT messages"
    )
    parser.add_argument(
        "-W", "--timeout", type=non_negative_int, default=0, help="exit after SECONDS (code 27)"
    )
    parser.add_argument(
        "-c",
        "--disable-clean-session",
        action="store_true",
        help="persistent session: the broker keeps subscriptions and queues messages",
    )
    parser.add_argument("-F", "--format", help="output format (%%t topic, %%p payload, ...)")
    parser.add_argument("-N", action="store_true", dest="no_newline", help="no newline after")
    parser.add_argument(
        "-R", action="store_true", dest="no_retained", help="do not print retained messages"
    )
    # MQTT v5 subscription options, which mosquitto_sub 2.0 has no flag for (3.8.3.1).
    parser.add_argument(
        "--no-local", action="store_true", help="v5: do not receive this client's own messages"
    )
    parser.add_argument(
        "--retain-as-published",
        action="store_true",
        help="v5: keep the retain flag as the publisher set it",
    )
    parser.add_argument(
        "--retain-handling",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="v5: send retained messages on subscribe: 0 always, 1 only for a new "
        "subscription, 2 never",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        resolve_url(args)
        if args.url_topic is not None:
            args.topic.append(args.url_topic)
        if not args.topic:
            raise InvalidArgument(
                "the following arguments are required: -t (or -L mqtt://host/filter)"
            )
        output = OutputFormat(args.format) if args.format is not None else None
        for topic_filter in args.topic:
            check_topic_filter(topic_filter)
    except InvalidArgument as exc:
        return fail(PROG, str(exc), EXIT_BAD_OPTION)
    if args.disable_clean_session and not args.id:
        return fail(PROG, "-c needs a client id (-i)", EXIT_BAD_OPTION)
    return run_client_command(PROG, lambda: subscribe(args, output))


def render(args: argparse.Namespace, output: OutputFormat | None, message: Message) -> bytes:
    if output is not None:
        line = output.render(message)
    elif args.verbose:
        line = message.topic.encode("utf-8") + b" " + message.payload
    else:
        line = message.payload
    return line if args.no_newline else line + b"\n"


async def subscribe(args: argparse.Namespace, output: OutputFormat | None) -> int:
    client = build_client(args, prefix="mqttref-sub", clean_session=not args.disable_clean_session)
    options = args.no_local or args.retain_as_published or args.retain_handling
    if options and client.protocol_level != 5:
        raise InvalidArgument(
            "--no-local, --retain-as-published and --retain-handling need MQTT v5 (-V mqttv5)"
        )
    async with client:
        if not args.timeout:
            return await _receive(args, output, client)
        # -W counts from the connection, as mosquitto_sub's does ("The timeout starts just
        # after the client has connected to the broker"): a slow start of this process or a
        # slow CONNACK does not eat the time the user gave for messages.
        try:
            async with asyncio.timeout(args.timeout):
                return await _receive(args, output, client)
        except TimeoutError:
            return fail(PROG, "timed out", EXIT_TIMED_OUT)


async def _receive(args: argparse.Namespace, output: OutputFormat | None, client: Client) -> int:
    stdout = sys.stdout.buffer
    subscribe_properties: Properties = args.parsed_properties.get("subscribe", NO_PROPERTIES)
    identifiers = subscribe_properties.subscription_identifiers
    subscriptions = [
        Subscription(
            topic,
            QoS(args.qos),
            no_local=args.no_local,
            retain_as_published=args.retain_as_published,
            retain_handling=args.retain_handling,
        )
        for topic in args.topic
    ]
    codes = await client.subscribe_many(
        subscriptions,
        subscription_identifier=identifiers[0] if identifiers else None,
        user_properties=subscribe_properties.user_properties,
    )
    refused = [t for t, code in zip(args.topic, codes, strict=True) if code >= SUBACK_FAILURE]
    if len(refused) == len(codes):
        return fail(PROG, "the broker refused every subscription", EXIT_SUBSCRIPTION_REFUSED)
    for topic in refused:
        print(f"{PROG}: warning: subscription to {topic!r} refused", file=sys.stderr)
    received = 0
    async for message in client.messages:
        if args.no_retained and message.retain:
            continue
        stdout.write(render(args, output, message))
        stdout.flush()
        received += 1
        if args.count and received >= args.count:
            break
    await disconnect(client, args)
    return EXIT_OK
