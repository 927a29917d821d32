"""Who owns each client id's session in the cluster: the decisions, without I/O.

Theory of operation. Every node holds a lease: a key of its own in a JetStream
key-value bucket whose entries age out after ``lease`` seconds (the bucket's
TTL), refreshed every third of a lease while the node can reach NATS. The key's
value is the node's *incarnation*, a token drawn at each start, so a node that
was killed and started again under the same name does not inherit the leases of
its previous life: those sessions were never handed over.

Each client id with a session on some node has an owner record in another bucket:
``client id -> (node, incarnation)``, changed only by compare-and-set on the
record's revision, so that two nodes that take the same client id at once cannot
both win. An owner is *live* while its node's lease key holds its incarnation.

A CONNECT on node B for a client id that node A owns (``decide_claim``):

- nobody owns it: create the record (fails if someone else just did: read again);
- B owns it already: nothing to do;
- A's lease has run out (killed, cut off, or started again): replace A's record;
- A is live: ask A to release the client id (it closes the connection there, with
  DISCONNECT 0x8E at 5.0 [MQTT-3.1.4-2], writes what it holds and forgets the
  session), then replace the record once A answers. An A that nobody answers for
  (no connection to NATS: killed before its lease ran out) is gone at once; one that
  is connected but silent is asked again for up to a lease, then treated as gone.

The orphans of a dead node (``orphans``) are the records that name an
incarnation no lease holds any more: a live node takes each by compare-and-set,
and publishes the will its client left or keeps its persistent session for it.

Everything here takes the time as ``now`` and returns what to do; the NATS calls
are in ``impl/cluster/claims.py`` and ``impl/cluster/wills.py``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping

import attrs

LEASE_REFRESHES = 3
"""Refreshes per lease: a node whose refresh is late by less than two thirds of a
lease keeps it."""


@attrs.frozen
class NodeId:
    """One node in one life: its configured name and the incarnation drawn at start."""

    name: str
    incarnation: str

    @classmethod
    def fresh(cls, name: str) -> NodeId:
        """This start of node ``name``: a new incarnation, unlike any before."""
        return cls(name, secrets.token_hex(8))

    def encode(self) -> bytes:
        return json.dumps({"node": self.name, "incarnation": self.incarnation}).encode()

    @classmethod
    def decode(cls, data: bytes) -> NodeId:
        """An owner record's value; ValueError when it is not one."""
        try:
            fields = json.loads(data)
            return cls(str(fields["node"]), str(fields["incarnation"]))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an owner record: {data[:80]!r}") from exc


@attrs.frozen
class OwnerRecord:
    """An owner record as read: who owns the client id, at which revision of the key."""

    owner: NodeId
    revision: int


# What to do next about a claim ------------------------------------------------------------


@attrs.frozen
class Create:
    """Nobody owns the client id: create the record (compare-and-set on absence)."""


@attrs.frozen
class Replace:
    """Take the record over from its previous owner at ``revision``."""

    revision: int


@attrs.frozen
class AskRelease:
    """Ask ``owner``'s node to close the client's connection and let its session go
    (again, if an earlier request got no answer in time)."""

    owner: NodeId


@attrs.frozen
class Owned:
    """This node owns the client id: open the session."""


ClaimAction = Create | Replace | AskRelease | Owned


@attrs.frozen
class ClaimState:
    """What one claim has done so far: when it asked the owner, and what came back."""

    asked: NodeId | None = None
    asked_at: float = 0.0
    """When ``asked`` was first asked."""
    released: bool = False
    """The owner answered that it let the client id go."""
    gone: bool = False
    """Nobody listens for that owner's requests: its connection to NATS is gone."""


def decide_claim(
    me: NodeId, current: OwnerRecord | None, live: Mapping[str, str], state: ClaimState, *,
    now: float, lease: float,
) -> ClaimAction:
    """The next step of node ``me`` taking a client id whose record is ``current``.

    ``live`` maps each node whose lease is held to its incarnation. An owner that
    was asked and did not answer is asked again, until a lease after the first
    request: then it counts as gone."""
    if current is None:
        return Create()
    owner = current.owner
    if owner == me:
        return Owned()
    if live.get(owner.name) != owner.incarnation:
        return Replace(current.revision)
    if state.asked == owner and (
            state.released or state.gone or now >= state.asked_at + lease):
        return Replace(current.revision)
    return AskRelease(owner)


def orphans(
    records: Iterable[tuple[str, OwnerRecord]], live: Mapping[str, str]
) -> list[tuple[str, OwnerRecord]]:
    """The client ids whose owner's lease has run out (its node died, was cut off from
    NATS for a lease, or started again as a new incarnation), in client id order."""
    return sorted(
        ((client_id, record) for client_id, record in records
         if live.get(record.owner.name) != record.owner.incarnation),
        key=lambda item: item[0],
    )


@attrs.define
class Lease:
    """A node's own lease, as this node sees it: when it was last refreshed.

    The node refreshes it every ``lease / LEASE_REFRESHES``; should refreshes fail
    until ``expires_at`` (NATS unreachable), other nodes may take its clients, so it
    must stop serving them itself (``held`` turns False)."""

    lease: float
    refreshed_at: float | None = None

    def refreshed(self, now: float) -> None:
        self.refreshed_at = now

    def next_refresh(self, now: float) -> float:
        """When to refresh next: at once if never, else a third of a lease after the last."""
        if self.refreshed_at is None:
            return now
        return self.refreshed_at + self.lease / LEASE_REFRESHES

    @property
    def expires_at(self) -> float:
        """When other nodes may take this node's clients, counted from its last refresh
        (the bucket counts from the refresh's arrival, a little later: a safe side)."""
        return -1.0 if self.refreshed_at is None else self.refreshed_at + self.lease

    def held(self, now: float) -> bool:
        return now < self.expires_at
