"""Level-5 session stories: a session outliving its connection, and its end.

(Being written: see ``SessionStories5``.)
"""

from __future__ import annotations


class SessionStories5:
    """The level-5 session stories as rules, for a machine that is a ``StoryMachine5``."""


__all__ = ["SessionStories5"]
