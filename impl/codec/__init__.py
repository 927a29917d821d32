"""The wire: MQTT packets as values, and the sans-IO codec between them and bytes.

Shared by the broker, the client, the oracle and (packet types only) the model;
it knows nothing of sessions or sockets. Importing this package loads nothing:
the model imports ``packets`` alone.
"""
