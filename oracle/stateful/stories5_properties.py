"""Level-5 property stories: what a server forwards of a PUBLISH's properties, and when.

(Being written: see ``PropertyStories5``.)
"""

from __future__ import annotations


class PropertyStories5:
    """The level-5 property stories as rules, for a machine that is a ``StoryMachine5``."""


__all__ = ["PropertyStories5"]
