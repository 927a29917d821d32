"""One module per ``mqttref`` subcommand; see ``mqttref.cli``.

A subcommand module provides::

    def register(add_parser: AddParser) -> None:
        parser = add_parser("name", help="...", description="...")
        parser.add_argument(...)
        parser.set_defaults(run=run)

    def run(args: argparse.Namespace) -> int: ...

Bad arguments exit 2 with one line (``parser.error``); ``run`` returns the exit code.
"""
