"""The normative statements of MQTT 3.1.1 (Appendix B), kept as data.

The list lives in ``statements-3.1.1.json`` next to this module: one record
per statement with its text, whom it binds and whether a client can observe a
server's conformance to it. Appendix B prints two ids with typos
(``MQTT-3.1.2.7``, ``MQTT-3-8.3-4``); records carry the normalised id and keep
the printed one as ``appendix_id`` so that either spelling finds the statement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import attrs

Binds = Literal["server", "client", "both"]

_ID = re.compile(r"^\[?MQTT[-.](\d+)[-.](\d+)[-.](\d+)[-.](\d+)\]?$", re.IGNORECASE)


def normalise_id(raw: str) -> str:
    """``[MQTT-3-8.3-4]``, ``MQTT-3.1.2.7`` or ``mqtt-3.1.2-7`` -> ``MQTT-x.y.z-n``.

    Raises ``ValueError`` for text that is not a statement id at all.
    """
    match = _ID.match(raw.strip())
    if match is None:
        raise ValueError(f"not a normative statement id: {raw!r}")
    chapter, section, sub, number = (int(part) for part in match.groups())
    return f"MQTT-{chapter}.{section}.{sub}-{number}"


def _section_key(statement_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", statement_id))


@attrs.frozen
class Statement:
    """One normative statement of the specification."""

    id: str
    text: str
    binds: Binds
    testable: bool
    """Whether a client can observe a server's conformance to it (black-box)."""
    note: str = ""
    """Why it is not testable, or how a client-side statement is still observed."""
    appendix_id: str | None = None
    """The id as printed in Appendix B when it carries a typo."""

    @property
    def server_side(self) -> bool:
        """Binds the server: part of the denominator of the coverage figure."""
        return self.binds != "client"

    @property
    def sort_key(self) -> tuple[int, ...]:
        return _section_key(self.id)


@cache
def statements(protocol: str = "3.1.1") -> Mapping[str, Statement]:
    """Every normative statement of ``protocol``, keyed by normalised id, in spec order."""
    if protocol != "3.1.1":
        raise ValueError(f"no statement list for MQTT {protocol}")
    text = resources.files(__package__).joinpath("statements-3.1.1.json").read_text("utf-8")
    records = json.loads(text)["statements"]
    table = {
        record["id"]: Statement(
            id=record["id"],
            text=record["text"],
            binds=record["binds"],
            testable=record["testable"],
            note=record.get("note", ""),
            appendix_id=record.get("appendix_id"),
        )
        for record in records
    }
    return dict(sorted(table.items(), key=lambda item: item[1].sort_key))


_CITED = re.compile(r"\[(MQTT-[0-9.-]+)\]", re.IGNORECASE)


def cited(message: str) -> tuple[str, ...]:
    """The statement ids a message cites as ``[MQTT-x.y.z-n]``, normalised, in order."""
    found: list[str] = []
    for raw in _CITED.findall(message):
        try:
            sid = normalise_id(raw)
        except ValueError:
            continue
        if sid not in found:
            found.append(sid)
    return tuple(found)


def judgeable(ids: tuple[str, ...] | set[str], protocol: str = "3.1.1") -> tuple[str, ...]:
    """Those of ``ids`` a client can judge the server on: known, server-side, testable.

    A statement that binds only the client, or that no client can observe, can
    never be FAIL (nor PASS) for a server, whatever a check's message cites.
    """
    table = statements(protocol)
    return tuple(sid for sid in ids
                 if sid in table and table[sid].server_side and table[sid].testable)


def lookup(raw: str, protocol: str = "3.1.1") -> Statement:
    """The statement named by ``raw`` in any spelling; ``KeyError`` if unknown."""
    return statements(protocol)[normalise_id(raw)]
