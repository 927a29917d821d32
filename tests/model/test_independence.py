"""The model is an independent oracle: it imports only the standard library,
attrs, its own modules and the packet *types* of ``mqttref.impl.packets``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "model"
ALLOWED_THIRD_PARTY = {"attrs"}
ALLOWED_MQTTREF = {"mqttref.impl.packets"}
FORBIDDEN = {"socket", "asyncio", "time", "datetime", "random", "threading", "selectors"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(MODEL.glob("*.py")), ids=lambda p: p.name)
def test_model_module_imports_only_the_standard_library_attrs_and_packet_types(
    path: Path,
) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if name.startswith("mqttref."):
            assert name.startswith("mqttref.model") or name in ALLOWED_MQTTREF, name
        else:
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, name
        assert top not in FORBIDDEN, f"{path.name} imports {name}: the model has no I/O or clock"


def test_the_check_would_catch_an_implementation_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from mqttref.impl.codec import encode\nimport asyncio\n")
    assert imports(bad) == {"mqttref.impl.codec", "asyncio"}
