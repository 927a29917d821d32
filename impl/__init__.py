"""The product: a sans-IO MQTT core (codec, sessions, topics) and its asyncio shell.

Nothing here imports ``mqttref.model``: the model must stay an independent oracle.
"""
