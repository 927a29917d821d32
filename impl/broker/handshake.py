"""The handshake: CONNECT, CONNACK, and at MQTT 5.0 the AUTH exchange.

Theory of operation. ``on_connect`` is the handler of CONNECT in CONNECTING
(``protocol.HANDLERS``); it accepts the connection or refuses it, and nothing
else comes first: CONNACK is the first packet the server sends (at 5.0, but
for AUTH) [MQTT-3.2.0-1], and on accept the session is attached only after
it, so that what the session has queued follows the CONNACK.

- At 3.1.1 (and 3.1) the answer is a return code (``admission.
  connect_return_code``); a refused CONNECT has session present 0
  [MQTT-3.2.2-4] and closes [MQTT-3.2.2-5].
- At 5.0 the answer is a reason code (``admission.connect_reason``), and an
  accepted CONNACK states the terms of the connection (``admission.Terms``,
  3.2.2.3): the broker's limits, an Assigned Client Identifier
  [MQTT-3.2.2-16], Server Keep Alive [MQTT-3.2.2-21]. A CONNACK that would not
  fit in the client's Maximum Packet Size refuses the CONNECT [MQTT-3.1.2-24].
- A 5.0 CONNECT that names an Authentication Method starts enhanced
  authentication (4.12, ``impl.auth.ConnectionAuth``): AUTH packets go back
  and forth (``on_auth``; meanwhile the client sends only AUTH or DISCONNECT
  [MQTT-3.1.2-30], which ``protocol.AUTHENTICATING`` enforces) until the
  exchange accepts the CONNECT or refuses it. Once connected, an AUTH with
  0x19 re-authenticates the client the same way (4.12.1); one that fails is
  DISCONNECT and a close [MQTT-4.12.1-2].

The Client Identifier assigned to a client that sent none [MQTT-3.1.3-6] comes
from ``assign_client_id``, which ``protocol.Connection`` supplies.

User names and passwords are judged with ``BrokerPorts.security`` (the ``users``
table and the password file, ``security.py``); a will the ACL does not let the client
publish refuses the CONNECT, and an accepted session gets the client's ``access``
(what the ACL lets it publish, subscribe to and receive).
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

from mqttref.impl.auth import ConnectionAuth, Continue, Step, Success
from mqttref.impl.broker.admission import connect_reason, connect_return_code, connect_terms
from mqttref.impl.broker.closing import Closing
from mqttref.impl.broker.limits import strings_problem, topic_problem
from mqttref.impl.broker.packet_size import fit
from mqttref.impl.codec.codec import encode
from mqttref.impl.codec.errors import LimitExceeded, ProtocolError, ReasonCode
from mqttref.impl.codec.packets import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    ConnectReturnCode,
    Properties,
    ProtocolLevel,
)
from mqttref.impl.flow import ConnectionState
from mqttref.impl.logtext import broker_log, clip

log = logging.getLogger("mqttref.broker")


_CONNACK_ACCEPTED: Final = {
    present: encode(ConnAck(present, ConnectReturnCode.ACCEPTED)) for present in (False, True)
}
"""CONNACK accepting a connection, by session present: the same four bytes every time."""


class Handshake(Closing):
    """How a connection's protocol core answers CONNECT, and AUTH at 5.0.

    A part of ``protocol.Connection``; its state (``_auth``, the exchange under
    way and the CONNECT it answers) is declared with the rest in
    ``ConnectionBase``. It closes through ``Closing.close`` when it refuses."""

    __slots__ = ()

    def assign_client_id(self) -> str:
        """A unique Client Identifier for a client whose CONNECT has none
        [MQTT-3.1.3-6]; ``protocol.Connection`` says how it is made."""
        raise NotImplementedError

    def on_connect(self, packet: Connect, now: float) -> None:
        """Accept or refuse a CONNECT; on accept, attach the session after CONNACK.

        With ``reject_control_characters``, a string 1.5.3 discourages closes the
        connection first, without CONNACK (the MAY of 1.5.3)."""
        config = self.config
        if config.reject_control_characters and (problem := strings_problem(packet)):
            raise LimitExceeded(f"CONNECT {problem}", ref="§1.5.3")
        identity = self._edge.identity
        if identity is not None:
            # use_identity_as_username: the certificate names the user, whatever the
            # CONNECT says, and the ACL sees that name (as mosquitto does).
            packet = attrs.evolve(packet, username=identity, password=None)
        connections = self.ports.connections
        if packet.protocol_level is ProtocolLevel.MQTT_5:
            self._on_connect_v5(packet, now)
            return
        code = connect_return_code(packet, config, open_connections=connections.connected + 1,
                                   security=self.ports.security,
                                   identified=identity is not None)
        if code is ConnectReturnCode.ACCEPTED and not self._will_allowed(packet):
            code = ConnectReturnCode.NOT_AUTHORIZED
        if code is not ConnectReturnCode.ACCEPTED:
            log.debug("refusing CONNECT from %s (client id %s): %s",
                      self.peer, clip(packet.client_id), code.name)
            # A refused CONNECT has session present 0 [MQTT-3.2.2-4] and closes [MQTT-3.2.2-5].
            self.send(ConnAck(False, code))
            self.close(f"CONNECT refused with {code.name}", publish_will=False)
            return
        if packet.will is not None and (problem := topic_problem(packet.will.topic, config)):
            raise LimitExceeded(f"will topic with {problem}", ref="§4.7",
                                reason_code=ReasonCode.TOPIC_NAME_INVALID)
        connections.admit(self)
        self.protocol_level = packet.protocol_level
        self.client_id = client_id = packet.client_id or self.assign_client_id()
        self.will = packet.will
        self.state = ConnectionState.CONNECTED
        # Keep alive 0 keeps the shared 0.0, not a float of its own (24 bytes).
        self.keep_alive_limit = (
            packet.keep_alive * config.keep_alive_factor if packet.keep_alive else 0.0
        )
        self.accepted_at = now  # no longer needed as such: share last_activity's float
        session, present = self.ports.sessions.open_session(self, client_id, packet, now)
        self.session = session
        session.access = self.ports.security.access_for(packet.username, client_id)
        if self.protocol_level is ProtocolLevel.MQTT_3_1:
            present = False  # 3.1 has no session present flag
        self.send_frame(_CONNACK_ACCEPTED[present])  # the first packet [MQTT-3.2.0-1]
        if self._verbose:
            log.debug("%s connected (clean session %d, keep alive %d, session present %d)",
                      self.who, packet.clean_session, packet.keep_alive, present)
        session.attach(self, now)

    def _will_allowed(self, packet: Connect) -> bool:
        """Whether the ACL lets this client publish its will (a will is a PUBLISH it
        leaves behind); refused with CONNACK 0x05 (5.0: 0x87) as mosquitto does. An
        empty client id is assigned later: no ``%c`` pattern can grant it yet."""
        will = packet.will
        if will is None:
            return True
        access = self.ports.security.access_for(packet.username, packet.client_id)
        return access is None or access.may_write(will.topic)

    def _on_connect_v5(self, packet: Connect, now: float) -> None:
        """An MQTT 5.0 CONNECT: refused with its reason code in CONNACK, or accepted with
        the terms CONNACK states (3.2.2.3): limits, Assigned Client Identifier
        [MQTT-3.2.2-16], Server Keep Alive [MQTT-3.2.2-21], granted session expiry."""
        config = self.config
        connections = self.ports.connections
        self.protocol_level = ProtocolLevel.MQTT_5
        if self._auth is not None:
            raise ProtocolError("a second CONNECT", ref="MQTT-3.1.0-2")
        code = connect_reason(packet, config, open_connections=connections.connected + 1,
                              security=self.ports.security,
                              identified=self._edge.identity is not None)
        if code is ReasonCode.SUCCESS and not self._will_allowed(packet):
            code = ReasonCode.NOT_AUTHORIZED
        if code is not ReasonCode.SUCCESS:
            self._refuse_v5(packet, code)
            return
        if packet.will is not None and (problem := topic_problem(packet.will.topic, config)):
            raise LimitExceeded(f"will topic with {problem}", ref="§4.7",
                                reason_code=ReasonCode.TOPIC_NAME_INVALID)
        props = packet.properties
        if props.authentication_data is not None and props.authentication_method is None:
            raise ProtocolError("Authentication Data without an Authentication Method",
                                ref="§3.1.2.11.10")
        if props.authentication_method is not None:
            auth = ConnectionAuth(self.ports.authenticators)
            self._auth = (auth, packet)
            step = auth.connect(props.authentication_method, packet.username,
                                props.authentication_data)
            assert step is not None
            self._auth_step(step, now)
            return
        self._accept_v5(packet, now)

    def _refuse_v5(self, packet: Connect, code: int, properties: Properties = NO_PROPERTIES
                   ) -> None:
        """CONNACK with ``code`` (session present 0 [MQTT-3.2.2-6]) and close; its Reason
        String goes if the CONNACK would exceed the client's Maximum Packet Size
        [MQTT-3.2.2-19], and a CONNACK that cannot fit at all is not sent."""
        log.debug("refusing CONNECT from %s (client id %s): 0x%02X",
                  self.peer, clip(packet.client_id), code)
        frame = fit(ConnAck(False, code, properties=properties),
                    packet.properties.maximum_packet_size)
        if frame is not None:
            self.send_frame(frame)
        self.close(f"CONNECT refused with 0x{code:02X}", publish_will=False)

    def on_auth(self, packet: Auth, now: float) -> None:
        """An AUTH packet (4.12): the next step of the exchange CONNECT began, or a
        re-authentication (0x19) once connected. Without a method in CONNECT it is a
        protocol error [MQTT-4.12.0-7] (``ConnectionAuth.auth`` raises it)."""
        if self._auth is None:
            raise ProtocolError("AUTH on a connection whose CONNECT named no method",
                                ref="MQTT-4.12.0-7")
        props = packet.properties
        step = self._auth[0].auth(packet.reason_code, props.authentication_method,
                                  props.authentication_data)
        self._auth_step(step, now)

    def _auth_step(self, step: Step, now: float) -> None:
        """Send what one step of the exchange says: AUTH 0x18 to go on; at the end
        CONNACK (accepted with the final data, or refused), or after a
        re-authentication AUTH 0x00, or DISCONNECT with the failure [MQTT-4.12.1-2]."""
        assert self._auth is not None
        auth, pending = self._auth
        method = auth.method
        if isinstance(step, Continue):
            self.send(Auth(ReasonCode.CONTINUE_AUTHENTICATION, Properties(
                authentication_method=method, authentication_data=step.data)))
        elif isinstance(step, Success):
            final = Properties(authentication_method=method, authentication_data=step.data)
            if pending is None:
                self.send(Auth(ReasonCode.SUCCESS, final))
            else:
                self._auth = (auth, None)
                self._accept_v5(pending, now, auth=final)
        elif pending is not None:
            reason = Properties(reason_string=step.reason or None)
            self._refuse_v5(pending, step.reason_code, reason)
        else:  # DISCONNECT has no 0x86 or 0x8C: a failed re-authentication is 0x87
            self.close(f"re-authentication failed: {step.reason}", publish_will=True,
                       reason_code=ReasonCode.NOT_AUTHORIZED)

    def _accept_v5(self, packet: Connect, now: float, *, auth: Properties | None = None
                   ) -> None:
        """Accept a 5.0 CONNECT (after its enhanced authentication, if any).

        A CONNACK that would exceed the client's Maximum Packet Size [MQTT-3.1.2-24]
        (its properties cannot be left out: each states a term of the connection) makes
        the CONNECT one the Server cannot accept: refused with 0x80, if that fits
        [MQTT-3.1.4-2], before any session is touched."""
        config = self.config
        assigned = None if packet.client_id else self.assign_client_id()
        terms = connect_terms(packet, config, assigned_id=assigned)
        if auth is not None:
            terms = attrs.evolve(terms, connack=attrs.evolve(
                terms.connack, authentication_method=auth.authentication_method,
                authentication_data=auth.authentication_data))
        if fit(ConnAck(False, ReasonCode.SUCCESS, properties=terms.connack),
               terms.maximum_packet_size) is None:
            broker_log.warning("packet too large", "refusing %s: its CONNACK exceeds the "
                               "client's Maximum Packet Size of %d", self.peer,
                               terms.maximum_packet_size)
            self._refuse_v5(packet, ReasonCode.UNSPECIFIED_ERROR)
            return
        self.ports.connections.admit(self)
        self.protocol_level = ProtocolLevel.MQTT_5
        self.client_id = client_id = packet.client_id or assigned or ""
        self.terms = terms
        self.will = packet.will
        self.state = ConnectionState.CONNECTED
        self.keep_alive_limit = (
            terms.keep_alive * config.keep_alive_factor if terms.keep_alive else 0.0
        )
        self.accepted_at = now
        session, present = self.ports.sessions.open_session(self, client_id, packet, now)
        self.session = session
        session.access = self.ports.security.access_for(packet.username, client_id)
        self.send(ConnAck(present, ReasonCode.SUCCESS, properties=terms.connack))
        if self._verbose:
            log.debug("%s connected at 5.0 (clean start %d, keep alive %d, session present %d)",
                      self.who, packet.clean_session, terms.keep_alive, present)
        session.attach(self, now)
