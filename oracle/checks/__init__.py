"""The conformance checks, one module per area of the specification.

Importing this package registers every check in ``scenario.REGISTRY``.
"""

from mqttref.oracle.checks import (
    acl,
    connect,
    fixed_header,
    malformed,
    qos,
    retain,
    robustness,
    session,
    subscriptions,
    topics,
    will,
)

__all__ = [
    "acl",
    "connect",
    "fixed_header",
    "malformed",
    "qos",
    "retain",
    "robustness",
    "session",
    "subscriptions",
    "topics",
    "will",
]
