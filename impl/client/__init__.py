"""The MQTT client: a sans-IO protocol core (``protocol``) and its asyncio shell (``client``).

The core (``protocol.ClientProtocol``) knows the CONNECT/CONNACK handshake,
the QoS 1 and QoS 2 flows in both directions, packet identifiers, the
in-flight window, keep-alive and session resumption; it never touches a
socket or a clock, so tests drive it packet by packet with a clock of their
own. The shell (``client.Client``) owns the socket, the timers, reconnection
with back-off and the bounded queue of received messages. Users import the
public names from ``mqttref.client``.
"""
