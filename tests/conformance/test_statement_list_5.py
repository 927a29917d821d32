"""The MQTT 5.0 statement list is complete, well-formed, and mends the specification's own slips."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources

import pytest

from mqttref.oracle import statements as statements_module
from mqttref.oracle.statements import cited, judgeable, lookup, normalise_id, statements

V5 = "5.0"

# Appendix B of the OASIS Standard of 7 March 2019 has one table row per statement: 5 rows in
# chapter 1, 7 in chapter 2, 175 in chapter 3, 60 in chapter 4 and 4 in chapter 6 (chapters 5
# and 7 have none). Counted row by row; every id the body tags appears in that table.
APPENDIX_B_ROWS = {1: 5, 2: 7, 3: 175, 4: 60, 6: 4}

# Appendix B words these wrongly; their text is the body's and appendix_text keeps the slip.
BROKEN_IN_APPENDIX_B = {"MQTT-3.1.2-27", "MQTT-3.1.3-1", "MQTT-3.1.3-10", "MQTT-3.2.2-18",
                        "MQTT-3.3.1-10", "MQTT-3.3.1-11"}


def _records() -> list[dict[str, object]]:
    """The raw records, so that a duplicate id cannot hide behind the loader's dict."""
    text = resources.files(statements_module.__package__).joinpath("statements-5.0.json")
    records: list[dict[str, object]] = json.loads(text.read_text("utf-8"))["statements"]
    return records


def test_appendix_b_of_5_0_has_251_statements() -> None:
    assert len(statements(V5)) == sum(APPENDIX_B_ROWS.values()) == 251


def test_no_id_appears_twice_in_the_5_0_data() -> None:
    ids = [record["id"] for record in _records()]
    assert [sid for sid, n in Counter(ids).items() if n > 1] == []


@pytest.mark.parametrize(("chapter", "rows"), sorted(APPENDIX_B_ROWS.items()))
def test_each_chapter_has_as_many_statements_as_appendix_b_rows(chapter: int, rows: int) -> None:
    in_chapter = [sid for sid in statements(V5) if sid.startswith(f"MQTT-{chapter}.")]
    assert len(in_chapter) == rows


def test_every_5_0_id_is_well_formed_and_already_normalised() -> None:
    for sid in statements(V5):
        assert re.fullmatch(r"MQTT-\d+\.\d+\.\d+-\d+", sid), sid
        assert normalise_id(sid) == sid


def test_statements_come_in_section_order_with_4_2_0_1_after_4_1_0_2() -> None:
    """Appendix B prints MQTT-4.2.0-1 between MQTT-4.1.0-1 and MQTT-4.1.0-2; the list sorts it."""
    ids = list(statements(V5))
    assert ids == sorted(ids, key=lambda sid: tuple(int(n) for n in re.findall(r"\d+", sid)))
    assert ids.index("MQTT-4.1.0-2") + 1 == ids.index("MQTT-4.2.0-1")


@pytest.mark.parametrize(
    ("printed", "normalised"),
    [("[MQTT-4.2-1]", "MQTT-4.2.0-1"), ("MQTT-4.2-1", "MQTT-4.2.0-1"),
     ("T-3.2.2-8", "MQTT-3.2.2-8"), ("mqtt-4.13.1-1", "MQTT-4.13.1-1"),
     ("[MQTT-3.3.1-10]", "MQTT-3.3.1-10")],
)
def test_ids_as_the_5_0_specification_prints_them_find_their_statement(
        printed: str, normalised: str) -> None:
    assert lookup(printed, V5).id == normalised


def test_the_two_ids_the_5_0_body_misprints_keep_their_printed_spelling() -> None:
    printed = {s.id: s.appendix_id for s in statements(V5).values() if s.appendix_id}
    assert printed == {"MQTT-4.2.0-1": "MQTT-4.2-1", "MQTT-3.2.2-8": "T-3.2.2-8"}
    for sid in printed:
        assert "prints" in statements(V5)[sid].note


def test_statements_appendix_b_words_wrongly_carry_the_body_text_and_keep_the_slip() -> None:
    mended = {s.id for s in statements(V5).values() if s.appendix_text}
    assert mended == BROKEN_IN_APPENDIX_B
    for sid in mended:
        statement = statements(V5)[sid]
        assert statement.text != statement.appendix_text
        assert "Appendix B" in statement.note
        assert "body" in statement.note


def test_retain_handling_1_sends_retained_messages_only_for_a_new_subscription() -> None:
    """Appendix B swaps the two cases of MQTT-3.3.1-10; the body (3.3.1.3) is normative."""
    statement = lookup("MQTT-3.3.1-10", V5)
    assert "did not already exist, the Server MUST send" in statement.text
    assert statement.appendix_text is not None
    assert "did already exist, the Server MUST send" in statement.appendix_text


def test_will_properties_come_second_in_the_connect_payload() -> None:
    """Appendix B's MQTT-3.1.3-1 still lists 3.1.1's fields, without Will Properties."""
    statement = lookup("MQTT-3.1.3-1", V5)
    assert "Client Identifier, Will Properties, Will Topic, Will Payload" in statement.text
    assert "Will Properties" not in (statement.appendix_text or "")


def test_every_untestable_5_0_statement_says_why() -> None:
    assert [s.id for s in statements(V5).values() if not s.testable and not s.note] == []


def test_a_statement_binding_only_the_client_is_never_testable_on_a_server() -> None:
    assert [s.id for s in statements(V5).values() if s.binds == "client" and s.testable] == []


def test_196_statements_let_a_client_judge_a_server() -> None:
    """251 = 196 judgeable (116 server, 80 both) + 49 client-only + 6 no client can observe:
    MQTT-3.1.4-2 (the target's own policy), MQTT-4.2.0-1 (transport), MQTT-4.7.3-3 (cannot be
    broken) and the WebSocket statements MQTT-6.0.0-1, -2, -4."""
    table = statements(V5)
    assert len(judgeable(set(table), V5)) == 196
    unobservable = {s.id for s in table.values() if s.server_side and not s.testable}
    assert unobservable == {"MQTT-3.1.4-2", "MQTT-4.2.0-1", "MQTT-4.7.3-3",
                            "MQTT-6.0.0-1", "MQTT-6.0.0-2", "MQTT-6.0.0-4"}


def test_every_5_0_statement_but_two_is_worded_with_must() -> None:
    """MQTT-3.1.2-12 gives Will QoS's range and MQTT-3.8.3-4 names a Protocol Error instead."""
    without_must = [s.id for s in statements(V5).values() if "MUST" not in s.text]
    assert without_must == ["MQTT-3.1.2-12", "MQTT-3.8.3-4"]


def test_texts_are_plain_sentences_without_conversion_debris() -> None:
    for statement in statements(V5).values():
        for text in (statement.text, statement.appendix_text or ""):
            assert text.isascii(), statement.id
            assert not re.search(r"\\|\s\s|\n", text), statement.id


def test_notes_cite_only_statements_of_5_0() -> None:
    """A note pointing a client-side statement at the server's reaction must name a 5.0 id."""
    table = statements(V5)
    for statement in table.values():
        assert [sid for sid in cited(statement.note) if sid not in table] == [], statement.id


@pytest.mark.parametrize(
    ("sid", "binds", "testable"),
    [("MQTT-3.1.0-2", "server", True),   # a second CONNECT is a Protocol Error
     ("MQTT-3.1.2-4", "both", True),     # Clean Start 1 discards the Session on both sides
     ("MQTT-3.1.2-20", "client", False),  # the Client sends PINGREQ
     ("MQTT-3.3.4-6", "client", False),   # no Subscription Identifier from a Client
     ("MQTT-3.8.3-3", "server", True),   # No Local
     ("MQTT-4.13.1-1", "server", True),  # a Server closes on a Malformed Packet
     ("MQTT-6.0.0-4", "server", False)],  # WebSocket subprotocol "mqtt"
)
def test_well_known_5_0_statements_bind_whom_the_body_says(
        sid: str, binds: str, testable: bool) -> None:
    statement = statements(V5)[sid]
    assert (statement.binds, statement.testable) == (binds, testable)


def test_the_3_1_1_list_still_loads_by_default_and_unchanged() -> None:
    default = statements()
    assert default == statements("3.1.1")
    assert len(default) == 141
    assert {s.appendix_id for s in default.values() if s.appendix_id} == {"MQTT-3.1.2.7",
                                                                          "MQTT-3-8.3-4"}
    assert all(s.appendix_text is None for s in default.values())


def test_one_id_names_different_statements_in_3_1_1_and_5_0() -> None:
    assert "Retained messages" in lookup("MQTT-3.1.2-7").text
    assert "Will Message MUST be stored" in lookup("MQTT-3.1.2-7", V5).text
    with pytest.raises(KeyError):
        lookup("MQTT-4.13.1-1")


def test_a_protocol_without_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no statement list for MQTT 3\.1$"):
        statements("3.1")
