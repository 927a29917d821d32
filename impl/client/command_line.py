"""What ``mqttref pub`` and ``mqttref sub`` share: options, the client they build, exit codes.

The options follow mosquitto_pub/mosquitto_sub (``-h`` is the host, so help
is ``--help``). Failures end with one line on stderr and an exit code a shell
script can test:

====  ===========================================================
0     success
1     the connection was lost, or the broker broke the protocol
2     a bad option (argparse's convention)
3     the broker cannot be reached (no listener, unknown host, a failed TLS or
      WebSocket handshake)
4     the broker refused the connection (CONNACK return code != 0)
5     a subscription was refused (SUBACK 0x80, or 5.0 reason code >= 0x80)
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
from mqttref.impl.client.properties_option import parse_properties
from mqttref.impl.client.tls import TlsSettings
from mqttref.impl.client.url import DEFAULT_PORTS, BrokerUrl, parse_url
from mqttref.impl.client.validation import MAX_REMAINING_LENGTH
from mqttref.impl.codec.errors import ClientError
from mqttref.impl.codec.packets import NO_PROPERTIES, Properties, ProtocolLevel, QoS, Will

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
    "mqttv5": ProtocolLevel.MQTT_5,
    "5": ProtocolLevel.MQTT_5,
}
"""``-V`` as mosquitto 2.0 spells it."""

NEVER_EXPIRES = 0xFFFF_FFFF
"""Session Expiry Interval 4,294,967,295: the session does not expire (3.1.2.11.2)."""


def session_expiry_argument(text: str) -> int:
    """``-x``: seconds, or -1, 4294967295 or ∞ for never (mosquitto's spellings)."""
    if text in ("-1", "∞"):
        return NEVER_EXPIRES
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("session-expiry-interval not a number.") from None
    if not 0 <= value <= NEVER_EXPIRES:
        raise argparse.ArgumentTypeError(
            f"session-expiry-interval must be 0..4294967295 or -1, not {text!r}"
        )
    return value


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
    parser.add_argument("-h", "--host", default=None, help="broker host (localhost)")
    parser.add_argument(
        "-p", "--port", type=port_argument, default=None, help="port (1883; 8883 with TLS)"
    )
    parser.add_argument(
        "-L",
        "--url",
        help="the broker as a URL: mqtt(s)://[user[:password]@]host[:port]/topic, or "
        "ws(s)://[user[:password]@]host[:port][/path] (WebSocket, path /mqtt by default)",
    )
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
        default=None,
        help="mqttv5 (or 5), mqttv311 (or 311; the default, unless -D asks for 5) or mqttv31",
    )
    parser.add_argument(
        "-D",
        "--property",
        dest="properties",
        action="append",
        nargs="+",
        default=[],
        metavar="COMMAND PROPERTY VALUE",
        help="an MQTT v5 property, e.g. '-D publish user-property key value' or "
        "'-D connect session-expiry-interval 60' (repeatable; implies -V mqttv5)",
    )
    parser.add_argument(
        "-x",
        dest="session_expiry",
        type=session_expiry_argument,
        default=None,
        metavar="SECONDS",
        help="MQTT v5 session expiry interval (-1 or 4294967295: never); "
        "defaults to -1 with -c, 0 without",
    )
    add_tls_options(parser)
    parser.add_argument("--will-topic", help="topic of the will message")
    parser.add_argument("--will-payload", default="", help="payload of the will message")
    parser.add_argument("--will-qos", type=qos_argument, default=0, help="QoS of the will")
    parser.add_argument("--will-retain", action="store_true", help="retain the will")


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """mosquitto_pub's TLS options (see ``tls.TlsSettings`` for what each means)."""
    tls = parser.add_argument_group("TLS (on with --cafile, --capath or an mqtts/wss URL)")
    tls.add_argument("--cafile", help="trusted CA certificates (PEM) to verify the server")
    tls.add_argument("--capath", help="a directory of trusted CA certificates (c_rehash'ed)")
    tls.add_argument("--tls-use-os-certs", action="store_true", help="trust the system's CAs")
    tls.add_argument("--cert", help="client certificate (PEM), for brokers that ask for one")
    tls.add_argument("--key", help="the client certificate's private key (PEM)")
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do not check the server's host name against its certificate "
        "(the chain is still verified)",
    )
    tls.add_argument(
        "--tls-version", default="tlsv1.2", help="lowest TLS version: tlsv1.2 (default), tlsv1.3"
    )


def resolve_url(args: argparse.Namespace) -> BrokerUrl:
    """Settle ``-L`` against ``-h``, ``-p``, ``-u``, ``-P`` and the TLS options.

    Sets ``args.host``, ``args.port``, ``args.username``, ``args.password`` and
    ``args.url_topic`` (the topic of an ``mqtt(s)`` URL, as mosquitto_pub's ``-L``)
    and returns where to connect. The URL names the host and port, so ``-h`` and
    ``-p`` beside it are errors, as are ``-u``/``-P`` when it names a user too.
    Without a URL the port is 8883 when TLS is asked for, else 1883 (mosquitto).
    Settled once: a second call returns the first answer.
    """
    settled: BrokerUrl | None = getattr(args, "target", None)
    if settled is not None:
        return settled
    settings = tls_settings(args)
    if args.url is None:
        secure = settings.enabled
        host = args.host or "localhost"
        port = args.port or DEFAULT_PORTS["mqtts" if secure else "mqtt"]
        target = BrokerUrl("mqtts" if secure else "mqtt", host, port)
        args.url_topic = None
    else:
        target = parse_url(args.url)
        given = [flag for flag, value in (("-h", args.host), ("-p", args.port)) if value]
        if target.username is not None:
            given += [flag for flag, v in (("-u", args.username), ("-P", args.password)) if v]
        if given:
            raise InvalidArgument(f"-L names the broker: {', '.join(given)} cannot go with it")
        if settings.enabled and not target.secure:
            raise InvalidArgument(
                f"-L {target.scheme}:// is not encrypted, yet TLS options ask for TLS: "
                f"use {'wss' if target.websocket else 'mqtts'}://"
            )
        if target.username is not None:
            args.username, args.password = target.username, target.password
        args.url_topic = target.topic
    args.host, args.port = target.host, target.port
    args.tls_settings = settings
    args.target = target
    return target


def tls_settings(args: argparse.Namespace) -> TlsSettings:
    """The TLS options as ``TlsSettings``, checked; an mqtts/wss URL without
    --cafile/--capath trusts the system's CAs (mosquitto 2.0 does the same for mqtts)."""
    secure_url = args.url is not None and args.url.lower().startswith(("mqtts:", "wss:"))
    settings = TlsSettings(
        cafile=args.cafile,
        capath=args.capath,
        certfile=args.cert,
        keyfile=args.key,
        insecure=args.insecure,
        tls_version=args.tls_version,
        use_os_certs=args.tls_use_os_certs
        or (secure_url and args.cafile is None and args.capath is None),
    )
    settings.check()
    return settings


def default_client_id(prefix: str) -> str:
    """mosquitto's style ``mosq-...``; under 23 characters so MQTT 3.1 brokers accept it."""
    return f"{prefix}-{os.getpid()}"[:23]


def protocol_properties(args: argparse.Namespace) -> dict[str, Properties]:
    """Settle ``-V``, ``-D`` and ``-x`` together; store the level as ``args.level``.

    ``-D`` makes the client an MQTT v5 one, as in mosquitto; with an explicit
    ``-V`` below 5 it (and ``-x``) is an error instead of being ignored.
    """
    properties = parse_properties(args.properties)
    if args.protocol_version is None:
        five = bool(args.properties)
        args.level = ProtocolLevel.MQTT_5 if five else ProtocolLevel.MQTT_3_1_1
    else:
        args.level = PROTOCOL_VERSIONS[args.protocol_version]
    if args.level is not ProtocolLevel.MQTT_5:
        if args.properties:
            raise InvalidArgument("-D properties need MQTT v5 (-V mqttv5)")
        if args.session_expiry is not None:
            raise InvalidArgument("-x applies to MQTT v5 clients only (-V mqttv5)")
    args.parsed_properties = properties
    return properties


def build_client(args: argparse.Namespace, *, prefix: str, clean_session: bool = True) -> Client:
    """A ``Client`` from the parsed options; raises ``InvalidArgument`` for bad values."""
    target = resolve_url(args)
    properties = protocol_properties(args)
    five = args.level is ProtocolLevel.MQTT_5
    will = None
    if args.will_topic is not None:
        will = Will(
            topic=args.will_topic,
            payload=args.will_payload.encode("utf-8"),
            qos=QoS(args.will_qos),
            retain=args.will_retain,
            properties=properties.get("will", NO_PROPERTIES),
        )
    elif args.will_retain or args.will_payload:
        raise InvalidArgument("--will-payload and --will-retain need --will-topic")
    if args.password is not None and args.username is None:
        raise InvalidArgument("-P needs -u (MQTT sends no password without a user name)")
    connect = properties.get("connect", NO_PROPERTIES)
    session_expiry = args.session_expiry
    if session_expiry is None:
        session_expiry = connect.session_expiry_interval
    if five and session_expiry is None and not clean_session:
        session_expiry = NEVER_EXPIRES  # mosquitto: -c means -x -1 at v5
    if session_expiry == NEVER_EXPIRES and not args.id:
        raise InvalidArgument(
            "You must provide a client id if you are using an infinite session expiry interval."
        )
    extra: dict[str, Any] = {}
    if five:
        extra = {
            "session_expiry_interval": session_expiry,
            "receive_maximum": connect.receive_maximum,
            "request_response_information": bool(connect.request_response_information),
            "request_problem_information": (
                None
                if connect.request_problem_information is None
                else bool(connect.request_problem_information)
            ),
            "user_properties": connect.user_properties,
        }
        if connect.topic_alias_maximum is not None:
            extra["topic_alias_maximum"] = connect.topic_alias_maximum
        if connect.maximum_packet_size is not None:
            # Ours bounds the Remaining Length; the property counts the whole packet.
            extra["max_packet_size"] = min(
                max(connect.maximum_packet_size - 5, 1), MAX_REMAINING_LENGTH
            )
    settings: TlsSettings = args.tls_settings
    return Client(
        target.host,
        target.port,
        tls=settings.context() if settings.enabled else None,
        transport="websockets" if target.websocket else "tcp",
        websocket_path=target.websocket_path,
        client_id=args.id or default_client_id(prefix),
        clean_session=clean_session,
        keepalive=args.keepalive,
        will=will,
        username=args.username,
        password=args.password,
        protocol=args.level,
        **extra,
    )


async def disconnect(client: Client, args: argparse.Namespace) -> None:
    """DISCONNECT with the ``-D disconnect`` properties (session expiry, reason string)."""
    props = args.parsed_properties.get("disconnect", NO_PROPERTIES)
    await client.disconnect(
        session_expiry_interval=props.session_expiry_interval,
        reason_string=props.reason_string,
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
