"""Helpers shared by several test packages (broker in a thread, raw MQTT sockets)."""
