"""How ``mqttref broker`` picks its store: disk by default, memory when asked, keys checked."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mqttref.commands import broker as command
from mqttref.impl.broker.config import Config, config_from_mapping
from mqttref.impl.codec.errors import ConfigError
from mqttref.impl.store import MemoryStore, SQLiteStore, open_store


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    command.register(subparsers.add_parser)
    return parser.parse_args(["broker", *argv])


def test_the_command_keeps_state_on_disk_by_default() -> None:
    config = command.build_config(parse())
    assert (config.store, config.data_dir, config.store_sync) == ("sqlite", None, "normal")


def test_memory_keeps_nothing_on_disk() -> None:
    assert command.build_config(parse("--memory")).store == "memory"


def test_data_dir_names_the_directory(tmp_path: Path) -> None:
    config = command.build_config(parse("--data-dir", str(tmp_path)))
    assert (config.store, config.data_dir) == ("sqlite", str(tmp_path))


def test_a_config_file_may_choose_memory_or_fsync(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_text('store = "memory"\n')
    assert command.build_config(parse("-c", str(path))).store == "memory"
    path.write_text('store_sync = "full"\ndata_dir = "/srv/mqttref"\n')
    config = command.build_config(parse("-c", str(path)))
    assert (config.store, config.store_sync, config.data_dir) == ("sqlite", "full", "/srv/mqttref")


def test_memory_and_data_dir_contradict_each_other(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--memory and --data-dir"):
        command.build_config(parse("--memory", "--data-dir", str(tmp_path)))


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"store": "disk"}, "store"),
        ({"store_sync": "sometimes"}, "store_sync"),
        ({"data_dir": ""}, "data_dir"),
        ({"data_dir": 7}, "data_dir"),
    ],
)
def test_bad_store_keys_name_themselves(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}: "):
        config_from_mapping(values)


def test_an_embedded_broker_keeps_memory_as_its_default() -> None:
    # In-process brokers (tests, embedding) must not write into the user's data directory.
    assert Config().store == "memory"
    assert isinstance(open_store(Config().store), MemoryStore)


def test_open_store_touches_nothing_until_the_broker_opens_it(tmp_path: Path) -> None:
    store = open_store("sqlite", str(tmp_path / "later"), "full")
    assert isinstance(store, SQLiteStore)
    assert store.synchronous == "FULL"
    assert not (tmp_path / "later").exists()
