"""The MQTT 5.0 conformance checks, registered only for ``--protocol 5``.

Each cites 5.0 statement ids (statements-5.0.json), which 3.1.1's numbering does not
share. Importing this package registers them in ``scenario.REGISTRIES["5.0"]``.
"""

from mqttref.oracle.checks5 import (
    auth,
    basics,
    connect,
    features,
    flow,
    messages,
    problems,
    qos,
    resend,
    retained,
    session,
    shared,
    subscribe,
    topics,
    will,
)

__all__ = ["auth", "basics", "connect", "features", "flow", "messages", "problems", "qos", "resend",
           "retained", "session", "shared", "subscribe", "topics", "will"]
