"""Tests of the mqttref broker: sans-IO units, and real clients over loopback sockets."""
