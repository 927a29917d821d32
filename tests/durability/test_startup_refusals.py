"""``mqttref broker`` refuses a data directory it cannot use safely: exit 2, one line, no change.

Each case starts the real command. "Nothing is overwritten" is checked on
the bytes and modification times of every file in the directory, before and
after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from mqttref.impl.store.sqlite import SCHEMA_VERSION
from tests.durability.processes import (
    MQTTREF,
    WAIT,
    BrokerProcess,
    run_broker,
)
from tests.helpers.peers import restartable_port, wait_for_port

Snapshot = dict[str, tuple[bytes, int]]


def snapshot(directory: Path) -> Snapshot:
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    stderr = result.stderr
    assert result.returncode == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mqttref broker: error: ")
    for needle in needles:
        assert needle in lines[0]


def start_args(data_dir: Path) -> list[str]:
    return ["-p", str(restartable_port()), "--data-dir", str(data_dir)]


def made_database(data_dir: Path) -> Path:
    """A real database of this mqttref, with a session in it."""
    broker = BrokerProcess(data_dir).start()
    broker.stop()
    return data_dir / "mqttref.db"


def run_without_root_override(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Start the broker so that file modes apply to it even when the tests run as root."""
    command = [str(MQTTREF), "broker", *start_args(data_dir)]
    if os.geteuid() == 0:
        # root writes through any mode bits; drop that power so the mode bits count.
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed to test this as root"
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=20)


def test_a_data_directory_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "readonly"
    made_database(data_dir)
    before = snapshot(data_dir)
    data_dir.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        result = run_without_root_override(data_dir)
    finally:
        data_dir.chmod(stat.S_IRWXU)
    assert_refused(result, str(data_dir), "not writable")
    assert snapshot(data_dir) == before


def test_a_database_file_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database = made_database(data_dir)
    database.chmod(stat.S_IRUSR | stat.S_IRGRP)
    before = snapshot(data_dir)
    try:
        result = run_without_root_override(data_dir)
    finally:
        database.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert_refused(result, "mqttref.db: not writable")
    assert snapshot(data_dir) == before


def test_a_data_directory_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_bytes(b"precious")
    assert_refused(run_broker(*start_args(path)), "not a directory")
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "content",
    [
        b"\x00" * 1024 + b"definitely not SQLite",
        b"SQLite format 3\x00" + bytes(range(256)) * 16,
    ],
    ids=["garbage", "header-then-garbage"],
)
def test_a_corrupt_database_file_is_refused(tmp_path: Path, content: bytes) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "mqttref.db").write_bytes(content)
    before = snapshot(data_dir)
    assert_refused(run_broker(*start_args(data_dir)), "mqttref.db")
    after = snapshot(data_dir)
    after.pop("lock", None)  # the only file the broker makes: to take the lock
    assert after == before


def test_a_truncated_real_database_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database = made_database(data_dir)
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database.write_bytes(database.read_bytes()[: 4096 + 100])  # half a schema
    before = snapshot(data_dir)
    result = run_broker(*start_args(data_dir))
    assert_refused(result, "mqttref.db")
    assert snapshot(data_dir) == before


def test_a_database_locked_by_another_running_broker_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = BrokerProcess(data_dir).start()
    try:
        before = snapshot(data_dir)
        result = run_broker(*start_args(data_dir))
        assert_refused(result, "in use by another broker", f"process {first.pid}")
        assert snapshot(data_dir) == before
        assert (data_dir / "lock").read_text() == f"{first.pid}\n"
    finally:
        assert first.stop() == 0


def test_a_database_from_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    database = made_database(data_dir)
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 5,))
        db.commit()
    before = snapshot(data_dir)
    result = run_broker(*start_args(data_dir))
    assert_refused(result, f"schema version {SCHEMA_VERSION + 5} is newer")
    assert snapshot(data_dir) == before


def test_memory_and_data_dir_together_are_refused(tmp_path: Path) -> None:
    result = run_broker("--memory", "--data-dir", str(tmp_path / "d"))
    assert_refused(result, "--memory and --data-dir")
    assert not (tmp_path / "d").exists()


def test_the_memory_store_writes_nothing_anywhere(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    broker_port = restartable_port()
    process = subprocess.Popen([str(MQTTREF), "broker", "-p", str(broker_port), "--memory"],
                               env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(broker_port, WAIT, process=process)
        time.sleep(0.1)
    finally:
        process.terminate()
        assert process.wait(20) == 0
    assert list(home.iterdir()) == []
    assert not (tmp_path / "xdg").exists()


def test_without_options_the_broker_keeps_its_state_under_xdg_data_home(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    port = restartable_port()
    process = subprocess.Popen([str(MQTTREF), "broker", "-p", str(port)], env=env,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, WAIT, process=process)
        assert (tmp_path / "xdg" / "mqttref" / "mqttref.db").exists()
        assert (tmp_path / "xdg" / "mqttref" / "lock").read_text() == f"{process.pid}\n"
    finally:
        process.terminate()
        assert process.wait(20) == 0
