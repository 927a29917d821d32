"""Which node of a cluster each client of the oracle connects to, and when it may act.

``mqttref check --broker n1:1883 --broker n2:1883 ...`` judges several nodes as one
logical broker: the model and the checks know nothing of nodes. What changes is only
*where* each connection goes and *when* a client acts after another node changed
something the whole cluster shares.

Placement. Every new connection of the oracle (the checks' clients, the janitors, the
profile learner, the model exploration's slots) goes to the next node in turn. The turn
starts afresh for each check, at a node drawn from the run's seed and the check's name,
so a check placed once is placed the same way again (``--seed``, ``--only``). A CONNECT
with a client id that connected before within the check goes to another node than that
id's last connection: a takeover or a resumed session always crosses nodes. Successive
connections are on different nodes, so the publisher and the subscriber of a check with
as many clients as there are nodes never share one.

Propagation. A cluster may acknowledge a change before every node knows it: a
subscription is in force on its own node at the SUBACK, and on the others once they
learn its interest; likewise a retained message stored, and a persistent session the
client left or resumed. The specification speaks of one Server and states no delay, so
the oracle states its own assumption: every such change is known everywhere within
``propagation`` seconds of its acknowledgement. A client on another node than the change
does not act (send, or drop its connection) before that allowance has passed; on the
node of the change it acts at once, since one node orders its own work. With a single
node nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
import zlib
from collections.abc import Iterator

import attrs

DEFAULT_PROPAGATION = 0.2
"""Seconds a cluster has, by the oracle's assumption, to make an acknowledged change known
on every node (before ``--time-multiplier``): about a hundred times what the mqttref
cluster needs on loopback (a millisecond, docs/cluster.md), to leave room for a loaded
machine."""

Address = tuple[str, int]


@attrs.define
class Nodes:
    """The nodes of the broker under test, the turn of the next connection, and the
    last acknowledged change of each node, which the others must learn."""

    addresses: tuple[Address, ...]
    propagation: float = 0.0
    """Seconds a change needs to be known on every node (0 with one node)."""
    turns: list[int] = attrs.field(init=False)
    """How many new connections each node was given (a count for the report and tests)."""
    _turn: int = 0
    _last_node: dict[str, int] = attrs.field(factory=dict)
    """Client id -> the node of its last connection within the check."""
    _changes: dict[int, float] = attrs.field(factory=dict)
    """Node -> the monotonic time of the last change of shared state acknowledged there.
    Each node's own: a change on one node does not end the allowance of an earlier
    change on another (a SUBACK on n1, then a CONNACK on n2: a client on n2 still waits
    for n1's)."""

    def __attrs_post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("a broker has at least one node")
        if len(self.addresses) == 1:
            self.propagation = 0.0
        self.turns = [0] * len(self.addresses)

    @property
    def clustered(self) -> bool:
        return len(self.addresses) > 1

    def restart(self, seed: int, name: str = "") -> None:
        """Start the turn afresh for the check ``name`` (reproducibly from ``seed``)."""
        rng = random.Random(seed ^ zlib.crc32(name.encode()))
        self._turn = rng.randrange(len(self.addresses))
        self._last_node.clear()
        self._changes.clear()

    def take_turn(self) -> int:
        """The node of the next new connection."""
        node = self._turn % len(self.addresses)
        self._turn += 1
        self.turns[node] += 1
        return node

    def for_client(self, client_id: str | None, node: int) -> int:
        """The node for a CONNECT of ``client_id`` on a connection to ``node``: another
        one than this client id's last connection, when it had one. An empty client id
        is a new client each time [MQTT-3.1.3-6]."""
        if not client_id:
            return node
        last = self._last_node.get(client_id)
        if last == node and self.clustered:
            node = self.take_turn()
            if node == last:
                node = self.take_turn()
        self._last_node[client_id] = node
        return node

    def changed(self, node: int) -> None:
        """A change of shared state was acknowledged on ``node`` just now."""
        if self.clustered:
            self._changes[node] = time.monotonic()

    def wait_before(self, node: int) -> float:
        """Seconds a client on ``node`` must still wait for every change acknowledged on
        another node to be known there."""
        latest = max((at for other, at in self._changes.items() if other != node),
                     default=None)
        if latest is None:
            return 0.0
        return max(0.0, latest + self.propagation - time.monotonic())

    async def propagated(self, node: int) -> None:
        """Wait (asyncio) until the changes of the other nodes are known on ``node``."""
        delay = self.wait_before(node)
        if delay > 0:
            await asyncio.sleep(delay)

    def propagated_blocking(self, node: int) -> None:
        """Wait (blocking: the exploration's driver) until the changes of the other nodes
        are known on ``node``."""
        delay = self.wait_before(node)
        if delay > 0:
            time.sleep(delay)

    def describe(self) -> str:
        names = ", ".join(f"{host}:{port}" for host, port in self.addresses)
        if not self.clustered:
            return names
        return (f"{len(self.addresses)} nodes ({names}), clients placed in turn, a change"
                f" known everywhere within {self.propagation:.2f}s assumed")


_NODES: contextvars.ContextVar[Nodes | None] = contextvars.ContextVar("mqttref_nodes",
                                                                      default=None)


def current() -> Nodes | None:
    """The nodes of the run in progress (None: the one address each caller names)."""
    return _NODES.get()


def clustered() -> Nodes | None:
    """The run's nodes when there are several, else None."""
    nodes = _NODES.get()
    return nodes if nodes is not None and nodes.clustered else None


@contextlib.contextmanager
def use(nodes: Nodes | None) -> Iterator[Nodes | None]:
    """Make ``nodes`` the run's within the block (``asyncio.run`` and a forked
    exploration inherit it)."""
    token = _NODES.set(nodes)
    try:
        yield nodes
    finally:
        _NODES.reset(token)


def new_check(seed: int, name: str) -> None:
    """The turn of the nodes starts afresh: called as each check starts."""
    nodes = clustered()
    if nodes is not None:
        nodes.restart(seed, name)
