"""Access control lists in mosquitto's ``acl_file`` syntax. Sans-IO.

Theory of operation. An ACL file is a list of lines (mosquitto.conf(5), ``acl_file``):

- ``topic [read|write|readwrite|deny] <topic>``: a rule for the clients of the
  current block; the access word may be left out (read and write), then the rest of
  the line is the topic, which may hold ``+`` and ``#`` as a filter does;
- ``user <name>``: the ``topic`` lines after it, up to the next ``user``, are that
  user name's (the one in CONNECT, not the client id); the ``topic`` lines before
  any ``user`` line are for clients that connected without a user name;
- ``pattern [read|write|readwrite|deny] <topic>``: a rule for every client, wherever
  it stands, in which a level ``%c`` stands for the client id and ``%u`` for the user
  name; the substitution must be a whole level (``sensor/%u/data``);
- ``#`` at the start of a line makes it a comment; blank lines are skipped.

A client may read (receive) a topic name when a ``read`` or ``readwrite`` rule of
its own matches it and no ``deny`` rule does; ``write`` (publish) likewise. A
``deny`` rule beats every grant, wherever it stands. Nothing listed is no access:
with an ACL file, only what it grants is allowed.

Choices where mosquitto's text says nothing, each the safer one:

- a SUBSCRIBE filter is allowed when one read rule *covers* it (every topic the
  filter can match, the rule matches too) and no deny rule covers it; the messages
  are then checked one by one as they are delivered, so a deny rule that covers
  part of a filter withholds that part;
- ``+`` and ``#`` in a rule's first level do not match topics starting with ``$``,
  as filters do not [MQTT-4.7.2-1]: ``topic #`` grants no ``$SYS``;
- a pattern is left out for a client without a user name when it holds ``%u``, and
  a client whose client id or user name holds ``+`` or ``#`` gets no grant from any
  pattern while its deny patterns deny everything (such a name could widen a
  pattern into a wildcard: mosquitto's CVE-2017-7650);
- a malformed line (unknown keyword, a topic that is no valid filter, ``%c`` inside
  a level) stops the whole file from loading, naming the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from types import MappingProxyType
from typing import Final

import attrs


class Access(Enum):
    """What one rule says about the topics it matches."""

    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"
    DENY = "deny"

    @property
    def reads(self) -> bool:
        return self in (Access.READ, Access.READWRITE)

    @property
    def writes(self) -> bool:
        return self in (Access.WRITE, Access.READWRITE)


SUBSTITUTIONS: Final = ("%c", "%u")
_CACHE_LIMIT: Final = 1024
"""Topic names whose answer a ``ClientAcl`` remembers, per direction."""


class AclFileError(ValueError):
    """A line of an ACL file that cannot be read; ``str()`` names the source and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


@attrs.frozen
class Rule:
    """One ``topic`` or ``pattern`` line."""

    access: Access
    topic: str
    line: int = 0
    """Where it stood in the file (1-based; 0: built in code)."""

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.topic.split("/"))


def filter_problem(topic: str) -> str | None:
    """What makes ``topic`` no valid topic filter (4.7.1), or None."""
    if not topic:
        return "the topic is empty"
    if "\x00" in topic:
        return "the topic holds U+0000"
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be a whole level, the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def _matches(rule: Sequence[str], topic: Sequence[str]) -> bool:
    """Whether a rule's levels match a topic name's levels (4.7)."""
    if topic and topic[0].startswith("$") and rule and rule[0] in ("+", "#"):
        return False  # [MQTT-4.7.2-1]
    for index, level in enumerate(rule):
        if level == "#":
            return True
        if index >= len(topic):
            return False
        if level != "+" and level != topic[index]:
            return False
    return len(rule) == len(topic)


def _covers(rule: Sequence[str], filter_levels: Sequence[str]) -> bool:
    """Whether every topic name the filter matches is matched by the rule."""
    if rule[0] in ("+", "#") and filter_levels[0].startswith("$"):
        return False  # [MQTT-4.7.2-1]
    for index, level in enumerate(rule):
        if level == "#":
            return True
        if index >= len(filter_levels):
            return False
        wanted = filter_levels[index]
        if wanted == "#":
            return False  # the filter reaches deeper than this rule goes
        if level not in ("+", wanted):
            return False  # a literal level covers only itself, not '+'
    return len(rule) == len(filter_levels)


def _read_only(blocks: Mapping[str, tuple[Rule, ...]]) -> Mapping[str, tuple[Rule, ...]]:
    return MappingProxyType(dict(blocks))


@attrs.frozen
class AclFile:
    """An ACL file read: the anonymous block, each user's block, and the patterns."""

    anonymous: tuple[Rule, ...] = ()
    users: Mapping[str, tuple[Rule, ...]] = attrs.field(factory=dict, converter=_read_only)
    patterns: tuple[Rule, ...] = ()

    def for_client(self, user: str | None, client_id: str) -> ClientAcl:
        """The rules that apply to one client, its patterns filled in."""
        rules = list(self.anonymous if user is None else self.users.get(user, ()))
        unsafe = any(c in name for name in (client_id, user or "") for c in "+#")
        deny_all = False
        for rule in self.patterns:
            if user is None and "%u" in rule.levels:
                continue
            if unsafe and any(level in SUBSTITUTIONS for level in rule.levels):
                deny_all = deny_all or rule.access is Access.DENY
                continue
            levels = [client_id if level == "%c" else (user or "") if level == "%u" else level
                      for level in rule.levels]
            rules.append(Rule(rule.access, "/".join(levels), rule.line))
        return ClientAcl(tuple(rules), deny_all=deny_all)


class ClientAcl:
    """One client's rules, answering "may it read / write / subscribe to this?"."""

    __slots__ = ("_deny", "_read", "_read_cache", "_write", "_write_cache", "deny_all",
                 "rules")

    def __init__(self, rules: tuple[Rule, ...], *, deny_all: bool = False) -> None:
        self.rules = rules
        self.deny_all = deny_all
        """A deny pattern could not be filled in safely (``+`` or ``#`` in the client id
        or user name): everything is denied."""
        self._deny = tuple(r.levels for r in rules if r.access is Access.DENY)
        self._read = tuple(r.levels for r in rules if r.access.reads)
        self._write = tuple(r.levels for r in rules if r.access.writes)
        self._read_cache: dict[str, bool] = {}
        self._write_cache: dict[str, bool] = {}

    def may_read(self, topic: str) -> bool:
        """Whether a message on ``topic`` may be delivered to this client."""
        return self._decide(topic, self._read, self._read_cache)

    def may_write(self, topic: str) -> bool:
        """Whether this client may publish on ``topic`` (its will included)."""
        return self._decide(topic, self._write, self._write_cache)

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether a SUBSCRIBE to ``topic_filter`` is granted: one read rule covers it
        and no deny rule does (per message, ``may_read`` decides the rest)."""
        if self.deny_all:
            return False
        levels = topic_filter.split("/")
        if any(_covers(rule, levels) for rule in self._deny):
            return False
        return any(_covers(rule, levels) for rule in self._read)

    def _decide(self, topic: str, grants: tuple[tuple[str, ...], ...],
                cache: dict[str, bool]) -> bool:
        known = cache.get(topic)
        if known is not None:
            return known
        levels = topic.split("/")
        allowed = (not self.deny_all
                   and not any(_matches(rule, levels) for rule in self._deny)
                   and any(_matches(rule, levels) for rule in grants))
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[topic] = allowed
        return allowed


def parse_acl_file(text: str, source: str = "<acl file>") -> AclFile:
    """Every line of an ACL file, or AclFileError naming the first bad one."""
    anonymous: list[Rule] = []
    users: dict[str, list[Rule]] = {}
    patterns: list[Rule] = []
    block = anonymous
    for number, line in _lines(text):
        keyword, rest = _split(line)
        if keyword == "user":
            if not rest:
                raise AclFileError(source, number, "'user' needs a user name")
            block = users.setdefault(rest, [])
        elif keyword in ("topic", "pattern"):
            rule = _rule(rest, number, source, pattern=keyword == "pattern")
            (patterns if keyword == "pattern" else block).append(rule)
        else:
            raise AclFileError(source, number, f"unknown keyword {keyword!r} (expected "
                               "'topic', 'pattern', 'user' or a '#' comment)")
    return AclFile(tuple(anonymous), {u: tuple(r) for u, r in users.items()}, tuple(patterns))


def _lines(text: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


_ACCESS_WORDS: Final = {access.value: access for access in Access}


def _split(text: str) -> tuple[str, str]:
    """The first word and the rest, split at the first run of spaces or tabs."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _rule(rest: str, number: int, source: str, *, pattern: bool) -> Rule:
    first, remainder = _split(rest)
    access = _ACCESS_WORDS.get(first)
    if access is not None and remainder:
        topic = remainder
    else:
        access, topic = Access.READWRITE, rest
    if not topic:
        raise AclFileError(source, number, "a rule needs a topic")
    problem = filter_problem(topic)
    if problem is not None:
        raise AclFileError(source, number, f"{topic!r}: {problem}")
    if pattern:
        for level in topic.split("/"):
            if any(s in level for s in SUBSTITUTIONS) and level not in SUBSTITUTIONS:
                raise AclFileError(source, number, f"{topic!r}: %c or %u must be a whole "
                                   "level (e.g. sensor/%u/data)")
    return Rule(access, topic, number)
