"""The fault corpus that measures the oracle's power: one broken broker per entry.

It holds the faults the stateful machine hunts (``faults.FAULTS``, monkeypatches
of the in-process broker) and more, made on the wire by ``fault_proxy`` or by
further monkeypatches, until every testable server statement has a fault that
breaks it. Each fault declares:

- ``breaks``: the statements the broken broker violates, each of which
  ``mqttref check`` must FAIL (recall) and never PASS;
- ``cascades``: statements it also violates as a consequence, each with the
  reason; a FAIL there is right, and counted as such for precision, but not
  required.

A FAIL on any other statement is a false alarm of the oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tests.stateful import faults as hunted
from tests.stateful import patch_faults, wire_faults
from tests.stateful.fault_proxy import Rewrite
from tests.stateful.faults import Patcher


@attrs.frozen
class OracleFault:
    name: str
    part: str
    breaks: tuple[str, ...]
    inject: Callable[[Patcher], None] | None = None
    rewrite: Rewrite | None = None
    cascades: Mapping[str, str] = attrs.field(factory=dict)
    """Statement -> why the fault breaks it too."""


def _declared(fault: Any) -> tuple[str, ...]:
    breaks = fault.breaks
    return (breaks,) if isinstance(breaks, str) else tuple(breaks)


HUNTED: tuple[OracleFault, ...] = tuple(
    OracleFault(f.name, f.part, _declared(f), inject=f.inject,
                cascades=dict(getattr(f, "cascades", {})))
    for f in hunted.FAULTS
)

WIRE: tuple[OracleFault, ...] = tuple(
    OracleFault(name, part, breaks, rewrite=rewrite,
                cascades=wire_faults.CASCADES.get(name, {}))
    for part, table in (("wire: what the broker sends or accepts", wire_faults.SENDING),
                        ("wire: a violation the broker never sees", wire_faults.SWALLOWING))
    for name, (breaks, rewrite) in table.items()
)
"""Faults made by rewriting frames in a proxy in front of the unbroken broker."""

PATCHED: tuple[OracleFault, ...] = tuple(
    OracleFault(name, "broker patch", breaks, inject=inject,
                cascades=patch_faults.CASCADES.get(name, {}))
    for name, (breaks, inject) in patch_faults.PATCHED.items()
)
"""Further monkeypatches of the in-process broker, not hunted by the state machine."""

ORACLE_FAULTS: tuple[OracleFault, ...] = HUNTED + WIRE + PATCHED


def by_name(name: str) -> OracleFault:
    for fault in ORACLE_FAULTS:
        if fault.name == name:
            return fault
    raise KeyError(name)
