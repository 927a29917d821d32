"""What a MQTT 5.0 CONNACK promises and what it binds the server to afterwards: the
Assigned Client Identifier, Response Information, Maximum QoS and the Keep Alive in
force (3.1.2.11.6, 3.1.3.1, 3.2.2.3).

Theory of operation: ``Connack5`` is made from the client's CONNECT and judges the
server's CONNACK against it (``connack``); once accepted it answers what the CONNACK
settled for the rest of the connection:

- a zero-length ClientID is a special case: a server that accepts it MUST assign a
  ClientID [MQTT-3.1.3-6], return it in the CONNACK [MQTT-3.1.3-7] [MQTT-3.2.2-16], and
  that ClientID must be used by no other Session in the server [MQTT-3.2.2-16], so
  there is no Session State to resume under it (Session Present 0);
  ``session_key`` is then the assigned one, which identifies the Session State from
  then on [MQTT-3.1.3-2] [MQTT-3.1.3-7];
- Request Response Information 0 (or absent, which means 0) forbids Response
  Information in the CONNACK [MQTT-3.1.2-28];
- a server that does not support QoS 1 or 2 must say so with Maximum QoS
  [MQTT-3.2.2-9]: one that announced none (2) may not then refuse a PUBLISH for its
  QoS (``check_qos_refusal``); it MUST still accept a SUBSCRIBE requesting QoS 0, 1 or
  2, granting up to its Maximum QoS (``suback_situations``, ``check_subscribe_closed``)
  [MQTT-3.2.2-10];
- the Keep Alive in force is the Server Keep Alive if the CONNACK carried one,
  otherwise the client's [MQTT-3.2.2-22]; the server may end the connection for Keep
  Alive only after one and a half times that [MQTT-3.1.2-22] (``check_keep_alive_close``).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from mqttref.impl.codec.packets import ConnAck, Connect
from mqttref.model.errors import UsageError, Violation
from mqttref.model.v5 import reason_codes
from mqttref.model.v5.reason_codes import Situation

SUPPORTED_QOS_BY_DEFAULT = 2
"""An absent Maximum QoS means the server supports QoS 2 (3.2.2.3.4)."""


@attrs.define
class Connack5:
    """One level-5 CONNECT and the CONNACK answering it."""

    connect: Connect
    client: str = "client"
    other_sessions: frozenset[str] = frozenset()
    """The ClientIDs of the Sessions the server holds when it answers, but this one's."""
    accepted: bool | None = None
    assigned: str | None = None
    maximum_qos: int = SUPPORTED_QOS_BY_DEFAULT
    keep_alive: int = 0
    """The Keep Alive in force once accepted (seconds)."""
    server_keep_alive: int | None = None

    def __attrs_post_init__(self) -> None:
        if int(self.connect.protocol_level) != 5:
            raise UsageError("Connack5 judges the answer to a 5.0 CONNECT")

    def connack(self, packet: ConnAck) -> None:
        """The server's CONNACK: raise ``Violation`` where its properties break what the
        CONNECT asked for."""
        if self.accepted is not None:
            raise UsageError("one CONNACK per connection")
        properties = packet.properties
        requested = self.connect.properties.request_response_information or 0
        if requested == 0 and properties.response_information is not None:
            self._reject("Response Information the client did not request",
                         ("MQTT-3.1.2-28",), "no Response Information",
                         f"Response Information {properties.response_information!r}")
        self.accepted = packet.return_code < 0x80
        if not self.accepted:
            return
        assigned = properties.assigned_client_identifier
        if self.connect.client_id == "":
            if not assigned:
                self._reject("a zero-length ClientID accepted without an Assigned Client "
                             "Identifier", ("MQTT-3.1.3-6", "MQTT-3.1.3-7", "MQTT-3.2.2-16"),
                             "an Assigned Client Identifier", "none")
            if assigned in self.other_sessions:
                self._reject(f"the Assigned Client Identifier {assigned!r} is another "
                             "Session's", ("MQTT-3.2.2-16",),
                             "a ClientID no other Session uses", repr(assigned))
            if packet.session_present:
                # The state is identified by the ClientID, and this one is new: no state
                # of it can exist to resume [MQTT-3.1.3-2] [MQTT-3.1.3-7].
                self._reject("Session Present 1 for a newly assigned ClientID",
                             ("MQTT-3.1.3-2", "MQTT-3.1.3-7"), "Session Present 0",
                             "Session Present 1")
            self.assigned = assigned
        if properties.maximum_qos is not None:
            self.maximum_qos = properties.maximum_qos
        self.server_keep_alive = properties.server_keep_alive
        self.keep_alive = (self.connect.keep_alive if self.server_keep_alive is None
                           else self.server_keep_alive)

    @property
    def session_key(self) -> str:
        """The ClientID the Session State is held under: the client's, or the one the
        server assigned to a zero-length one [MQTT-3.1.3-2] [MQTT-3.1.3-7]."""
        self._require_accepted()
        return self.assigned if self.assigned is not None else self.connect.client_id

    def suback_situations(self, requested_qos: int, **facts: bool) -> frozenset[Situation]:
        """A SUBSCRIBE requesting QoS 0, 1 or 2 is accepted whatever the Maximum QoS;
        its grant goes up to the Maximum QoS [MQTT-3.2.2-10]."""
        self._require_accepted()
        return reason_codes.suback_situations(requested_qos=requested_qos,
                                              maximum_qos=self.maximum_qos, **facts)

    def check_subscribe_closed(self, requested_qos: Iterable[int]) -> None:
        """The server closed (or sent DISCONNECT) for a well-formed SUBSCRIBE whose
        Requested QoS exceeds its Maximum QoS: it must accept it [MQTT-3.2.2-10]."""
        self._require_accepted()
        above = [qos for qos in requested_qos if qos in (0, 1, 2) and qos > self.maximum_qos]
        if above:
            self._reject(f"a SUBSCRIBE requesting QoS {max(above)} refused by closing, with "
                         f"Maximum QoS {self.maximum_qos}", ("MQTT-3.2.2-10",),
                         f"SUBACK granting up to QoS {self.maximum_qos}", "the close")

    def check_qos_refusal(self, qos: int) -> None:
        """The server refused a PUBLISH of ``qos`` as not supported (DISCONNECT 0x9B):
        only a QoS above the Maximum QoS its CONNACK announced can be unsupported
        [MQTT-3.2.2-9]."""
        self._require_accepted()
        if qos <= self.maximum_qos:
            self._reject(f"QoS {qos} refused as not supported, but the CONNACK announced "
                         f"Maximum QoS {self.maximum_qos}", ("MQTT-3.2.2-9",),
                         f"QoS up to {self.maximum_qos} supported", "DISCONNECT 0x9B")

    def keep_alive_close_allowed(self, idle: float) -> bool:
        """Whether ``idle`` seconds without a control packet let the server close for Keep
        Alive: past one and a half times the Keep Alive in force [MQTT-3.2.2-22]
        [MQTT-3.1.2-22]; a Keep Alive of 0 never does."""
        self._require_accepted()
        return self.keep_alive > 0 and idle > 1.5 * self.keep_alive

    def check_keep_alive_close(self, idle: float) -> None:
        """The server ended the connection for Keep Alive (DISCONNECT 0x8D, or its close)
        after ``idle`` seconds of silence from the client."""
        if not self.keep_alive_close_allowed(idle):
            # Without a Server Keep Alive, the client's value is the one in force.
            refs = (("MQTT-3.1.2-22",) if self.server_keep_alive is not None
                    else ("MQTT-3.2.2-22", "MQTT-3.1.2-22"))
            self._reject(f"a Keep Alive close after {idle} s of silence, with a Keep Alive "
                         f"of {self.keep_alive} s in force", refs,
                         f"no Keep Alive close before {1.5 * self.keep_alive} s"
                         if self.keep_alive else "no Keep Alive close",
                         f"the close after {idle} s")

    def _require_accepted(self) -> None:
        if not self.accepted:
            raise UsageError("no accepting CONNACK yet")

    def _reject(self, message: str, refs: tuple[str, ...], allowed: str, arrived: str) -> None:
        raise Violation(self.client, message, refs=refs, allowed=(allowed,), arrived=arrived)
