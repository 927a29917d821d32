"""The normative statements of MQTT 3.1.1 and 5.0 (Appendix B), kept as data.

Each list lives next to this module as ``statements-<protocol>.json``: one
record per statement with its text, whom it binds and whether a client can
observe a server's conformance to it. The specifications print a few ids with
typos (3.1.1's Appendix B: ``MQTT-3.1.2.7``, ``MQTT-3-8.3-4``; 5.0's body:
``MQTT-4.2-1``, ``T-3.2.2-8``); records carry the normalised id and keep the
printed one as ``appendix_id`` so that either spelling finds the statement.
Where 5.0's Appendix B words a statement wrongly (cut short, reversed, or
another statement's text), ``text`` is the body's sentence and
``appendix_text`` keeps what Appendix B prints.
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

PROTOCOLS = ("3.1.1", "5.0")
"""The protocol versions with a statement list."""

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
    """The id as the specification prints it (Appendix B or body) when it carries a typo."""
    appendix_text: str | None = None
    """Appendix B's wording, kept where ``text`` had to come from the body instead."""

    @property
    def server_side(self) -> bool:
        """Binds the server: part of the denominator of the coverage figure."""
        return self.binds != "client"

    @property
    def sort_key(self) -> tuple[int, ...]:
        return _section_key(self.id)


@cache
def statements(protocol: str = "3.1.1") -> Mapping[str, Statement]:
    """Every normative statement of MQTT ``protocol``, keyed by normalised id, in spec order."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"no statement list for MQTT {protocol}")
    name = f"statements-{protocol}.json"
    records = json.loads(resources.files(__package__).joinpath(name).read_text("utf-8"))
    table = {
        record["id"]: Statement(
            id=record["id"],
            text=record["text"],
            binds=record["binds"],
            testable=record["testable"],
            note=record.get("note", ""),
            appendix_id=record.get("appendix_id"),
            appendix_text=record.get("appendix_text"),
        )
        for record in records["statements"]
    }
    return dict(sorted(table.items(), key=lambda item: item[1].sort_key))


@cache
def _printed(protocol: str) -> Mapping[str, str]:
    """Typo ids as printed (upper-cased, without brackets) -> the normalised id.

    Needed because some printed forms (5.0's ``MQTT-4.2-1``) have too few parts
    for :func:`normalise_id` to mend.
    """
    return {s.appendix_id.upper(): s.id for s in statements(protocol).values() if s.appendix_id}


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
    """The statement named by ``raw`` in any spelling; ``KeyError`` if unknown.

    A spelling the specification itself printed (``appendix_id``) is found even
    when it cannot be normalised.
    """
    printed = _printed(protocol).get(raw.strip().strip("[]").strip().upper())
    return statements(protocol)[printed or normalise_id(raw)]
