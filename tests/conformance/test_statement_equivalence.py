"""Each MQTT 3.1.1 statement is mapped once to the MQTT 5.0 statements requiring the same thing.

The structural rules are checked on the raw JSON records, so that a duplicate
row cannot hide behind the loader's dict; the spot checks were read off the
two statement texts by hand.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources
from typing import Any

import pytest

from mqttref.oracle import equivalence as equivalence_module
from mqttref.oracle.equivalence import (
    EquivalenceError,
    equivalence,
    equivalents_5,
    equivalents_311,
    parse,
    table,
)
from mqttref.oracle.statements import cited, statements

V311 = statements("3.1.1")
V5 = statements("5.0")
PARTIES = {"server": {"server"}, "client": {"client"}, "both": {"server", "client"}}


def _records() -> list[dict[str, Any]]:
    text = resources.files(equivalence_module.__package__).joinpath(equivalence_module.DATA)
    records: list[dict[str, Any]] = json.loads(text.read_text("utf-8"))["map"]
    return records


# -- the table covers 3.1.1 exactly and cites only real 5.0 statements ---------------------------

def test_every_3_1_1_statement_is_mapped_exactly_once() -> None:
    counts = Counter(record["id_3_1_1"] for record in _records())
    assert [sid for sid, n in counts.items() if n > 1] == []
    assert set(counts) == set(V311)
    assert len(counts) == 141


def test_every_5_0_id_the_table_cites_is_a_5_0_statement() -> None:
    cited = {sid for record in _records() for sid in record["ids_5_0"]}
    assert cited - set(V5) == set()


def test_a_same_or_partial_match_cites_a_5_0_statement_and_none_cites_nothing() -> None:
    for record in _records():
        if record["match"] == "none":
            assert record["ids_5_0"] == [], record["id_3_1_1"]
        else:
            assert record["match"] in {"same", "partial"}, record["id_3_1_1"]
            assert record["ids_5_0"], record["id_3_1_1"]


def test_a_partial_or_missing_match_says_why_in_one_line() -> None:
    for record in _records():
        if record["match"] != "same":
            assert record["note"].strip(), record["id_3_1_1"]
        assert "\n" not in record["note"], record["id_3_1_1"]


def test_an_id_a_note_cites_in_brackets_is_a_5_0_statement() -> None:
    """Notes cite 5.0 ids as [MQTT-x.y.z-n], readable by statements.cited(); 3.1.1's go bare."""
    for record in _records():
        note = record["note"]
        assert len(cited(note)) == note.count("[MQTT-"), record["id_3_1_1"]
        assert set(cited(note)) <= set(V5), record["id_3_1_1"]


def test_a_5_0_id_binds_a_party_the_3_1_1_statement_binds() -> None:
    """No 5.0 client rule stands for a 3.1.1 server rule, nor the reverse."""
    for record in _records():
        bound = PARTIES[V311[record["id_3_1_1"]].binds]
        for sid in record["ids_5_0"]:
            assert PARTIES[V5[sid].binds] & bound, (record["id_3_1_1"], sid)


def test_a_same_match_binds_every_party_3_1_1_binds() -> None:
    """Binds equal, or 5.0 binds both where 3.1.1 bound one party (or splits it over ids)."""
    for record in _records():
        if record["match"] != "same":
            continue
        covered = set().union(*(PARTIES[V5[sid].binds] for sid in record["ids_5_0"]))
        assert PARTIES[V311[record["id_3_1_1"]].binds] <= covered, record["id_3_1_1"]


def _plain(text: str) -> str:
    """5.0 writes 'MQTT Control Packet' and 'packet' where 3.1.1 wrote 'Control Packet'."""
    text = text.lower().replace("mqtt control packet", "packet").replace("control packet", "packet")
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def test_a_sentence_5_0_kept_word_for_word_is_a_same_match_to_that_statement() -> None:
    by_text: dict[str, list[str]] = {}
    for sid, statement in V5.items():
        by_text.setdefault(_plain(statement.text), []).append(sid)
    verbatim = {sid: by_text[_plain(statement.text)] for sid, statement in V311.items()
                if _plain(statement.text) in by_text}
    assert len(verbatim) >= 25
    for sid, ids in verbatim.items():
        assert table()[sid].match == "same", sid
        assert set(ids) <= set(table()[sid].ids_5_0), sid


# -- spot checks read off the two texts --------------------------------------------------------

@pytest.mark.parametrize(("id_311", "ids_5", "match"), [
    # QoS 1: the sender's three duties (new id, PUBLISH QoS 1 DUP 0, unacknowledged until PUBACK)
    ("MQTT-4.3.2-1", ("MQTT-4.3.2-1", "MQTT-4.3.2-2", "MQTT-4.3.2-3"), "same"),
    ("MQTT-4.3.2-2", ("MQTT-4.3.2-4", "MQTT-4.3.2-5"), "same"),
    ("MQTT-4.3.3-2", ("MQTT-4.3.3-8", "MQTT-4.3.3-10", "MQTT-4.3.3-11", "MQTT-4.3.3-12"), "same"),
    # topic names and filters: 3.1.1's 4.7.1-x moved down one clause in 5.0
    ("MQTT-4.7.1-1", ("MQTT-4.7.0-1",), "same"),
    ("MQTT-4.7.1-2", ("MQTT-4.7.1-1",), "same"),
    ("MQTT-4.7.1-3", ("MQTT-4.7.1-2",), "same"),
    ("MQTT-4.7.2-1", ("MQTT-4.7.2-1",), "same"),
    ("MQTT-4.7.3-4", ("MQTT-4.7.3-4",), "same"),
    # UTF-8: 1.5.3-x became 1.5.4-x; the receiver's close became 5.0's Malformed Packet handling
    ("MQTT-1.5.3-1", ("MQTT-1.5.4-1", "MQTT-4.13.1-1"), "partial"),
    ("MQTT-1.5.3-2", ("MQTT-1.5.4-2", "MQTT-4.13.1-1"), "partial"),
    ("MQTT-1.5.3-3", ("MQTT-1.5.4-3",), "same"),
    # ordering: the client's rules keep their ids, the two server rules swap theirs
    ("MQTT-4.6.0-2", ("MQTT-4.6.0-2",), "same"),
    ("MQTT-4.6.0-4", ("MQTT-4.6.0-4",), "same"),
    ("MQTT-4.6.0-5", ("MQTT-4.6.0-6",), "partial"),
    ("MQTT-4.6.0-6", ("MQTT-4.6.0-5",), "partial"),
    # fixed-header flags
    ("MQTT-2.2.2-1", ("MQTT-2.1.3-1",), "same"),
    ("MQTT-3.6.1-1", ("MQTT-3.6.1-1",), "same"),
    ("MQTT-3.10.1-1", ("MQTT-3.10.1-1",), "same"),
    # one id, two meanings: 3.1.1's CleanSession 1 is 5.0's MQTT-3.1.2-4 (Clean Start 1)
    ("MQTT-3.1.2-6", ("MQTT-3.1.2-4", "MQTT-4.1.0-2"), "partial"),
    ("MQTT-3.1.2-4", ("MQTT-3.1.2-5", "MQTT-3.1.2-6", "MQTT-3.1.2-23"), "partial"),
    # 5.0 adds a DISCONNECT 0x8E before closing the session taken over
    ("MQTT-3.1.4-2", ("MQTT-3.1.4-3",), "same"),
    # 5.0's Reason Codes replaced 3.1.1's CONNACK return codes
    ("MQTT-3.1.3-9", ("MQTT-3.1.3-8",), "partial"),
    ("MQTT-3.2.2-6", (), "none"),
    ("MQTT-3.1.3-8", (), "none"),
    # 5.0 allows a Password without a User Name
    ("MQTT-3.1.2-22", (), "none"),
    # the transport rule, one statement per party in 3.1.1, one for both in 5.0
    ("MQTT-7.1.1-1", ("MQTT-4.2.0-1",), "same"),
    ("MQTT-7.1.2-1", ("MQTT-4.2.0-1",), "same"),
])
def test_hand_checked_rows(id_311: str, ids_5: tuple[str, ...], match: str) -> None:
    row = equivalence(id_311)
    assert (row.ids_5_0, row.match) == (ids_5, match)


def test_the_same_id_in_both_lists_is_not_taken_for_the_same_rule() -> None:
    """MQTT-3.1.2-4 is CleanSession 0 in 3.1.1 and Clean Start 1 in 5.0."""
    assert "MQTT-3.1.2-4" not in equivalents_5("MQTT-3.1.2-4")
    assert equivalents_311("MQTT-3.1.2-4") == ("MQTT-3.1.2-6",)


# -- the lookups ------------------------------------------------------------------------------

def test_equivalents_311_is_the_inverse_of_equivalents_5() -> None:
    for id_5 in V5:
        expected = tuple(sid for sid in V311 if id_5 in equivalents_5(sid))
        assert equivalents_311(id_5) == expected, id_5


def test_a_statement_new_in_5_0_has_no_3_1_1_equivalent() -> None:
    assert equivalents_311("MQTT-3.3.2-8") == ()  # a Topic Alias of 0


def test_the_protocol_error_close_of_5_0_carries_3_1_1s_protocol_violation_rule() -> None:
    assert "MQTT-4.8.0-1" in equivalents_311("MQTT-4.13.1-1")
    assert "MQTT-4.8.0-1" not in equivalents_311("MQTT-4.13.1-1", same_only=True)


def test_same_only_drops_a_partial_match() -> None:
    assert equivalents_5("MQTT-3.14.4-3") == ("MQTT-3.14.4-3",)
    assert equivalents_5("MQTT-3.14.4-3", same_only=True) == ()
    assert equivalents_5("MQTT-3.14.4-1", same_only=True) == ("MQTT-3.14.4-2",)


def test_a_misprinted_3_1_1_id_finds_its_row() -> None:
    """Appendix B of 3.1.1 prints MQTT-3-8.3-4 for MQTT-3.8.3-4."""
    assert equivalents_5("[MQTT-3-8.3-4]") == equivalents_5("MQTT-3.8.3-4")


def test_an_id_neither_list_knows_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        equivalents_5("MQTT-9.9.9-9")
    with pytest.raises(KeyError):
        equivalents_311("MQTT-7.0.0-1")  # a 3.1.1 id: 5.0's Appendix B has no chapter 7
    with pytest.raises(KeyError):
        equivalents_5("MQTT-3.1.2-30")  # 3.1.1 stops at MQTT-3.1.2-24


# -- the loader refuses a table that breaks the rules -----------------------------------------

def _broken(change: str) -> list[dict[str, Any]]:
    records = [dict(record, ids_5_0=list(record["ids_5_0"])) for record in _records()]
    by_id = {record["id_3_1_1"]: record for record in records}
    if change == "a row twice":
        records.append(dict(by_id["MQTT-3.12.4-1"]))
    elif change == "a row missing":
        records.remove(by_id["MQTT-3.12.4-1"])
    elif change == "an unknown 5.0 id":
        by_id["MQTT-3.12.4-1"]["ids_5_0"] = ["MQTT-3.12.4-2"]
    elif change == "none with ids":
        by_id["MQTT-3.12.4-1"]["match"] = "none"
    elif change == "same without ids":
        by_id["MQTT-3.2.2-6"]["match"] = "same"
    elif change == "partial without a note":
        by_id["MQTT-3.14.4-3"]["note"] = ""
    elif change == "a client rule for a server rule":
        by_id["MQTT-3.12.4-1"]["ids_5_0"] = ["MQTT-3.1.0-1"]
    elif change == "same narrowed to one party":
        by_id["MQTT-4.8.0-1"]["match"] = "same"
    return records


@pytest.mark.parametrize(("change", "complaint"), [
    ("a row twice", "MQTT-3.12.4-1 has two rows"),
    ("a row missing", "no row for MQTT-3.12.4-1"),
    ("an unknown 5.0 id", "MQTT-3.12.4-2 is not a MQTT 5.0 statement"),
    ("none with ids", "a 'none' match lists 5.0 ids"),
    ("same without ids", "a 'same' match lists no 5.0 id"),
    ("partial without a note", "MQTT-3.14.4-3: a 'partial' match needs a note"),
    ("a client rule for a server rule", "MQTT-3.1.0-1 binds the client"),
    ("same narrowed to one party", r"its 'same' 5.0 ids bind only \['server'\]"),
])
def test_the_loader_refuses_a_table_with(change: str, complaint: str) -> None:
    assert len(parse(_records(), V311, V5)) == 141  # the unbroken table loads
    with pytest.raises(EquivalenceError, match=complaint):
        parse(_broken(change), V311, V5)


def test_match_counts() -> None:
    """The figures the report gives; a change to the table must update them knowingly."""
    assert Counter(row.match for row in table().values()) == {
        "same": 101, "partial": 28, "none": 12}
