"""``mqttref check`` argument handling and exit codes (2: bad arguments or unreachable)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers.peers import free_port


def mqttref_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mqttref", "check", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:", ":1883", "127.0.0.1:99999",
                                     "127.0.0.1:port"])
def test_a_broker_address_that_is_not_host_port_exits_2_with_one_line(address: str) -> None:
    result = mqttref_check("--broker", address)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "HOST:PORT" in result.stderr


def test_an_unreachable_broker_exits_2_with_one_clear_line() -> None:
    port = free_port()  # nothing listens there
    result = mqttref_check("--broker", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"mqttref check: cannot connect to 127.0.0.1:{port}")


def test_only_with_an_unknown_statement_exits_2() -> None:
    result = mqttref_check("--broker", "127.0.0.1:1", "--only", "MQTT-9.9.9-9")
    assert result.returncode == 2
    assert "no check covers MQTT-9.9.9-9" in result.stderr


def test_only_with_text_that_is_not_an_id_exits_2() -> None:
    result = mqttref_check("--broker", "127.0.0.1:1", "--only", "connect-rules")
    assert result.returncode == 2
    assert "not a normative statement id" in result.stderr


def test_a_protocol_the_oracle_does_not_judge_is_refused_as_a_bad_argument() -> None:
    result = mqttref_check("--broker", "127.0.0.1:1", "--protocol", "4")
    assert result.returncode == 2
    assert "--protocol" in result.stderr


def test_only_one_statement_against_mosquitto_prints_its_verdict_and_exits_0(
        mosquitto: int) -> None:
    result = mqttref_check("--broker", f"127.0.0.1:{mosquitto}", "--protocol", "3.1.1",
                           "--only", "MQTT-3.1.0-2")
    assert result.returncode == 0, result.stdout
    assert result.stderr == ""  # no progress display when stderr is not a terminal
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("PASS") and "MQTT-3.1.0-2" in line for line in lines)
    assert lines[-1] == "1 checked, 1 passed, 0 failed"


def test_a_budget_too_small_for_any_check_reports_not_run(mosquitto: int) -> None:
    result = mqttref_check("--broker", f"127.0.0.1:{mosquitto}", "--protocol", "3.1.1",
                           "--budget", "1", "--only", "MQTT-3.1.0-2")
    assert result.returncode == 0
    assert re.search(r"^NOT RUN +MQTT-3\.1\.0-2 +second_connect_closes: budget exhausted$",
                     result.stdout, re.MULTILINE), result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0 checked, 0 passed, 0 failed"


def test_protocol_all_judges_3_1_1_then_5_0_with_a_report_each(
        mosquitto: int, tmp_path: Path) -> None:
    """``--protocol all``: the same statement id is judged in each version's numbering,
    one report after the other, with totals; JSON and JUnit carry both reports."""
    result = mqttref_check("--broker", f"127.0.0.1:{mosquitto}", "--protocol", "all",
                           "--only", "MQTT-3.1.0-2", "--no-exploration",
                           "--json", str(tmp_path / "v.json"), "--junit", str(tmp_path / "v.xml"))
    assert result.returncode == 0, result.stdout
    lines = result.stdout.strip().splitlines()
    headers = [line for line in lines if line.startswith("mqttref check: MQTT")]
    assert [h.split()[3] for h in headers] == ["3.1.1", "5.0"]
    assert lines[-1] == "all protocols: 2 checked, 2 passed, 0 failed"
    reports = json.loads((tmp_path / "v.json").read_text("utf-8"))["reports"]
    assert [r["protocol"] for r in reports] == ["3.1.1", "5.0"]
    suites = ET.parse(tmp_path / "v.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["mqttref-check MQTT 3.1.1",
                                               "mqttref-check MQTT 5.0"]


def test_protocol_all_with_only_leaves_out_a_version_without_such_a_statement(
        mosquitto: int) -> None:
    """MQTT-2.3.1-1 (a non-zero packet id) has no statement of that id in MQTT 5.0
    (where packet ids are 2.2.1): with ``--only`` a version with nothing chosen is
    left out, not reported empty."""
    result = mqttref_check("--broker", f"127.0.0.1:{mosquitto}", "--protocol", "all",
                           "--only", "MQTT-2.3.1-1", "--no-exploration")
    assert result.returncode == 0, result.stdout
    headers = [line for line in result.stdout.splitlines()
               if line.startswith("mqttref check: MQTT")]
    assert [h.split()[3] for h in headers] == ["3.1.1"]
    assert "all protocols" not in result.stdout


@pytest.mark.external
def test_by_default_a_broker_refusing_5_0_is_judged_at_3_1_1_only_with_a_line_saying_how(
        aedes: int, tmp_path: Path) -> None:
    """The default (``--protocol all``) judges each level the broker accepts. aedes answers
    a 5.0 CONNECT with a 3.1.1 CONNACK 0x01, the refusal a 3.1.1 server owes an unsupported
    level [MQTT-3.1.2-2]: it is judged at 3.1.1 alone, and the run says how 5.0 was refused
    instead of failing it on every 5.0 statement."""
    result = mqttref_check("--broker", f"127.0.0.1:{aedes}", "--only", "MQTT-3.1.0-2",
                           "--no-exploration", "--json", str(tmp_path / "v.json"),
                           "--junit", str(tmp_path / "v.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (f"mqttref check: MQTT 5.0 not judged: 127.0.0.1:{aedes} does not"
                        " accept a 5.0 CONNECT (a 3.1.1 CONNACK, return code 0x01"
                        " unacceptable protocol version)")
    headers = [line for line in lines if " broker at " in line]
    assert [h.split()[3] for h in headers] == ["3.1.1"]
    assert lines[-1] == "1 checked, 1 passed, 0 failed"
    written = json.loads((tmp_path / "v.json").read_text("utf-8"))
    assert [r["protocol"] for r in written["reports"]] == ["3.1.1"]
    assert written["refused"] == [{"protocol": "5.0", "how": "a 3.1.1 CONNACK, return code"
                                   " 0x01 unacceptable protocol version"}]
    suites = ET.parse(tmp_path / "v.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["mqttref-check MQTT 3.1.1",
                                               "mqttref-check MQTT 5.0"]
    skipped = suites[1].find("properties/property[@name='skipped']")
    assert skipped is not None
    assert "0x01 unacceptable" in str(skipped.get("value"))
