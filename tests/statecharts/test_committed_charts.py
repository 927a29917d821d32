"""The committed drawings in docs/spec are the ones the model's charts produce now,
and ``mqttref charts`` writes them (with or without Graphviz)."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import pytest

from mqttref.cli import main
from mqttref.model.chart import Chart
from mqttref.model.charts import ALL_CHARTS as CHARTS
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
from tests.helpers.peers import requires_peer

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec"
NAMES = [c.name for c in CHARTS]
REGENERATE = "run '.venv/bin/mqttref charts' and commit docs/spec"
_MERMAID_BLOCK = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)


def _difference(what: str, committed: str, fresh: str) -> str:
    """The first lines where a committed file and the fresh text part, for the failure."""
    diff = difflib.unified_diff(
        committed.splitlines(), fresh.splitlines(), "committed", "generated now", lineterm=""
    )
    return f"{what} is stale ({REGENERATE}):\n" + "\n".join(list(diff)[:30])


def committed_mermaid(page: str) -> str:
    """The Mermaid text of a committed chart page (the body of its ```mermaid fence)."""
    found = _MERMAID_BLOCK.search(page)
    assert found is not None, "the page has no ```mermaid block"
    return found.group(1)


def stale_text_files(spec: Path) -> list[str]:
    """Which committed DOT, Mermaid and Markdown texts in ``spec`` differ from what the
    model's charts generate now (or are missing), each with its first differences."""
    stale: list[str] = []
    for chart in CHARTS:
        dot, page = spec / f"{chart.name}.dot", spec / f"{chart.name}.md"
        for path in (dot, page):
            if not path.is_file():
                stale.append(f"{path.name} is missing ({REGENERATE})")
        if dot.is_file() and dot.read_text(encoding="utf-8") != to_dot(chart):
            stale.append(_difference(dot.name, dot.read_text(encoding="utf-8"), to_dot(chart)))
        if page.is_file():
            text = page.read_text(encoding="utf-8")
            mermaid = _MERMAID_BLOCK.search(text)
            if mermaid is None or mermaid.group(1) != to_mermaid(chart):
                stale.append(
                    _difference(
                        f"the Mermaid drawing in {page.name}",
                        mermaid.group(1) if mermaid else "",
                        to_mermaid(chart),
                    )
                )
            elif text != to_markdown(chart):
                stale.append(_difference(page.name, text, to_markdown(chart)))
    return stale


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_committed_dot_is_what_the_model_generates_now(chart: Chart) -> None:
    committed = (SPEC / f"{chart.name}.dot").read_text(encoding="utf-8")
    fresh = to_dot(chart)
    assert committed == fresh, _difference(f"{chart.name}.dot", committed, fresh)


@pytest.mark.parametrize("chart", CHARTS, ids=NAMES)
def test_committed_mermaid_is_what_the_model_generates_now(chart: Chart) -> None:
    page = (SPEC / f"{chart.name}.md").read_text(encoding="utf-8")
    committed, fresh = committed_mermaid(page), to_mermaid(chart)
    assert committed == fresh, _difference(
        f"the Mermaid drawing in {chart.name}.md", committed, fresh
    )
    assert page == to_markdown(chart), _difference(f"{chart.name}.md", page, to_markdown(chart))


def test_written_charts_equal_the_committed_files(tmp_path: Path) -> None:
    """What ``mqttref charts`` writes (its ``write_charts``) is byte for byte what is committed,
    and docs/spec holds no drawing of a chart the model no longer has."""
    written = write_charts(CHARTS, tmp_path, svg=False)
    for path in written.files:
        committed = (SPEC / path.name).read_text(encoding="utf-8")
        fresh = path.read_text(encoding="utf-8")
        assert committed == fresh, _difference(path.name, committed, fresh)
    drawn = {p.stem for p in SPEC.glob("*.dot")} | {p.stem for p in SPEC.glob("*.svg")}
    assert drawn == set(NAMES), f"drawings without a chart: {sorted(drawn - set(NAMES))}"
    assert stale_text_files(SPEC) == []


def test_a_stale_drawing_is_found(tmp_path: Path) -> None:
    """The comparison can fail: an edited DOT file, an edited Mermaid block and a missing
    page in a copy of docs/spec are each reported."""
    copy = tmp_path / "spec"
    shutil.copytree(SPEC, copy)
    first, second, third = NAMES[:3]
    dot = copy / f"{first}.dot"
    dot.write_text(dot.read_text(encoding="utf-8").replace(" -> ", " -> X", 1), encoding="utf-8")
    page = copy / f"{second}.md"
    page.write_text(
        page.read_text(encoding="utf-8").replace(" --> ", " --> X", 1), encoding="utf-8"
    )
    (copy / f"{third}.md").unlink()
    stale = stale_text_files(copy)
    assert len(stale) == 3, stale
    assert stale[0].startswith(f"{first}.dot is stale")
    assert stale[1].startswith(f"the Mermaid drawing in {second}.md is stale")
    assert stale[2].startswith(f"{third}.md is missing")


@requires_peer("Graphviz 'dot'", dot_available(), "the SVG comparison draws with it")
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


def test_generation_is_deterministic_and_sorted() -> None:
    """Two generations give the same bytes (so docs/spec stays stable in git), and the
    Mermaid edges come sorted by source state."""
    for chart in CHARTS:
        assert to_dot(chart) == to_dot(chart)
        assert to_markdown(chart) == to_markdown(chart)
        lines = to_mermaid(chart).splitlines()
        assert lines[0] == "stateDiagram-v2"
        edges = [line for line in lines if " --> " in line and "[*]" not in line]
        assert edges == sorted(edges, key=lambda e: tuple(e.split(" --> ")[0:1]))


@requires_peer("Graphviz 'dot'", dot_available(), "mqttref charts draws SVG with it")
def test_charts_command_writes_svg_and_mermaid_for_every_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["charts", "--out", str(tmp_path)]) == 0
    for name in NAMES:
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml")
        assert "```mermaid\nstateDiagram-v2" in (tmp_path / f"{name}.md").read_text()
    assert f"wrote {3 * len(NAMES)} files" in capsys.readouterr().out


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
