"""The executable specification: pure, synchronous statecharts of MQTT 3.1.1.

Nothing here imports ``mqttref.impl`` logic: the model judges the implementation.
"""
