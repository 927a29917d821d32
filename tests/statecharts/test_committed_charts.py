"""The committed drawings in docs/spec are the ones the model's charts produce now,
and ``mqttref charts`` writes them (with or without Graphviz)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mqttref.cli import main
from mqttref.model.chart import Chart
from mqttref.model.charts import CHARTS
from mqttref.statecharts.render import (
    dot_available,
    dot_version,
    normalise_svg,
    svg_generator,
    to_dot,
    to_markdown,
    to_mermaid,
    write_charts,
)

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec"
NAMES = [c.name for c in CHARTS]
REGENERATE = "run '.venv/bin/mqttref charts' and commit docs/spec"


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_committed_dot_and_mermaid_match_the_model(chart: Chart) -> None:
    dot = SPEC / f"{chart.name}.dot"
    page = SPEC / f"{chart.name}.md"
    assert dot.read_text(encoding="utf-8") == to_dot(chart), REGENERATE
    assert page.read_text(encoding="utf-8") == to_markdown(chart), REGENERATE


@pytest.mark.skipif(not dot_available(), reason="SVG comparison needs Graphviz 'dot'")
@pytest.mark.parametrize("name", NAMES)
def test_committed_svg_matches_when_graphviz_is_the_same_version(name: str, tmp_path: Path) -> None:
    committed = (SPEC / f"{name}.svg").read_text(encoding="utf-8")
    version = dot_version() or ""
    made_with = svg_generator(committed)
    if made_with is None or made_with not in version:
        pytest.skip(f"committed SVG made with Graphviz {made_with}, here {version}")
    write_charts([c for c in CHARTS if c.name == name], tmp_path)
    fresh = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
    assert normalise_svg(committed) == normalise_svg(fresh), REGENERATE


def test_the_index_page_shows_every_chart() -> None:
    index = (SPEC / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"({name}.md)" in index
        assert f"({name}.svg)" in index


def test_generation_is_deterministic() -> None:
    for chart in CHARTS:
        assert to_dot(chart) == to_dot(chart)
        lines = to_mermaid(chart).splitlines()
        assert lines[0] == "stateDiagram-v2"
        edges = [line for line in lines if " --> " in line and "[*]" not in line]
        assert edges == sorted(edges, key=lambda e: tuple(e.split(" --> ")[0:1]))


@pytest.mark.skipif(not dot_available(), reason="needs Graphviz 'dot'")
def test_charts_command_writes_svg_and_mermaid_for_every_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["charts", "--out", str(tmp_path)]) == 0
    for name in NAMES:
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml")
        assert "```mermaid\nstateDiagram-v2" in (tmp_path / f"{name}.md").read_text()
    assert "wrote 21 files" in capsys.readouterr().out


def test_charts_command_without_graphviz_writes_mermaid_and_says_svg_needs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    out = tmp_path / "charts"
    assert main(["charts", "--out", str(out)]) == 0
    suffixes = sorted(p.suffix for p in out.iterdir())
    assert suffixes == sorted([".dot", ".md"] * len(NAMES))
    assert re.search(r"SVG needs Graphviz", capsys.readouterr().out)


def test_charts_command_reports_an_unwritable_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["charts", "--out", str(blocker / "sub"), "--no-svg"]) == 1
    assert "cannot write" in capsys.readouterr().err
