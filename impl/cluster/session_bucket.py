"""Reading a persistent session from the sessions bucket over NATS.

What ``session_store.JetStreamSessionStore.fetch`` loads when a client id comes to this
node: every key under the session's prefix, as the bucket holds them now
(``read_session``), and what the store makes of them (``Fetched``). The keys' layout and
values are ``session_codec.py``'s; these coroutines run on the NATS thread.
"""

from __future__ import annotations

import asyncio

import attrs
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from mqttref.impl.cluster.session_codec import SESSIONS_BUCKET
from mqttref.impl.cluster.stream_marks import Tag
from mqttref.impl.store.base import SessionRecord, StoredWill


@attrs.frozen
class Fetched:
    """What the bucket holds for one client id."""

    record: SessionRecord | None
    """Its persistent session; None: it has none."""
    will: StoredWill | None
    """The 5.0 will its disconnected session holds for its Will Delay Interval."""
    live_will: bytes | None
    """The will of its client's last connection, if that connection's node did not end
    it (``live_will_set``; ``decode_live_will`` reads it)."""
    mark: dict[str, int] = attrs.field(factory=dict)
    """Subject -> the stream sequence up to which the session took its messages."""
    taken: frozenset[Tag] = frozenset()
    """The stream sequences of the messages its queue and in-flight window hold, and the
    envelope ids of those its node published itself."""
    since: dict[str, float] = attrs.field(factory=dict)
    """Subject -> since when (wall clock) the session has been subscribed to it."""


async def read_session(js: JetStreamContext | None, kv: KeyValue,
                       prefix: str) -> list[tuple[str, bytes]]:
    """Every key of one session, as the bucket holds them now."""
    assert js is not None
    keys = await session_keys(js, prefix)
    values = await asyncio.gather(*(key_value(kv, key) for key in keys))
    return [(key, value) for key, value in zip(keys, values, strict=True)
            if value is not None]


async def session_keys(js: JetStreamContext, prefix: str) -> list[str]:
    """The keys under ``prefix`` in the sessions bucket, deleted ones included.

    Read from the stream's subjects, not with a key-value watcher: nats-py's watcher
    may signal the end of the initial values before it delivered them (it compares
    the server's pending count with what it has processed, and the two race)."""
    bucket_subject = f"$KV.{SESSIONS_BUCKET}."
    info = await js.stream_info(f"KV_{SESSIONS_BUCKET}",
                                subjects_filter=f"{bucket_subject}{prefix}.>")
    subjects = info.state.subjects or {}
    return sorted(subject.removeprefix(bucket_subject) for subject in subjects)


async def key_value(kv: KeyValue, key: str) -> bytes | None:
    """A key's value; None for a deleted key."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:  # KeyDeletedError too
        return None
    return entry.value or None
