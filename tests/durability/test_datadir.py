"""The data directory: where it is by default, and one broker per directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqttref.impl.store import StoreError
from mqttref.impl.store.datadir import DataDirectory, default_data_dir, resolve_data_dir


def test_the_default_is_mqttref_under_xdg_data_home() -> None:
    env = {"XDG_DATA_HOME": "/srv/data", "HOME": "/home/u"}
    assert default_data_dir(env) == Path("/srv/data/mqttref")


def test_without_xdg_data_home_the_default_is_under_local_share() -> None:
    assert default_data_dir({"HOME": "/home/u"}) == Path("/home/u/.local/share/mqttref")


def test_a_relative_xdg_data_home_is_ignored_as_the_specification_says() -> None:
    env = {"XDG_DATA_HOME": "relative/dir", "HOME": "/home/u"}
    assert default_data_dir(env) == Path("/home/u/.local/share/mqttref")


def test_an_explicit_data_dir_wins_and_is_made_absolute(tmp_path: Path) -> None:
    assert resolve_data_dir(str(tmp_path / "d"), {"XDG_DATA_HOME": "/x"}) == tmp_path / "d"
    assert resolve_data_dir("rel").is_absolute()
    assert resolve_data_dir(None, {"XDG_DATA_HOME": "/x"}) == Path("/x/mqttref")


def test_acquiring_creates_the_directory_and_writes_the_owner_pid(tmp_path: Path) -> None:
    directory = DataDirectory(tmp_path / "new" / "dir")
    directory.acquire()
    try:
        assert directory.path.is_dir()
        assert directory.lock_path.read_text() == ""  # the owner is written once accepted
        directory.write_owner()
        assert directory.lock_path.read_text() == f"{os.getpid()}\n"
    finally:
        directory.release()


def test_a_second_holder_is_refused_and_the_first_holders_pid_stays(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from mqttref.impl.store.datadir import DataDirectory\n"
         "d = DataDirectory(Path(sys.argv[1])); d.acquire(); d.write_owner()\n"
         "print('held', flush=True); time.sleep(60)\n",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        lock = tmp_path / "lock"
        before = lock.read_bytes()
        with pytest.raises(StoreError, match=f"in use by another broker .process {holder.pid}"):
            DataDirectory(tmp_path).acquire()
        assert lock.read_bytes() == before == f"{holder.pid}\n".encode()
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the lock with the killed holder: the directory is free again.
    directory = DataDirectory(tmp_path)
    directory.acquire()
    directory.release()


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("mine")
    with pytest.raises(StoreError, match="not a directory"):
        DataDirectory(path).acquire()
    assert path.read_text() == "mine"
