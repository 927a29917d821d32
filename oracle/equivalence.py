"""Which MQTT 5.0 statements require what a MQTT 3.1.1 statement requires.

The two specifications number their statements independently: one id can
name different rules (MQTT-3.1.2-4 is CleanSession 0 in 3.1.1, Clean Start 1
in 5.0) and one rule can carry different ids (UTF-8's MQTT-1.5.3-1 became
MQTT-1.5.4-1). Carrying the level-independent rules of the 3.1.1 model and
checks over to 5.0 therefore needs a table read off the two texts, kept as
data beside the statement lists in ``statements-3.1.1-to-5.0.json``.

Each 3.1.1 statement has one row: the 5.0 ids and how far they match.
``same`` means 5.0 requires it of the same party under the same condition,
possibly as a superset (a Reason Code, a DISCONNECT before the close, a duty
split over several ids, a party widened to both); ``partial`` means 5.0 keeps
part of it or narrows it, and the row's note says which part, so a check may
be carried over only after reading it; ``none`` means no 5.0 statement
requires it (3.1.1's CONNACK return codes, for one). The table is checked
against both statement lists when it is loaded, so a row citing an id that
does not exist, or a 3.1.1 statement left out, fails at first use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Literal, cast, get_args

import attrs

from .statements import Statement, lookup, statements

Match = Literal["same", "partial", "none"]

MATCHES: tuple[Match, ...] = get_args(Match)
"""The kinds of match, strongest first."""

DATA = "statements-3.1.1-to-5.0.json"
"""The table's file, next to this module."""


@attrs.frozen
class Equivalence:
    """One 3.1.1 statement and the 5.0 statements that carry its requirement."""

    id_3_1_1: str
    ids_5_0: tuple[str, ...]
    match: Match
    note: str = ""
    """What differs (same, partial) or why 5.0 has no counterpart (none)."""


class EquivalenceError(ValueError):
    """The table contradicts the statement lists or its own rules."""


_PARTIES = {"server": frozenset({"server"}), "client": frozenset({"client"}),
            "both": frozenset({"server", "client"})}


def _row(record: Mapping[str, object], v311: Mapping[str, Statement],
         v5: Mapping[str, Statement]) -> Equivalence:
    sid = record.get("id_3_1_1")
    if not isinstance(sid, str) or sid not in v311:
        raise EquivalenceError(f"{sid!r} is not a MQTT 3.1.1 statement")
    raw_ids = record.get("ids_5_0")
    if not isinstance(raw_ids, list) or not all(isinstance(i, str) for i in raw_ids):
        raise EquivalenceError(f"{sid}: ids_5_0 must be a list of statement ids")
    ids = tuple(cast(list[str], raw_ids))
    unknown = [i for i in ids if i not in v5]
    if unknown:
        raise EquivalenceError(f"{sid}: {', '.join(unknown)} is not a MQTT 5.0 statement")
    if len(set(ids)) != len(ids):
        raise EquivalenceError(f"{sid}: a 5.0 id is listed twice")
    match = record.get("match")
    if match not in MATCHES:
        raise EquivalenceError(f"{sid}: match {match!r} is not one of {', '.join(MATCHES)}")
    note = record.get("note", "")
    if not isinstance(note, str):
        raise EquivalenceError(f"{sid}: the note must be text")
    if match == "none" and ids:
        raise EquivalenceError(f"{sid}: a 'none' match lists 5.0 ids")
    if match != "none" and not ids:
        raise EquivalenceError(f"{sid}: a {match!r} match lists no 5.0 id")
    if match != "same" and not note.strip():
        raise EquivalenceError(f"{sid}: a {match!r} match needs a note saying why")
    _check_parties(v311[sid], [v5[i] for i in ids], match)
    return Equivalence(id_3_1_1=sid, ids_5_0=ids, match=match, note=note)


def _check_parties(old: Statement, new: Sequence[Statement], match: Match) -> None:
    """The same-party rule: a 5.0 id never binds only a party the 3.1.1 one leaves alone,
    and a ``same`` match binds, taken together, at least every party 3.1.1 binds."""
    bound = _PARTIES[old.binds]
    for statement in new:
        if not _PARTIES[statement.binds] & bound:
            raise EquivalenceError(
                f"{old.id} binds the {old.binds}; {statement.id} binds the {statement.binds}")
    covered = frozenset[str]().union(*(_PARTIES[s.binds] for s in new))
    if match == "same" and not bound <= covered:
        raise EquivalenceError(
            f"{old.id} binds {old.binds}; its 'same' 5.0 ids bind only {sorted(covered)}")


def parse(records: Sequence[Mapping[str, object]], v311: Mapping[str, Statement],
          v5: Mapping[str, Statement]) -> dict[str, Equivalence]:
    """The table's rows keyed by 3.1.1 id, in 3.1.1's order; ``EquivalenceError`` when a row
    breaks a rule or a 3.1.1 statement has no row or two."""
    rows: dict[str, Equivalence] = {}
    for record in records:
        row = _row(record, v311, v5)
        if row.id_3_1_1 in rows:
            raise EquivalenceError(f"{row.id_3_1_1} has two rows")
        rows[row.id_3_1_1] = row
    missing = [sid for sid in v311 if sid not in rows]
    if missing:
        raise EquivalenceError(f"no row for {', '.join(missing)}")
    return {sid: rows[sid] for sid in v311}


@cache
def table() -> Mapping[str, Equivalence]:
    """Every 3.1.1 statement's row, keyed by its id, in spec order."""
    text = resources.files(__package__).joinpath(DATA).read_text("utf-8")
    records = json.loads(text)["map"]
    return parse(records, statements("3.1.1"), statements("5.0"))


def equivalence(id_311: str) -> Equivalence:
    """The row of the 3.1.1 statement named in any spelling; ``KeyError`` if unknown."""
    return table()[lookup(id_311, "3.1.1").id]


def equivalents_5(id_311: str, *, same_only: bool = False) -> tuple[str, ...]:
    """The 5.0 ids requiring what 3.1.1's ``id_311`` requires; empty when 5.0 has none.

    With ``same_only`` a partial match counts as none: for carrying a 3.1.1
    check over unchanged, where only a full match keeps its verdict honest.
    """
    row = equivalence(id_311)
    return () if same_only and row.match != "same" else row.ids_5_0


def equivalents_311(id_5: str, *, same_only: bool = False) -> tuple[str, ...]:
    """The 3.1.1 ids whose requirement 5.0's ``id_5`` carries, in 3.1.1's order.

    Empty for a statement new in 5.0. ``KeyError`` if ``id_5`` names no 5.0
    statement.
    """
    sid = lookup(id_5, "5.0").id
    return tuple(row.id_3_1_1 for row in table().values()
                 if sid in row.ids_5_0 and (row.match == "same" or not same_only))
