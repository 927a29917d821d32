"""Topic matching, indexed: two tries over topic levels.

``FilterTree`` holds subscriptions (filter -> client id -> granted QoS) and
answers "who is subscribed to this topic name?" by walking only the branches
the name can reach: the literal level, ``+`` and ``#``. ``TopicTree`` holds the
known topic names (each with its topic server) and answers the opposite
question, "which known topics does this filter match?", which a new
subscription needs to find its topic servers and retained messages.

Both walk with an explicit stack, never recursion, so a filter of 65,000
levels costs time in proportion to its length and no stack (CVE-2019-11779).
Both apply the ``$`` rule: a filter starting with a wildcard does not match a
topic name starting with ``$`` [MQTT-4.7.2-1].
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from mqttref.impl.codec.packets import QoS

T = TypeVar("T")

MULTI_LEVEL = "#"
SINGLE_LEVEL = "+"
SHARED_PREFIX = "$share/"
"""How a shared subscription's filter starts, ``$share/{ShareName}/{filter}`` (4.8.2):
with shared subscriptions on, such a filter is its group's (``shared.py``), and what a
session's ordinary filters give a topic name leaves it out."""


def topic_matches(topic_filter: str, topic_name: str) -> bool:
    """Whether one valid filter matches one valid topic name (4.7); no index needed.

    The registry uses it to rebuild a topic server from stored subscriptions and
    to recompute one client's highest granted QoS on a topic.
    """
    if topic_name.startswith("$") and topic_filter[:1] in (MULTI_LEVEL, SINGLE_LEVEL):
        return False  # [MQTT-4.7.2-1]
    filter_levels = topic_filter.split("/")
    name_levels = topic_name.split("/")
    for index, level in enumerate(filter_levels):
        if level == MULTI_LEVEL:
            return True  # also the parent level: "a/#" matches "a" [MQTT-4.7.1-2]
        if index >= len(name_levels):
            return False
        if level not in (SINGLE_LEVEL, name_levels[index]):
            return False
    return len(filter_levels) == len(name_levels)


def is_shared(topic_filter: str, *, shared_subscriptions: bool) -> bool:
    """Whether a filter is a shared subscription's, delivered through its group (4.8.2)
    and not by topic servers: one starting ``$share/`` while the broker has them (the
    ``shared_subscriptions`` key); with them off it is an ordinary filter."""
    return shared_subscriptions and topic_filter.startswith(SHARED_PREFIX)


class _FilterNode:
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _FilterNode] = {}
        self.subscribers: dict[str, QoS] = {}


class FilterTree:
    """Subscriptions indexed by filter level: topic name -> subscribers in O(depth)."""

    def __init__(self) -> None:
        self._root = _FilterNode()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, client_id: str, qos: QoS) -> None:
        """Add or replace one client's subscription to one filter [MQTT-3.8.4-3]."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _FilterNode()
            node = child
        if client_id not in node.subscribers:
            self._count += 1
        node.subscribers[client_id] = qos

    def remove(self, topic_filter: str, client_id: str) -> bool:
        """Remove one subscription; prune emptied branches. False if there was none."""
        path: list[tuple[_FilterNode, str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.subscribers.pop(client_id, None) is None:
            return False
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.subscribers or child.children:
                break
            del parent.children[level]
        return True

    def match(self, topic_name: str) -> dict[str, QoS]:
        """Every subscriber of a topic name, once, at its highest granted QoS [MQTT-3.3.5-1]."""
        levels = topic_name.split("/")
        depth_end = len(levels)
        dollar = topic_name.startswith("$")
        found: dict[str, QoS] = {}
        stack: list[tuple[_FilterNode, int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            children = node.children
            wildcards_allowed = not (dollar and depth == 0)  # [MQTT-4.7.2-1]
            if wildcards_allowed:
                multi = children.get(MULTI_LEVEL)
                if multi is not None:
                    _merge(found, multi.subscribers)
            if depth == depth_end:
                _merge(found, node.subscribers)
                continue
            if wildcards_allowed:
                single = children.get(SINGLE_LEVEL)
                if single is not None:
                    stack.append((single, depth + 1))
            literal = children.get(levels[depth])
            if literal is not None:
                stack.append((literal, depth + 1))
        return found


def _merge(found: dict[str, QoS], subscribers: dict[str, QoS]) -> None:
    for client_id, qos in subscribers.items():
        previous = found.get(client_id)
        if previous is None or qos > previous:
            found[client_id] = qos


class _TopicNode(Generic[T]):
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[str, _TopicNode[T]] = {}
        self.value: T | None = None


class TopicTree(Generic[T]):
    """Known topic names with one value each (a topic server), matchable by filter."""

    def __init__(self) -> None:
        self._root: _TopicNode[T] = _TopicNode()
        self._by_name: dict[str, T] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, topic_name: str) -> bool:
        return topic_name in self._by_name

    def get(self, topic_name: str) -> T | None:
        return self._by_name.get(topic_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def values(self) -> list[T]:
        return list(self._by_name.values())

    def set(self, topic_name: str, value: T) -> None:
        node = self._root
        for level in topic_name.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _TopicNode()
            node = child
        node.value = value
        self._by_name[topic_name] = value

    def remove(self, topic_name: str) -> None:
        if self._by_name.pop(topic_name, None) is None:
            return
        path: list[tuple[_TopicNode[T], str]] = []
        node = self._root
        for level in topic_name.split("/"):
            path.append((node, level))
            node = node.children[level]
        node.value = None
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.value is not None or child.children:
                break
            del parent.children[level]

    def match(self, topic_filter: str) -> Iterator[T]:
        """Values of every known topic name the filter matches (4.7), each once."""
        levels = topic_filter.split("/")
        depth_end = len(levels)
        stack: list[tuple[_TopicNode[T], int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == depth_end:
                if node.value is not None:
                    yield node.value
                continue
            level = levels[depth]
            if level == MULTI_LEVEL:
                if node.value is not None and depth > 0:
                    yield node.value  # the parent level [MQTT-4.7.1-2]
                yield from self._subtree(node, skip_dollar=depth == 0)
            elif level == SINGLE_LEVEL:
                for name, child in node.children.items():
                    if depth == 0 and name.startswith("$"):
                        continue  # [MQTT-4.7.2-1]
                    stack.append((child, depth + 1))
            else:
                literal = node.children.get(level)
                if literal is not None:
                    stack.append((literal, depth + 1))

    @staticmethod
    def _subtree(start: _TopicNode[T], *, skip_dollar: bool) -> Iterator[T]:
        stack = [
            child
            for name, child in start.children.items()
            if not (skip_dollar and name.startswith("$"))
        ]
        while stack:
            node = stack.pop()
            if node.value is not None:
                yield node.value
            stack.extend(node.children.values())
