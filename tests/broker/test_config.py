"""The configuration: sane defaults, and every bad key or value named in a ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttref.impl.broker.config import Config, config_from_mapping, load_config
from mqttref.impl.codec.errors import ConfigError


def test_defaults_follow_mosquitto_and_bad_inputs() -> None:
    config = Config()
    assert (config.host, config.port) == ("127.0.0.1", 1883)
    assert config.max_inflight == 20
    assert config.max_queued == 1000
    assert config.retry_interval == 20.0
    assert config.retry_max_interval == 300.0
    assert config.keep_alive_factor == 1.5
    assert config.max_packet_size < 268_435_455


def test_toml_file_sets_fields_at_top_level_or_under_broker(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text('port = 0\nmax_queued = 5\nretry_interval = 1\n')
    table = tmp_path / "table.toml"
    table.write_text('[broker]\nport = 0\nmax_queued = 5\nretry_interval = 1\n')
    assert load_config(top) == load_config(table)
    assert load_config(top).max_queued == 5
    assert load_config(top).retry_interval == 1.0


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"max_inflight": 0}, "max_inflight"),
        ({"max_inflight": "20"}, "max_inflight"),
        ({"max_queued": True}, "max_queued"),
        ({"port": 70000}, "port"),
        ({"retry_interval": -1}, "retry_interval"),
        ({"keep_alive_factor": 0}, "keep_alive_factor"),
        ({"allow_anonymous": "yes"}, "allow_anonymous"),
        ({"users": {"alice": 3}}, "users"),
        ({"store": "floppy"}, "store"),
        ({"no_such_key": 1}, "no_such_key"),
        ({"broker": {"port": 1}, "extra": 2}, "extra"),
    ],
)
def test_a_bad_value_raises_config_error_naming_the_key(values: dict[str, object],
                                                        key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(values)
    assert str(caught.value).startswith(f"{key}:")


def test_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_timer_tick_is_fine_enough_for_short_test_timers() -> None:
    assert Config(retry_interval=0.2).timer_tick <= 0.05
    assert Config().timer_tick == 1.0


def test_configs_are_hashable_values() -> None:
    assert hash(Config(users={"alice": "pw"})) == hash(Config(users={"alice": "pw"}))
    assert Config(users={"alice": "pw"}) != Config()
