"""What a slot's connection changes that the other nodes of a cluster must learn.

Against one broker of several nodes (``mqttref check --broker n1 --broker n2``) a
change acknowledged on one node (a SUBACK, a retained message stored, a session that
outlives its connection) is known on the others only within the run's propagation
allowance (``oracle.nodes``). The driver tells ``oracle.nodes`` of each such change
on a link, and a client on another node waits out the allowance before it acts.
Against a single broker every function here does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from mqttref.impl.codec.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    SubAck,
)
from mqttref.model import Observation
from mqttref.oracle.nodes import clustered
from mqttref.oracle.stateful.links import Link


def wait_for_propagation(link: Link, poll: Callable[[float], object]) -> None:
    """Before a client acts: a change acknowledged on another node of a cluster is
    given the run's propagation allowance first, observing (``poll``) all the while."""
    nodes = clustered()
    while nodes is not None and (delay := nodes.wait_before(link.node)) > 0:
        poll(delay)


def changed(link: Link) -> None:
    """A change on ``link``'s node that the other nodes must learn."""
    nodes = clustered()
    if nodes is not None:
        nodes.changed(link.node)


def shared_change_sent(link: Link, packet: Packet) -> None:
    """What a client sends that other nodes must learn (see ``oracle.nodes``)."""
    if clustered() is None:
        return
    if isinstance(packet, Connect):
        link.shared_state = (not packet.clean_session
                             or bool(packet.properties.session_expiry_interval))
    elif isinstance(packet, Publish) and packet.retain:
        if packet.packet_id is None:
            changed(link)
        else:
            link.retained_ids.add(packet.packet_id)
    elif isinstance(packet, Disconnect) and link.shared_state:
        changed(link)


def shared_change_acknowledged(link: Link, packet: Observation) -> None:
    """A SUBACK, the acknowledgement of a retained PUBLISH, or the CONNACK of a
    session that outlives its connection: other nodes learn it within the allowance."""
    if clustered() is None:
        return
    packet_id = getattr(packet, "packet_id", None)
    if (isinstance(packet, SubAck)
            or (isinstance(packet, ConnAck) and link.shared_state)
            or (isinstance(packet, (PubAck, PubRec, PubComp))
                and packet_id in link.retained_ids)):
        if isinstance(packet, (PubAck, PubComp)):
            link.retained_ids.discard(packet_id or 0)
        changed(link)


__all__ = ["changed", "shared_change_acknowledged", "shared_change_sent",
           "wait_for_propagation"]
