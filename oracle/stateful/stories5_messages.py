"""Level-5 message stories: what a server owes a subscriber of each copy it forwards.

(Being written: see ``MessageStories5``.)
"""

from __future__ import annotations


class MessageStories5:
    """The level-5 message stories as rules, for a machine that is a ``StoryMachine5``."""


__all__ = ["MessageStories5"]
