"""The model exploration: a Hypothesis state machine drives a broker, the model judges.

``machine`` holds the rules, ``stories`` the client stories mixed into them,
``settings`` how long a hunt runs, ``driver`` the sockets and the judging, ``adapters``
the translation between packets and the model's events, ``target`` the broker
under test (in-process or at HOST:PORT), ``explore`` the entry point of
``mqttref check``. ``tests/stateful`` runs the same machine against the mqttref
broker and injects faults into it. Importing this package needs Hypothesis
(the ``check`` extra).
"""
