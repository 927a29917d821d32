"""``mqttref conformance-doc``: regenerate docs/spec/conformance.md (or check it is current)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mqttref.cli import AddParser
from mqttref.model.charts import CHARTS
from mqttref.oracle.docgen import generate
from mqttref.oracle.statements import normalise_id

DEFAULT_PATH = Path("docs/spec/conformance.md")


def register(add_parser: AddParser) -> None:
    parser = add_parser(
        "conformance-doc",
        help="regenerate the conformance matrix (docs/spec/conformance.md)",
        description="Write the MQTT 3.1.1 conformance matrix generated from the statement"
        " list, the checks of 'mqttref check' and the model's transitions.",
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_PATH,
                        help=f"where to write it (default {DEFAULT_PATH})")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when the file is not current")
    parser.set_defaults(run=run)


def model_transitions() -> dict[str, list[str]]:
    """Statement id -> labels ``chart: source -event-> target`` of the transitions citing it."""
    table: dict[str, list[str]] = {}
    for chart in CHARTS:
        for transition in chart.transitions:
            label = f"{chart.name}: {transition.source} -{transition.event}-> {transition.target}"
            for ref in transition.refs:
                try:
                    sid = normalise_id(ref)
                except ValueError:
                    continue
                if label not in table.setdefault(sid, []):
                    table[sid].append(label)
    return {sid: sorted(labels) for sid, labels in table.items()}


def render() -> str:
    return generate(model_transitions())


def run(args: argparse.Namespace) -> int:
    text = render()
    path: Path = args.output
    if args.check:
        current = path.read_text("utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is not current: run 'mqttref conformance-doc'", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    print(f"wrote {path}")
    return 0
