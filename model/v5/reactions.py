"""How the Server may answer a Client's packet that breaks a limit the Server announced.

Theory of operation: when a Client sends what the Server told it not to (more
QoS 1 and 2 PUBLISHes in flight than the Server's Receive Maximum, a Topic
Alias of 0 or above the Server's Topic Alias Maximum, a packet above the
Server's Maximum Packet Size), the Client broke a rule that binds the Client
([MQTT-3.3.4-7], [MQTT-3.3.2-8], [MQTT-3.3.2-9], [MQTT-3.2.2-15]); the Server
is judged on its reaction alone. 4.13.1 lists 0x82, 0x93 and 0x95 among the
Reason Codes of Protocol Errors, and a Server that detects one MUST close the
Network Connection [MQTT-4.13.1-1]; sending a DISCONNECT with that Reason Code
first is a SHOULD. So the model holds a set of allowed reactions, never one
expected answer: a DISCONNECT with the named code then the close, or a close
without it (or after a DISCONNECT with another code). Going on as if nothing
happened is allowed only where the Server may not have seen the error (an
acknowledgement crossing a PUBLISH on the wire).
"""

from __future__ import annotations

from enum import StrEnum

import attrs

from mqttref.model.errors import Violation

REASON_NAMES = {
    0x82: "Protocol Error",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
}
"""The DISCONNECT Reason Codes (3.14.2.1) these charts name, as the specification words them."""


class Reaction(StrEnum):
    """What the Server did about one packet of the Client, as the Client sees it."""

    HANDLE = "handle"
    """The Server processed the packet as usual (acknowledged it, delivered its message)."""
    DISCONNECT_AND_CLOSE = "disconnect_and_close"
    """DISCONNECT with the Reason Code the specification names, then the close."""
    CLOSE = "close"
    """The close with no DISCONNECT, or after a DISCONNECT with another Reason Code."""


def describe_code(code: int) -> str:
    name = REASON_NAMES.get(code)
    return f"0x{code:02X} ({name})" if name else f"0x{code:02X}"


@attrs.frozen
class Reactions:
    """The reactions the specification allows the Server to one packet of the Client.

    ``reason_code`` is the DISCONNECT Reason Code the specification names for
    the error (None when the packet is no error); ``refs`` the statements an
    observed reaction outside ``allowed`` breaks; ``why`` says what the packet did.
    """

    allowed: frozenset[Reaction]
    refs: tuple[str, ...]
    why: str
    reason_code: int | None = None

    def classify(self, *, closed: bool, disconnect_code: int | None = None) -> Reaction:
        """Name what the Client saw: the close, and the DISCONNECT code before it if any."""
        if not closed:
            return Reaction.HANDLE
        if disconnect_code is not None and disconnect_code == self.reason_code:
            return Reaction.DISCONNECT_AND_CLOSE
        return Reaction.CLOSE

    def describe(self, reaction: Reaction) -> str:
        if reaction is Reaction.DISCONNECT_AND_CLOSE:
            code = describe_code(self.reason_code) if self.reason_code is not None else "its code"
            return f"DISCONNECT {code}, then close"
        if reaction is Reaction.CLOSE:
            return "close (with no DISCONNECT, or one with another Reason Code)"
        return "go on: the packet handled as usual"

    def judge(self, observed: Reaction, *, client: str) -> None:
        """Raise ``Violation`` when the Server's reaction is not one the specification allows."""
        if observed in self.allowed:
            return
        raise Violation(
            client,
            f"the Server's reaction to a packet that {self.why}",
            refs=self.refs,
            allowed=[self.describe(r) for r in sorted(self.allowed)],
            arrived=self.describe(observed),
        )


def protocol_error(code: int, why: str, *, detected: bool = True) -> Reactions:
    """The reactions to a Protocol Error whose Reason Code the specification gives (4.13.1).

    ``detected=False`` when the Server may not have seen the error yet: going
    on is then allowed too.
    """
    allowed = {Reaction.DISCONNECT_AND_CLOSE, Reaction.CLOSE}
    if not detected:
        allowed.add(Reaction.HANDLE)
    return Reactions(frozenset(allowed), ("MQTT-4.13.1-1",), why, code)
