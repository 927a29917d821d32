"""``mqttref charts``: draw the model's statecharts (DOT, Mermaid, SVG).

The drawings come from the same transition tables that the model executes
(``mqttref.model.charts``), so they cannot drift from its behaviour: MQTT 3.1.1's and
MQTT 5.0's (named ``*_5``) side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mqttref.model.charts import ALL_CHARTS as CHARTS
from mqttref.statecharts.build import problems
from mqttref.statecharts.render import write_charts

DEFAULT_OUT = Path("docs/spec")


def register(add_parser: Any) -> None:
    parser = add_parser(
        "charts",
        help="draw the model's statecharts",
        description=(
            "Write each statechart of the model as Graphviz DOT, Markdown with a Mermaid "
            "stateDiagram-v2 block and a transition table, and SVG (SVG needs Graphviz's "
            "'dot'; without it the rest is still written)."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory to write into (default {DEFAULT_OUT})",
    )
    parser.add_argument("--no-svg", action="store_true", help="skip SVG even when dot is present")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    found = {chart.name: problems(chart) for chart in CHARTS}
    if any(found.values()):
        for name, issues in found.items():
            for issue in issues:
                print(f"mqttref charts: chart {name}: {issue}", file=sys.stderr)
        return 1
    try:
        written = write_charts(CHARTS, args.out, svg=not args.no_svg)
    except OSError as error:
        print(f"mqttref charts: cannot write to {args.out}: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written.files)} files for {len(CHARTS)} charts into {args.out}")
    if not written.svg and not args.no_svg:
        print(
            "SVG needs Graphviz: install the 'graphviz' package for 'dot' (DOT and Mermaid written)"
        )
    return 0
