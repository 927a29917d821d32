"""The wills and sessions of a node that died: the cluster publishes and keeps them.

A node that dies (killed, or cut off from NATS) cannot publish the will of a
client connected to it, which MQTT asks when the network connection is lost
without DISCONNECT [MQTT-3.1.2-8], nor keep receiving for its disconnected
persistent sessions. The cluster's documented choice (docs/cluster.md, "Sessions,
takeover and wills"): once the dead node's lease has run out, a live node takes
each client id it owned, by compare-and-set on the owner record, so exactly one
node does it; the winner publishes the will its client left (written beside the
session when the client connected, ``JetStreamSessionStore.live_will_set``) and
holds the persistent session, subscribed, until its client comes back
(``sessions.ClusterSessions.adopt``).

Every node looks every half lease (``find_orphans``), so a will goes out between
one lease and one and a half leases after the node's last refresh.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

import nats.js.errors

from mqttref.impl.cluster.bridge import Inbox
from mqttref.impl.cluster.claims import ClusterLink
from mqttref.impl.cluster.ownership import orphans
from mqttref.impl.cluster.session_store import session_prefix

log = logging.getLogger("mqttref.cluster")

SCANS_PER_LEASE = 2


Adopt = Callable[[str, bytes | None, float], None]
"""What the broker's loop does with a client id won from a dead node, given the will its
client left there and the loop's time (``sessions.ClusterSessions.adopt``)."""


async def find_orphans(adopt: Adopt, link: ClusterLink,
                       loop: asyncio.AbstractEventLoop, inbox: Inbox) -> None:
    """Forever, on the NATS thread: every half lease, take what dead nodes owned."""
    while True:
        await asyncio.sleep(link.lease_seconds / SCANS_PER_LEASE)
        try:
            await take_orphans(adopt, link, loop, inbox)
        except asyncio.CancelledError:
            raise
        except Exception:  # NATS away, or a node racing us: the next scan tries again
            log.warning("looking for the sessions of dead nodes failed", exc_info=True)


async def take_orphans(adopt: Adopt, link: ClusterLink,
                       loop: asyncio.AbstractEventLoop, inbox: Inbox) -> int:
    """One scan: take each client id whose owner's lease ran out, and adopt it on the
    broker's loop; how many this node won."""
    records = await link.owner_records()
    if not records:
        return 0
    live = await link.live_nodes()
    won = 0
    for client_id, record in orphans(records, live):
        async with link.adopting(client_id):  # a release request waits for the adoption
            if not await link.take_orphan(client_id, record):
                continue  # another node was first
            won += 1
            live_will = await _live_will(link, client_id)
            await inbox.run(functools.partial(_adopt, adopt, client_id, live_will, loop), loop)
    return won


async def _live_will(link: ClusterLink, client_id: str) -> bytes | None:
    assert link.sessions is not None
    try:
        entry = await link.sessions.get(f"{session_prefix(client_id)}.lastwill")
    except nats.js.errors.KeyNotFoundError:
        return None
    return entry.value or None



def _adopt(adopt: Adopt, client_id: str, live_will: bytes | None,
           loop: asyncio.AbstractEventLoop) -> None:
    adopt(client_id, live_will, loop.time())
