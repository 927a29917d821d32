"""The ``mqttref`` command: one entry point, one subcommand per job.

Each subcommand lives in ``mqttref.commands.<name>`` and exposes
``register(add_parser)`` and ``run(args) -> int``. The list below fixes their
order in ``--help``; a subcommand is offered once its module exists, so that
the parts of mqttref can land one at a time.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mqttref import __version__

SUBCOMMANDS = ("broker", "pub", "sub", "passwd", "check", "charts", "conformance-doc")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (try '{self.prog} --help')\n")


AddParser = Callable[..., ArgumentParser]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="mqttref",
        description="MQTT broker, client, executable model and conformance oracle.",
    )
    parser.add_argument("--version", action="version", version=f"mqttref {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in SUBCOMMANDS:
        module_name = f"mqttref.commands.{name.replace('-', '_')}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module: Any = importlib.import_module(module_name)
        module.register(sub.add_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
