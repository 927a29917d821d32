"""Password files (impl/auth/passwords.py) and ``mqttref passwd``: mosquitto 2.0's format,
read and written, with errors that name the line."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttref.cli import main
from mqttref.impl.auth.passwords import (
    PBKDF2_SHA512,
    SHA512,
    PasswordFileError,
    PasswordHash,
    PasswordTable,
    hash_password,
    parse_password_file,
    plain_lines_to_hashed,
)
from tests.helpers.peers import require_peer

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def mosquitto_passwd(*args: str) -> None:
    require_peer("mosquitto_passwd", Path(MOSQUITTO_PASSWD).exists(),
                 "checks the password file format against mosquitto 2.0's own tool")
    subprocess.run([MOSQUITTO_PASSWD, *args], check=True, capture_output=True, timeout=10)


def test_a_file_written_by_mosquitto_passwd_checks_its_users_passwords(tmp_path: Path) -> None:
    path = tmp_path / "passwords"
    mosquitto_passwd("-c", "-b", str(path), "alice", "wonder land")
    mosquitto_passwd("-H", "sha512", "-b", str(path), "bob", "builder")
    text = path.read_text()
    assert text.startswith("alice:$7$101$")  # the layout parsed: user:$7$<iterations>$...
    table = parse_password_file(text, str(path))
    assert table.entries["alice"].algorithm == PBKDF2_SHA512
    assert table.entries["alice"].iterations == 101
    assert len(table.entries["alice"].salt) == 12
    assert table.entries["bob"].algorithm == SHA512
    assert table.check("alice", b"wonder land")
    assert table.check("bob", b"builder")
    assert not table.check("alice", b"wonderland")
    assert not table.check("bob", b"wonder land")
    assert not table.check("carol", b"builder")
    assert not table.check("alice", None)


@settings(max_examples=20, deadline=None)
@given(password=st.binary(max_size=40), other=st.binary(max_size=40),
       algorithm=st.sampled_from([PBKDF2_SHA512, SHA512]), iterations=st.integers(1, 50))
def test_a_hash_round_trips_through_its_text_and_matches_only_its_password(
        password: bytes, other: bytes, algorithm: str, iterations: int) -> None:
    entry = hash_password(password, algorithm=algorithm, iterations=iterations)
    again = PasswordHash.from_string(entry.to_string())
    assert again == entry
    assert again.matches(password)
    assert again.matches(other) == (other == password)


@settings(max_examples=20, deadline=None)
@given(users=st.dictionaries(
    st.text(st.characters(codec="utf-8", exclude_characters=":\r\n\x00#"), min_size=1,
            max_size=12).map(str.strip).filter(bool),
    st.binary(max_size=20), max_size=4))
def test_a_table_written_as_text_reads_back_the_same(users: dict[str, bytes]) -> None:
    table = PasswordTable()
    for user, password in users.items():
        table = table.with_user(user, hash_password(password, iterations=1))
    again = parse_password_file(table.to_text())
    assert again.entries == table.entries
    for user, password in users.items():
        assert again.check(user, password)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("alice:$7$101$AAAA$BBBB\nbob\n", 1, "hash is 3 bytes"),
    ("# users\n\nbob\n", 3, "no ':'"),
    ("alice:secret\n", 1, "not hashed"),
    ("alice:$7$x$AAAA$" + "A" * 86 + "==" + "\n", 1, "iterations"),
    (":$6$AAAA$" + "A" * 86 + "==" + "\n", 1, "user name is empty"),
    ("alice:$6$AA!A$" + "A" * 86 + "==" + "\n", 1, "not base64"),
    ("alice:$6$AAAA$" + "A" * 86 + "==" + "\nalice:$6$AAAA$" + "A" * 86 + "==" + "\n", 2, "twice"),
])
def test_a_bad_line_is_an_error_naming_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PasswordFileError) as caught:
        parse_password_file(text, "pw.txt")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"pw.txt:{line}: ")
    assert words in str(caught.value)


def test_an_unknown_user_costs_as_much_as_a_wrong_password() -> None:
    """The dummy entry has the table's highest iteration count, so timing does not tell
    which user names exist."""
    table = PasswordTable({"alice": hash_password(b"pw", iterations=40_000)})

    def cost(user: str) -> float:
        start = time.perf_counter()
        for _ in range(3):
            table.check(user, b"wrong")
        return time.perf_counter() - start

    known, unknown = min(cost("alice") for _ in range(2)), min(cost("zed") for _ in range(2))
    assert unknown > known * 0.5


def test_plain_lines_are_hashed_and_hashed_ones_refused() -> None:
    hashed = plain_lines_to_hashed("# c\nalice:pw:with:colons\n", "f", iterations=2)
    table = parse_password_file(hashed)
    assert table.check("alice", b"pw:with:colons")
    with pytest.raises(PasswordFileError, match="hashed already"):
        plain_lines_to_hashed(hashed, "f")


def test_mqttref_passwd_creates_updates_and_deletes_users(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    assert main(["passwd", "-c", "-b", str(path), "alice", "one"]) == 0
    assert main(["passwd", "-b", "-I", "7", str(path), "bob", "two"]) == 0
    assert main(["passwd", "-b", str(path), "alice", "three"]) == 0
    table = parse_password_file(path.read_text())
    assert list(table.entries) == ["alice", "bob"]
    assert table.check("alice", b"three")
    assert table.check("bob", b"two")
    assert table.entries["bob"].iterations == 7
    assert path.stat().st_mode & 0o777 == 0o600
    assert main(["passwd", "-D", str(path), "alice"]) == 0
    assert list(parse_password_file(path.read_text()).entries) == ["bob"]
    assert main(["passwd", "-c", "-b", str(path), "carol", "four"]) == 0
    assert list(parse_password_file(path.read_text()).entries) == ["carol"]


def test_mqttref_passwd_hashes_a_plain_file_with_dash_u(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("alice:one\n")
    assert main(["passwd", "-U", str(path)]) == 0
    assert parse_password_file(path.read_text()).check("alice", b"one")


@pytest.mark.parametrize(("args", "code", "words"), [
    (["-b", "{f}", "alice"], 2, "only with -b"),
    (["{f}", "alice", "pw"], 2, "only with -b"),
    (["-c", "-D", "{f}", "alice"], 2, "make no sense"),
    (["-b", "{f}", "al:ice", "pw"], 2, "':'"),
    (["-b", "{f}", "alice", "pw"], 1, "does not exist"),
    (["-D", "{f}", "alice"], 1, "does not exist"),
    (["-U", "{f}", "alice"], 2, "-U takes only FILE"),
])
def test_mqttref_passwd_refuses_what_mosquitto_passwd_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int,
        words: str) -> None:
    path = tmp_path / "missing"
    assert main(["passwd", *(a.format(f=path) for a in args)]) == code
    assert words in capsys.readouterr().err
    assert not path.exists()


def test_mqttref_passwd_refuses_to_update_a_file_with_a_bad_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pw"
    path.write_text("alice:plain\n")
    assert main(["passwd", "-b", str(path), "bob", "pw"]) == 1
    assert f"{path}:1:" in capsys.readouterr().err
    assert path.read_text() == "alice:plain\n"
