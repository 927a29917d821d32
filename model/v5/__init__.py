"""The MQTT 5.0 part of the model: charts whose rows cite MQTT 5.0 statement ids.

Each module holds one or more charts (``protocol="5.0"``) and the small pure
component that executes them for one connection or session.
"""
