"""The conformance oracle: judges any MQTT broker, statement by statement.

``mqttref check`` connects to a broker over plain TCP, plays the scenarios in
``mqttref.oracle.checks`` with raw packets (built with the shared codec,
or byte by byte where a packet must be malformed) and reports, for every
normative statement of the specification (``statements-3.1.1.json``), whether
the broker honoured it. The oracle is a client of the broker under test and
nothing else: it never imports the mqttref broker, so that it judges ours by
the same rules as anyone else's.
"""
