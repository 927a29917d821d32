"""What the router asks of the session store: ``DurableSink``, the port between them.

Theory of operation. The router (``routing.py``) hands the QoS 1/2 messages this
node publishes to the session store, whose commit puts them in the stream
(``durable.py``) before the publisher's PUBACK or PUBREC leaves; it tells the store
which stream message or envelope it is handing to the sessions now, so that the store
records it with what it writes (``replay.py``); and for a shared group's message it
asks the store whether a session loaded here, or a member on any node, already holds
it, and leaves the acknowledgement to JetStream to the store's next commit
(``group_feed.py``).

This is that port, and no more, in the manner of the broker's own
(``impl/broker/ports.py``): the router depends on it rather than on
``session_store.JetStreamSessionStore``, which offers it, so the two modules do not
import each other and each reads on its own.
"""

from __future__ import annotations

from typing import Protocol


class DurableSink(Protocol):
    """Where QoS 1/2 messages for other nodes go while NATS is there: the session store,
    whose commit, before the publisher's PUBACK or PUBREC, waits for JetStream's
    acknowledgement of each (``durable.py``)."""

    arriving: int | None
    """The stream sequence of the message being handed to the sessions now, if it came
    from the stream: the store keeps it with what it records (``replay.py``)."""
    local_id: str | None
    """The envelope id of the QoS 1/2 message this node publishes, while its own
    sessions get it: the store keeps it likewise."""

    def publish_durable(self, subject: str, body: bytes, message_id: str,
                        origin: str | None = None) -> bool:
        """Take the message for the next commit; False: it cannot (NATS away).
        ``origin``: the publisher's client id."""
        ...

    @property
    def batch(self) -> int:
        """The number of the commit that carries a message taken now."""
        ...

    def stored(self, batch: int) -> bool:
        """Whether commit number ``batch`` is over (its messages in JetStream, or handed
        back to the router's queue)."""
        ...

    def given(self, tag: str) -> bool:
        """Whether a session loaded here held the group message recorded with ``tag``."""
        ...

    async def recorded(self, tag: str) -> bool:
        """Whether the group's QoS 2 message ``tag`` was written for a member anywhere."""
        ...

    def acknowledge_after_commit(self, reply: str) -> None:
        """Acknowledge a JetStream message (its reply subject) once the next commit
        has stored its keys."""
        ...
