"""The three pillars stay apart, and the imports between modules form no cycle.

- The model is an independent oracle: it imports only the standard library,
  attrs, its own modules and the packet *types* of ``mqttref.impl.codec.packets``.
- The implementation imports neither the model nor the conformance oracle: the
  oracle judges our broker by the same rules as anyone else's, and a model that
  shared logic with what it judges would agree with its bugs.
- No module imports another that (directly or not) imports it back, not even
  under ``TYPE_CHECKING``: a cycle is a layer that leaks, and the narrow ports
  (``typing.Protocol`` interfaces) are how a lower module names a higher one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PILLARS = {"model": ROOT / "model", "impl": ROOT / "impl", "oracle": ROOT / "oracle",
           "statecharts": ROOT / "statecharts"}
ALLOWED_THIRD_PARTY = {"attrs"}
ALLOWED_MQTTREF = {"mqttref.impl.codec.packets"}
FORBIDDEN = {"socket", "asyncio", "time", "datetime", "random", "threading", "selectors"}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (``TYPE_CHECKING`` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from package import module`` imports the module too.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("mqttref", *parts))


def modules(pillar: str) -> list[Path]:
    return sorted(PILLARS[pillar].rglob("*.py"))


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", modules("model"), ids=ids)
def test_model_module_imports_only_the_standard_library_attrs_and_packet_types(
    path: Path,
) -> None:
    for name in imports(path) - {f"mqttref.impl.codec.packets.{n}" for n in _packet_names()}:
        top = name.split(".")[0]
        if name.startswith("mqttref."):
            assert name.startswith("mqttref.model") or name in ALLOWED_MQTTREF, name
        else:
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, name
        assert top not in FORBIDDEN, f"{path.name} imports {name}: the model has no I/O or clock"


def _packet_names() -> set[str]:
    from mqttref.impl.codec import packets

    return set(vars(packets))


@pytest.mark.parametrize("path", modules("impl"), ids=ids)
def test_implementation_module_imports_neither_the_model_nor_the_oracle(path: Path) -> None:
    leaks = {name for name in imports(path)
             if name.startswith(("mqttref.model", "mqttref.oracle"))}
    assert not leaks, f"{ids(path)} imports {sorted(leaks)}"


def import_graph() -> nx.DiGraph[str]:
    """Module -> module it imports, over every mqttref module of the pillars."""
    paths = [path for pillar in PILLARS for path in modules(pillar)]
    known = {module_name(path) for path in paths}
    graph: nx.DiGraph[str] = nx.DiGraph()
    for path in paths:
        source = module_name(path)
        graph.add_node(source)
        for name in imports(path):
            if name in known and name != source:
                graph.add_edge(source, name)
    return graph


def test_no_import_cycle_even_under_type_checking() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    shown = [" -> ".join([*cycle, cycle[0]]) for cycle in sorted(cycles, key=len)[:10]]
    assert not cycles, f"{len(cycles)} import cycles, e.g.:\n" + "\n".join(shown)


def test_the_checks_would_catch_a_leak_and_a_cycle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from mqttref.impl.codec import codec\nimport asyncio\n"
                   "if TYPE_CHECKING:\n    from mqttref.oracle.probe import Probe\n")
    assert imports(bad) == {"mqttref.impl.codec", "mqttref.impl.codec.codec", "asyncio",
                            "mqttref.oracle.probe", "mqttref.oracle.probe.Probe"}
    graph: nx.DiGraph[str] = nx.DiGraph([("a", "b"), ("b", "a")])
    assert list(nx.simple_cycles(graph))
