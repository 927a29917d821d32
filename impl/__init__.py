"""The product: a sans-IO MQTT codec, broker core and client core, and their asyncio shells.

Nothing here imports ``mqttref.model`` or ``mqttref.oracle``: the model must stay an
independent judge, and the oracle judges this broker as it judges anyone's
(``tests/test_architecture.py`` holds both).
"""
