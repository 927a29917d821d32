"""``require_peer``: a missing peer skips its test, or fails it under MQTTREF_REQUIRE_PEERS=1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.peers import REQUIRE_PEERS, require_peer, requires_peer

REPO = Path(__file__).resolve().parents[1]


def test_an_available_peer_neither_skips_nor_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_PEERS, "1")
    require_peer("mosquitto", True, "never shown")


def test_a_missing_peer_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_PEERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"aedes is missing: Node\.js runs it"):
        require_peer("aedes", False, "Node.js runs it")


@pytest.mark.parametrize("value", ["0", "", "yes"])
def test_only_the_value_1_requires_peers(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(REQUIRE_PEERS, value)
    with pytest.raises(pytest.skip.Exception):
        require_peer("node", False, "why")


def test_a_missing_peer_fails_naming_it_when_peers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_PEERS, "1")
    with pytest.raises(pytest.fail.Exception, match=r"Graphviz 'dot' is missing: draws SVG"):
        require_peer("Graphviz 'dot'", False, "draws SVG")


def test_the_mark_carries_what_the_hook_needs() -> None:
    mark = requires_peer("npm", False, "installs aedes").mark
    assert mark.name == "requires_peer"
    assert mark.kwargs == {"name": "npm", "available": False, "why": "installs aedes"}


def _run(tmp_path: Path, source: str, *, required: bool) -> subprocess.CompletedProcess[str]:
    """pytest on one test file in ``tmp_path`` whose conftest is this repository's
    tests/conftest.py (its hooks imported), outside the repository's own test tree."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_peer_skips.py").write_text(source, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "MQTTREF_PROFILE": "dev"}
    if required:
        env[REQUIRE_PEERS] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rfEs",
            "--rootdir",
            str(tmp_path),
            "test_peer_skips.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SOURCE = """
import pytest
from tests.helpers.peers import requires_peer

@requires_peer("mosquitto", False, "the test runs against it")
def test_marked() -> None:
    pass

@pytest.mark.skipif(True, reason="mosquitto-clients is not installed")
def test_plain_skipif() -> None:
    pass

@pytest.mark.skipif(True, reason="needs MQTTREF_PROFILE=thorough")
def test_not_a_peer() -> None:
    pass
"""


def test_marks_and_plain_peer_skips_fail_only_when_peers_are_required(tmp_path: Path) -> None:
    """The mark, and (as a backstop) a plain skip whose reason says a peer is missing,
    fail under MQTTREF_REQUIRE_PEERS=1; a skip that is not about a peer still skips."""
    relaxed = _run(tmp_path, SOURCE, required=False)
    assert "3 skipped" in relaxed.stdout, relaxed.stdout
    strict = _run(tmp_path, SOURCE, required=True)
    assert "1 skipped, 2 errors" in strict.stdout, strict.stdout
    assert "mosquitto is missing: the test runs against it" in strict.stdout
    assert "mosquitto-clients is not installed (MQTTREF_REQUIRE_PEERS=1" in strict.stdout
