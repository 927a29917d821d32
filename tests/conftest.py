"""Hypothesis profiles, chosen with the environment variable MQTTREF_PROFILE.

- ``dev`` (default): quick local runs.
- ``ci``: bounded, deterministic; what ``.ci/run`` uses.
- ``thorough``: long runs for hunting rare interleavings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("MQTTREF_PROFILE", "dev"))
