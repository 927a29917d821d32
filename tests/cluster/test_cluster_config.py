"""The ``[cluster]`` table and ``mqttref broker --cluster``: read, checked, and absent by
default, in which case the broker never loads ``nats``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mqttref.cli import build_parser
from mqttref.commands.broker import build_config
from mqttref.impl.broker.config import Config, config_from_mapping, load_config
from mqttref.impl.cluster.settings import ClusterConfig
from mqttref.impl.codec.errors import ConfigError
from tests.cluster.conftest import require_nats_server
from tests.helpers.peers import HOST, free_port, stop_process, wait_for_port


def test_the_cluster_table_sits_beside_broker_or_at_the_top_level(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[broker]\nport = 1884\n\n[cluster]\nservers = ["nats://10.0.0.1:4222"]\n'
                    'node_name = "n7"\nuser = "mqtt"\npassword = "secret"\nlease = 3\n')
    config = load_config(path)
    assert config.port == 1884
    assert config.cluster == ClusterConfig(servers=("nats://10.0.0.1:4222",), node_name="n7",
                                           user="mqtt", password="secret", lease=3)
    assert "secret" not in repr(config.cluster)
    top = config_from_mapping({"cluster": {"servers": "nats://h:1"}})
    assert top.cluster is not None
    assert top.cluster.servers == ("nats://h:1",)
    assert Config().cluster is None


@pytest.mark.parametrize(("cluster", "named"), [
    ({}, "cluster.servers"),
    ({"servers": []}, "cluster.servers"),
    ({"servers": ["http://h:1"]}, "cluster.servers"),
    ({"servers": ["nats://h:port"]}, "cluster.servers"),
    ({"servers": ["nats://h:1"], "node_name": "a.b"}, "cluster.node_name"),
    ({"servers": ["nats://h:1"], "node_name": ""}, "cluster.node_name"),
    ({"servers": ["nats://h:1"], "user": "u"}, "cluster.user"),
    ({"servers": ["nats://h:1"], "creds": "/nonexistent/x.creds"}, "cluster.creds"),
    ({"servers": ["nats://h:1"], "lease": 0}, "cluster.lease"),
    ({"servers": ["nats://h:1"], "max_pending": 0}, "cluster.max_pending"),
    ({"servers": ["nats://h:1"], "bogus": 1}, "cluster.bogus"),
])
def test_a_bad_cluster_value_names_its_key(cluster: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        config_from_mapping({"cluster": cluster})


def test_the_command_line_joins_a_cluster_and_overrides_the_file(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["broker", "--memory", "--cluster", "nats://127.0.0.1:4222",
                              "--node-name", "n1", "--cluster-lease", "2.5"])
    cluster = build_config(args).cluster
    assert cluster is not None
    assert (cluster.servers, cluster.node_name, cluster.lease) == (
        ("nats://127.0.0.1:4222",), "n1", 2.5)
    path = tmp_path / "c.toml"
    path.write_text('[cluster]\nservers = ["nats://a:1"]\nuser = "u"\npassword = "p"\n')
    args = parser.parse_args(["broker", "-c", str(path), "--cluster", "nats://b:2",
                              "--cluster", "nats://c:3"])
    cluster = build_config(args).cluster
    assert cluster is not None
    assert (cluster.servers, cluster.user) == (("nats://b:2", "nats://c:3"), "u")
    with pytest.raises(ConfigError, match="--node-name"):
        build_config(parser.parse_args(["broker", "--memory", "--node-name", "n1"]))


def test_a_bad_cluster_url_on_the_command_line_exits_2_naming_it() -> None:
    done = subprocess.run([sys.executable, "-m", "mqttref", "broker", "--memory",
                           "--cluster", "http://x"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert "cluster.servers" in done.stderr


def test_a_single_node_broker_never_imports_nats() -> None:
    program = ("import asyncio, sys\n"
               "from mqttref.impl.broker.broker import Broker\n"
               "from mqttref.impl.broker.config import Config\n"
               "async def main():\n"
               "    async with Broker(Config(port=0)):\n"
               "        pass\n"
               "asyncio.run(main())\n"
               "print(sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.')))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.strip() == "[]"


def test_a_nats_server_without_jetstream_is_a_clear_error(tmp_path: Path) -> None:
    """Retained messages and sessions live in JetStream: a node refuses to start on a
    nats-server without it, naming the cause, exit 2 (not a traceback)."""
    require_nats_server()
    port = free_port()
    with (tmp_path / "nats.log").open("wb") as log:
        server = subprocess.Popen(["nats-server", "-a", HOST, "-p", str(port)], stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=server)
        done = subprocess.run([sys.executable, "-m", "mqttref", "broker", "--memory",
                               "--cluster", f"nats://{HOST}:{port}", "-p", "0"],
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        stop_process(server)
    assert done.returncode == 2, done.stderr
    assert "no JetStream" in done.stderr
    assert "Traceback" not in done.stderr


def test_credentials_nats_refuses_are_a_clear_error(tmp_path: Path) -> None:
    """A wrong password is no outage to wait out: the node stops at once, exit 2, naming
    the keys."""
    require_nats_server()
    port = free_port()
    with (tmp_path / "nats.log").open("wb") as log:
        server = subprocess.Popen(["nats-server", "-a", HOST, "-p", str(port), "-js", "-sd",
                                   str(tmp_path / "js"), "--user", "node", "--pass", "right"],
                                  stdout=log, stderr=subprocess.STDOUT)
    config = tmp_path / "node.toml"
    try:
        wait_for_port(port, process=server)
        config.write_text(f'[cluster]\nservers = ["nats://{HOST}:{port}"]\nuser = "node"\n'
                          'password = "wrong"\n')
        done = subprocess.run([sys.executable, "-m", "mqttref", "broker", "--memory", "-c",
                               str(config), "-p", "0"],
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        stop_process(server)
    assert done.returncode == 2, done.stderr
    assert "cluster.user/password/creds" in done.stderr
    assert "Traceback" not in done.stderr
