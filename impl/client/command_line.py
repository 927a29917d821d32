"""What ``mqttref pub`` and ``mqttref sub`` share: options, the client they build, exit codes.

The options follow mosquitto_pub/mosquitto_sub (``-h`` is the host, so help
is ``--help``). Failures end with one line on stderr and an exit code a shell
script can test:

====  ===========================================================
0     success
1     the connection was lost, or the broker broke the protocol
2     a bad option (argparse's convention)
3     the broker cannot be reached (no listener, unknown host)
4     the broker refused the connection (CONNACK return code != 0)
5     a subscription was refused (SUBACK 0x80)
27    ``sub -W``: time ran out before ``-C`` messages (as mosquitto_sub)
====  ===========================================================
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from mqttref.impl.client.client import Client
from mqttref.impl.client.errors import (
    BrokerUnreachable,
    ConnectionRefused,
    InvalidArgument,
    SubscriptionRefused,
)
from mqttref.impl.codec.errors import ClientError
from mqttref.impl.codec.packets import ProtocolLevel, QoS, Will

EXIT_OK = 0
EXIT_CONNECTION_LOST = 1
EXIT_BAD_OPTION = 2
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_SUBSCRIPTION_REFUSED = 5
EXIT_TIMED_OUT = 27

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 connection lost or protocol error, 2 bad option, "
    "3 broker unreachable, 4 connection refused by the broker, 5 subscription refused, "
    "27 timed out (-W)"
)

PROTOCOL_VERSIONS = {
    "mqttv31": ProtocolLevel.MQTT_3_1,
    "31": ProtocolLevel.MQTT_3_1,
    "mqttv311": ProtocolLevel.MQTT_3_1_1,
    "311": ProtocolLevel.MQTT_3_1_1,
}


def qos_argument(text: str) -> int:
    if text not in ("0", "1", "2"):
        raise argparse.ArgumentTypeError(f"QoS must be 0, 1 or 2, not {text!r}")
    return int(text)


def port_argument(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, not {text!r}")
    return port


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, not {text!r}")
    return value


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """The options of mosquitto_pub and mosquitto_sub that shape the connection."""
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-h", "--host", default="localhost", help="broker host (localhost)")
    parser.add_argument("-p", "--port", type=port_argument, default=1883, help="port (1883)")
    parser.add_argument("-i", "--id", default="", help="client id (default: chosen for you)")
    parser.add_argument(
        "-k", "--keepalive", type=non_negative_int, default=60, help="keep alive seconds (60)"
    )
    parser.add_argument("-q", "--qos", type=qos_argument, default=0, help="QoS 0, 1 or 2 (0)")
    parser.add_argument("-u", "--username", help="user name")
    parser.add_argument("-P", "--pw", dest="password", help="password")
    parser.add_argument(
        "-V",
        "--protocol-version",
        choices=sorted(PROTOCOL_VERSIONS),
        default="mqttv311",
        help="mqttv31 or mqttv311 (default)",
    )
    parser.add_argument("--will-topic", help="topic of the will message")
    parser.add_argument("--will-payload", default="", help="payload of the will message")
    parser.add_argument("--will-qos", type=qos_argument, default=0, help="QoS of the will")
    parser.add_argument("--will-retain", action="store_true", help="retain the will")


def default_client_id(prefix: str) -> str:
    """mosquitto's style ``mosq-...``; under 23 characters so MQTT 3.1 brokers accept it."""
    return f"{prefix}-{os.getpid()}"[:23]


def build_client(args: argparse.Namespace, *, prefix: str, clean_session: bool = True) -> Client:
    """A ``Client`` from the parsed options; raises ``InvalidArgument`` for bad values."""
    will = None
    if args.will_topic is not None:
        will = Will(
            topic=args.will_topic,
            payload=args.will_payload.encode("utf-8"),
            qos=QoS(args.will_qos),
            retain=args.will_retain,
        )
    elif args.will_retain or args.will_payload:
        raise InvalidArgument("--will-payload and --will-retain need --will-topic")
    if args.password is not None and args.username is None:
        raise InvalidArgument("-P needs -u (MQTT sends no password without a user name)")
    return Client(
        args.host,
        args.port,
        client_id=args.id or default_client_id(prefix),
        clean_session=clean_session,
        keepalive=args.keepalive,
        will=will,
        username=args.username,
        password=args.password,
        protocol=PROTOCOL_VERSIONS[args.protocol_version],
    )


def run_client_command(prog: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main`` and turn the client's errors into one stderr line and an exit code."""
    try:
        return asyncio.run(main())
    except InvalidArgument as exc:
        return fail(prog, str(exc), EXIT_BAD_OPTION)
    except BrokerUnreachable as exc:
        return fail(prog, str(exc), EXIT_UNREACHABLE)
    except ConnectionRefused as exc:
        return fail(prog, str(exc), EXIT_REFUSED)
    except SubscriptionRefused as exc:
        return fail(prog, str(exc), EXIT_SUBSCRIPTION_REFUSED)
    except ClientError as exc:
        return fail(prog, str(exc), EXIT_CONNECTION_LOST)


def fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
