"""The installed ``mqttref`` command and the installed distribution (issue 2, packaging).

The command is run as a newcomer would, through the console script that pip
put next to the interpreter running the tests (``.venv/bin/mqttref``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from mqttref.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
MQTTREF = Path(sys.executable).parent / "mqttref"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MQTTREF), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def available_subcommands() -> list[str]:
    """Subcommands whose module exists today (the cli offers one once it lands)."""
    parser = build_parser()
    actions = [  # argparse: no public accessor
        a for a in parser._actions
        if a.dest == "command" and isinstance(a, argparse._SubParsersAction)
    ]
    return sorted(actions[0].choices) if actions else []


def test_the_console_script_is_installed() -> None:
    assert MQTTREF.is_file(), f"{MQTTREF} missing: install with pip install -e ."


def test_version_prints_the_package_version_and_exits_0() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mqttref {version('mqttref')}"


def test_python_dash_m_mqttref_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "mqttref", "--version"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"mqttref {version('mqttref')}"


def test_help_lists_every_available_subcommand_and_exits_0() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: mqttref")
    for name in available_subcommands():
        assert name in result.stdout


@pytest.mark.parametrize(
    "args", [["frobnicate"], ["--frobnicate"], ["-Z"], ["--version=3"]],
    ids=["unknown-subcommand", "unknown-long-option", "unknown-short-option", "bad-value"],
)
def test_a_bad_argument_exits_2_with_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mqttref: error:")


@pytest.mark.parametrize("name", [n for n in SUBCOMMANDS if n in available_subcommands()])
def test_a_bad_option_of_a_subcommand_exits_2_with_one_line(name: str) -> None:
    result = run(name, "--no-such-option-anywhere")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0]


@pytest.mark.parametrize("name", [n for n in SUBCOMMANDS if n in available_subcommands()])
def test_each_subcommand_has_help(name: str) -> None:
    result = run(name, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: mqttref {name}")


# ---------------------------------------------------------------- the distribution


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the source tree, so the build leaves nothing behind."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("src", "impl", "model", "oracle", "statecharts"):
        shutil.copytree(ROOT / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("mqttref-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_installs_only_the_mqttref_package(wheel: zipfile.ZipFile) -> None:
    """Nothing with a generic name (a bare ``model``, ``impl``) lands in site-packages."""
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"mqttref", f"mqttref-{version('mqttref')}.dist-info"}
    dist_info = f"mqttref-{version('mqttref')}.dist-info"
    top_level = wheel.read(f"{dist_info}/top_level.txt").decode().split()
    assert top_level == ["mqttref"]


def test_the_wheel_carries_the_model_impl_oracle_and_statecharts_under_mqttref(
    wheel: zipfile.ZipFile,
) -> None:
    names = set(wheel.namelist())
    for package in ("impl", "impl/codec", "impl/broker", "model", "oracle", "statecharts"):
        assert f"mqttref/{package}/__init__.py" in names
    assert "mqttref/impl/codec/codec.py" in names
    assert "mqttref/oracle/statements-3.1.1.json" in names
    assert "mqttref/py.typed" in names


def test_the_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    dist_info = f"mqttref-{version('mqttref')}.dist-info"
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "mqttref = mqttref.cli:main" in entry_points
