"""What the transcript of an example says, and the verdicts that carry it.

Every client action and every packet received is one line of the example's
transcript (``Driver.note``), written here: a packet as the 3.1.1 rendering of
``adapters`` plus what 5.0 adds (properties, the will's too, subscription
options). A disagreement raises ``Disagreement`` with the model's verdict
(statement ids, what was allowed, what arrived) and the transcript's tail; a
model that fails itself raises ``ModelCrash``, no verdict on the broker.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from mqttref.impl.codec.packets import NO_PROPERTIES, Properties, Subscribe
from mqttref.model import ClientEvent, Observation, Send
from mqttref.oracle.stateful.adapters import describe_event as _describe_event
from mqttref.oracle.stateful.adapters import describe_packet as _describe_packet

TRANSCRIPT_TAIL = 80


class Disagreement(AssertionError):
    """The broker did what the model forbids, or did not do what it requires."""

    def __init__(self, verdict: str, refs: Iterable[str], transcript: list[str]) -> None:
        self.verdict = verdict
        self.refs = tuple(refs)
        self.transcript = list(transcript)
        tail = self.transcript[-TRANSCRIPT_TAIL:]
        skipped = len(self.transcript) - len(tail)
        lines = [f"  ... {skipped} earlier lines"] if skipped else []
        lines += [f"  {line}" for line in tail]
        super().__init__(f"{verdict}\nTranscript of this example:\n" + "\n".join(lines))


class ModelCrash(Exception):
    """The model itself failed (a ``ModelError`` that is no ``Violation``): a bug
    of the model, not a verdict on the broker; shown with the transcript."""

    def __init__(self, error: Exception, transcript: list[str]) -> None:
        self.transcript = list(transcript)
        tail = "\n".join(f"  {line}" for line in self.transcript[-TRANSCRIPT_TAIL:])
        super().__init__(f"the model crashed: {error!r}\nTranscript of this example:\n{tail}")


def _extras(packet: Observation) -> str:
    """What a 5.0 packet carries beyond its 3.1.1 rendering: properties (the will's
    too) and subscription options."""
    parts = []
    properties = getattr(packet, "properties", NO_PROPERTIES)
    for field in attrs.fields(Properties):
        value = getattr(properties, field.name)
        if value != field.default:
            parts.append(f"{field.name}={value!r}")
    will = getattr(packet, "will", None)
    if will is not None and will.properties != NO_PROPERTIES:
        parts.append(f"will {_extras(will)}")
    if isinstance(packet, Subscribe):
        for s in packet.subscriptions:
            options = [name for name, on in (
                ("no_local", s.no_local), ("retain_as_published", s.retain_as_published)) if on]
            if s.retain_handling:
                options.append(f"retain_handling={s.retain_handling}")
            if options:
                parts.append(f"{s.topic_filter!r}: {' '.join(options)}")
    return "{" + ", ".join(parts) + "}" if parts else ""


def describe_packet(packet: Observation) -> str:
    """A packet as the transcript shows it, with its 5.0 properties and options."""
    extras = _extras(packet)
    return _describe_packet(packet) + (f" {extras}" if extras else "")


def describe_event(event: ClientEvent) -> str:
    """A client action as one transcript line, with its 5.0 properties and options."""
    if isinstance(event, Send):
        return f"{event.client} -> {describe_packet(event.packet)}"
    return _describe_event(event)


__all__ = ["TRANSCRIPT_TAIL", "Disagreement", "ModelCrash", "describe_event", "describe_packet"]
