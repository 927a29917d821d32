"""``mqttref check``: judge an MQTT broker against the specification, statement by statement."""

from __future__ import annotations

import argparse
import random
import sys

from mqttref.cli import AddParser
from mqttref.oracle.checks.acl import filter_problem
from mqttref.oracle.connection import (
    TLS_VERSIONS,
    Connection,
    ConnectionOptionError,
    Credentials,
    parse_url,
    tls_context,
)
from mqttref.oracle.levels import Accepted, accepted
from mqttref.oracle.nodes import DEFAULT_PROPAGATION
from mqttref.oracle.probe import Timing
from mqttref.oracle.report import Report, write_json, write_junit, write_text
from mqttref.oracle.runner import Verdict, select
from mqttref.oracle.target import PROTOCOLS, Unreachable, evaluate, protocol_name

ALL = "all"
"""``--protocol all`` (the default, issue 17): every version the oracle judges that the broker
accepts, one after the other; a full run of both stays under 5 minutes (measured: 216 s
against the mqttref broker, 242 s against mosquitto, 2 cores)."""

DEFAULT_BUDGET = 135.0
"""Seconds for a whole run of one protocol (one named by ``--protocol``, or the one level a
broker accepts): the suite, then the model exploration in what is left. The suite alone
needs up to about 145 s on a broker that answers malformed packets slowly (aedes at 3.1.1),
so less would cut it short by default."""

DEFAULT_BUDGET_EACH_OF_ALL = 120.0
"""Seconds for each protocol of ``--protocol all`` unless ``--budget`` is given: with the
exploration's grace (20 s) both levels stay under 5 minutes against a local broker."""


def register(add_parser: AddParser) -> None:
    parser = add_parser(
        "check",
        help="judge a broker against the MQTT specification",
        description="Run the conformance suite (and the model exploration, when available)"
        " against the broker at HOST:PORT (or -L URL) and print a verdict per normative"
        " statement. The connection options are mosquitto_pub's."
        " Exit 0: nothing failed; 1: something failed; 2: bad arguments or broker unreachable.",
    )
    parser.add_argument("--broker", metavar="HOST:PORT", action="append",
                        help="the broker, over TCP (over TLS with --cafile, --cert or"
                        " --insecure). Given again, a node of the same broker (a cluster):"
                        " the nodes are judged as one broker. Each new client connection"
                        " goes to the next node in turn (from --seed, afresh for each"
                        " check), so a check's publisher and subscriber sit on different"
                        " nodes, and a client id connecting again goes to another node than"
                        " its last connection (a takeover crosses nodes). The oracle assumes"
                        " a change the cluster acknowledged (a SUBACK, a retained PUBLISH's"
                        " PUBACK/PUBREC/PUBCOMP, the CONNACK or the end of a session that"
                        " outlives its connection) is known on every node within"
                        " --propagation seconds: a client on another node waits that long"
                        " before it acts; see docs/cluster.md, 'Judging a cluster'")
    parser.add_argument("--propagation", type=float, default=DEFAULT_PROPAGATION,
                        metavar="SECONDS",
                        help="with several --broker nodes: the time a cluster has to make"
                        " an acknowledged change known on every node (default"
                        f" {DEFAULT_PROPAGATION:g}, times --time-multiplier)")
    parser.add_argument("-L", "--url", metavar="URL",
                        help="the broker as mqtt://, mqtts://, ws:// or wss://"
                        "[user[:password]@]host[:port][/path] (the path is the WebSocket"
                        " request target, /mqtt by default); instead of --broker")
    parser.add_argument("-u", "--username", metavar="USER",
                        help="user name every client connects with (unless --user2)")
    parser.add_argument("-P", "--pw", "--password", dest="password", metavar="PASSWORD",
                        help="password of --username")
    parser.add_argument("--user2", metavar="USER",
                        help="a second user: the clients of each check alternate between"
                        " the two (by client id)")
    parser.add_argument("--password2", metavar="PASSWORD", help="password of --user2")
    parser.add_argument("--cafile", metavar="FILE",
                        help="CA certificates (PEM) the server certificate is checked against")
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM), with --key")
    parser.add_argument("--key", metavar="FILE", help="private key (PEM) of --cert")
    parser.add_argument("--insecure", action="store_true",
                        help="do not check the server certificate's host name (as"
                        " mosquitto_pub's --insecure)")
    parser.add_argument("--tls-version", choices=sorted(TLS_VERSIONS),
                        help="use only this TLS version")
    parser.add_argument("--denied-filter", action="append", default=[], metavar="FILTER",
                        help="a topic filter the user (-u) may not subscribe to: the"
                        " check denied_filter_refused expects it refused (repeatable)")
    parser.add_argument("--protocol", default=ALL, choices=[*sorted(PROTOCOLS), ALL],
                        help="protocol version to judge: 3.1.1, 5 (also spelled 5.0), or"
                        " all (the default: 3.1.1, then 5.0, each level the broker accepts"
                        " a CONNECT of, a report each, --budget each; a level refused is"
                        " named in a line with how it was refused); each verdict cites"
                        " that version's statement ids, and the model exploration runs at"
                        " that level")
    parser.add_argument("--only", nargs="+", metavar="ID",
                        help="run only the checks citing these statement ids (or check names)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help=f"time for the run of each protocol (default"
                        f" {DEFAULT_BUDGET_EACH_OF_ALL:.0f} each when two are judged,"
                        f" {DEFAULT_BUDGET:.0f} for one)")
    parser.add_argument("--seed", type=int, help="seed for random choices (default: random)")
    parser.add_argument("--json", metavar="FILE", help="write the verdicts as JSON")
    parser.add_argument("--junit", metavar="FILE", help="write the verdicts as JUnit XML")
    parser.add_argument("--quiet-window", type=float, default=0.3, metavar="SECONDS",
                        help="quiescence window: this long without traffic ends a wait")
    parser.add_argument("--time-multiplier", type=float, default=1.0, metavar="X",
                        help="scale every wait and bound (for slow machines or brokers)")
    parser.add_argument("--no-exploration", action="store_true",
                        help="run the conformance suite only, not the model exploration")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also list every check with its outcome and duration")
    parser.set_defaults(run=run, parser=parser)


def _address(parser: argparse.ArgumentParser, text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        parser.error(f"--broker wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port_text)


def _connection(parser: argparse.ArgumentParser,
                args: argparse.Namespace) -> tuple[str, int, Connection]:
    """Where the broker is (its first node) and how to reach it, from --broker or -L and
    the options; a bad combination is a one-line error (exit 2)."""
    if args.url is not None and args.broker is not None:
        parser.error("give either --broker or -L/--url, not both")
    if args.url is None and args.broker is None:
        parser.error("the broker is needed: --broker HOST:PORT or -L URL")
    username, password = args.username, args.password
    tls_options = (args.cafile or args.cert or args.key or args.insecure
                   or args.tls_version)
    try:
        if args.url is not None:
            address = parse_url(args.url)
            host, port, transport, path = (address.host, address.port, address.transport,
                                           address.path)
            if address.username is not None:
                if username is not None:
                    parser.error("the user is given twice: in the URL and with -u")
                username, password = address.username, address.password
            if tls_options and transport not in ("tls", "wss"):
                parser.error(f"--cafile, --cert, --key, --insecure and --tls-version need"
                             f" TLS: mqtts:// or wss://, not {args.url.split(':', 1)[0]}://")
        else:
            host, port = _address(parser, args.broker[0])
            transport, path = ("tls" if tls_options else "tcp"), "/mqtt"
        if password is not None and username is None:
            parser.error("-P/--pw without -u/--username: a password needs a user name")
        if args.user2 is not None and username is None:
            parser.error("--user2 without -u/--username: give the first user too")
        if args.password2 is not None and args.user2 is None:
            parser.error("--password2 without --user2")
        users = tuple(Credentials(name, None if secret is None else secret.encode())
                      for name, secret in ((username, password), (args.user2, args.password2))
                      if name is not None)
        context, note = (tls_context(cafile=args.cafile, certfile=args.cert, keyfile=args.key,
                                     insecure=args.insecure, version=args.tls_version)
                         if transport in ("tls", "wss") else (None, ""))
    except ConnectionOptionError as exc:
        parser.error(str(exc))
    return host, port, Connection(transport, context, note, path, users)


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    host, port, connection = _connection(parser, args)
    other_nodes = [_address(parser, text) for text in (args.broker or [])[1:]]
    if args.propagation < 0:
        parser.error("--propagation must not be negative")
    for denied in args.denied_filter:
        problem = filter_problem(denied)
        if problem is not None:
            parser.error(f"--denied-filter {denied!r}: {problem}")
    if ((args.budget is not None and args.budget <= 0) or args.quiet_window <= 0
            or args.time_multiplier <= 0):
        parser.error("--budget, --quiet-window and --time-multiplier must be positive")
    protocols = _protocols(parser, args.protocol, args.only)
    timing = Timing(quiet=args.quiet_window, multiplier=args.time_multiplier)
    levels = (accepted(host, port, protocols, timing, connection) if len(protocols) > 1
              else Accepted(tuple(protocols)))
    for refusal in levels.refused:
        sys.stdout.write(refusal.line(host, port) + "\n")
    protocols = list(levels.protocols)
    budget: float = (args.budget if args.budget is not None
                     else DEFAULT_BUDGET if len(protocols) == 1 else DEFAULT_BUDGET_EACH_OF_ALL)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    progress = _progress if sys.stderr.isatty() else None
    reports = []
    try:
        for protocol in protocols:
            reports.append(evaluate(host, port, protocol=protocol, only=args.only,
                                    budget=budget, seed=seed, timing=timing,
                                    progress=progress, explore=not args.no_exploration,
                                    connection=connection, denied_filters=args.denied_filter,
                                    other_nodes=other_nodes, propagation=args.propagation))
    except Unreachable as exc:
        print(f"mqttref check: {exc}", file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            sys.stderr.write("\r\x1b[K")
    for index, report in enumerate(reports):
        if index:
            sys.stdout.write("\n")
        write_text(report, sys.stdout, verbose=args.verbose)
    if len(reports) > 1:
        sys.stdout.write(f"all protocols: {_totals(reports)}\n")
    many = args.protocol == ALL
    refused = [(r.protocol, r.how) for r in levels.refused]
    if args.json:
        write_json(reports if many else reports[0], args.json, refused)
    if args.junit:
        write_junit(reports if many else reports[0], args.junit, refused)
    return 1 if any(report.failed for report in reports) else 0


def _protocols(parser: argparse.ArgumentParser, spelled: str,
               only: list[str] | None) -> list[str]:
    """The protocols to judge, in order. With ``--only``, a protocol none of whose
    checks is chosen is left out; an id no protocol knows is a bad argument."""
    protocols = sorted(set(PROTOCOLS.values())) if spelled == ALL else [protocol_name(spelled)]
    if not only:
        return protocols
    chosen, problems = [], []
    for protocol in protocols:
        try:
            if select(only, protocol):
                chosen.append(protocol)
        except ValueError as exc:
            problems.append(str(exc))
    if not chosen:
        parser.error(problems[0] if problems and len(set(problems)) == 1
                     else f"no check covers {' '.join(only)}")
    return chosen


def _totals(reports: list[Report]) -> str:
    passed = sum(r.count(Verdict.PASS) for r in reports)
    failed = sum(r.count(Verdict.FAIL) for r in reports)
    return f"{passed + failed} checked, {passed} passed, {failed} failed"


def _progress(done: int, total: int, name: str) -> None:
    sys.stderr.write(f"\r\x1b[K[{done + 1}/{total}] {name}")
    sys.stderr.flush()
