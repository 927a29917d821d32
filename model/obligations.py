"""The record of something owed, shared by the 3.1.1 broker model and the 5.0 components.

Kept apart from ``records`` so that the 5.0 components (which ``records`` names
for the level-5 bookkeeping) need not import ``records`` back.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Obligation:
    """Something the specification requires of the server that has not arrived."""

    client: str
    what: str
    refs: tuple[str, ...]
