"""Which MQTT 5.0 statements the model cites, against those a client can observe.

Issue 16's bar: every server-side observable 5.0 statement is cited by at least one
chart row (``CHARTS_5``) or model rule. A *rule* is a statement id the 5.0 model code
uses as a value (a reason-code table row's refs, the refs of a ``Violation`` it raises),
found as a string constant in ``model/v5/``; an id inside a docstring's prose is no rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mqttref.model.charts import CHARTS, CHARTS_5
from mqttref.oracle.equivalence import equivalents_5
from mqttref.oracle.statements import statements

_ID = re.compile(r"MQTT-\d+(?:\.\d+)+-\d+")
MODEL = Path(__file__).resolve().parents[1] / "model"
MODEL_5 = MODEL / "v5"
LEVEL_5_MODULES = ("level5.py", "level5_publish.py", "shared_routing.py")
"""The broker model's modules that judge level-5 clients only: their ids are 5.0's."""


def chart_citations() -> set[str]:
    return {ref for chart in CHARTS_5 for ref in chart.refs}


def rule_citations(folder: Path = MODEL_5) -> set[str]:
    """Statement ids used as values (whole string constants) in the 5.0 model's code: the
    5.0 components and the broker model's level-5 modules."""
    if not folder.is_dir():
        return set()
    found: set[str] = set()
    paths = [*sorted(folder.glob("*.py")), *(MODEL / name for name in LEVEL_5_MODULES)]
    for path in paths:
        tree = ast.parse(path.read_text("utf-8"))
        # A dict key is what a table is looked up by, not what it cites: the level-5
        # renumbering (``v5/numbering.py``) maps 3.1.1's ids to the 5.0 ids it cites.
        keys = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.Dict)
                for key in node.keys if key is not None for inner in ast.walk(key)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and _ID.fullmatch(node.value) and id(node) not in keys):
                found.add(node.value)
    return found


def carried_over() -> set[str]:
    """5.0 statements requiring exactly what a 3.1.1 chart row requires
    (``oracle/statements-3.1.1-to-5.0.json``, "same" matches only): the level-independent
    rows (the QoS flows, the topic's retained message, the connection's order of packets)
    that the model runs for clients of either level."""
    cited_311 = {ref for chart in CHARTS for ref in chart.refs}
    return {five for ref in cited_311 for five in equivalents_5(ref, same_only=True)}


def observable() -> list[str]:
    """The 5.0 statements binding a server whose conformance a client can observe."""
    return [s.id for s in statements("5.0").values() if s.server_side and s.testable]


def uncited() -> list[str]:
    cited = chart_citations() | rule_citations() | carried_over()
    return [sid for sid in observable() if sid not in cited]


def summary() -> str:
    seen = observable()
    own = chart_citations() | rule_citations()
    every = own | carried_over()
    return (f"MQTT 5.0 in the model: {sum(1 for s in seen if s in every)} / {len(seen)}"
            f" server-side observable statements are cited by a chart row or model rule:"
            f" {sum(1 for s in seen if s in own)} by the 5.0 charts and rules"
            f" ({sum(1 for s in seen if s in chart_citations())} by chart rows), the others"
            f" by a level-independent 3.1.1 row or rule requiring the same.")
