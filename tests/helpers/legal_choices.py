"""Configurations of the mqttref broker that each make one choice the MQTT 3.1.1
specification leaves to a server, for running the conformance oracle against a
broker that behaves legally but not like the default one.

``LEGAL_CHOICES[name]`` is the ``Config`` overrides of that configuration,
``DESCRIPTIONS[name]`` one line saying the choice; ``legal_config(name, port=0)``
builds the ``Config``. The keys are described in docs/broker.md (Configuration
keys) and ``mqttref.impl.broker.config.Config``; each is also a ``mqttref broker`` option.
"""

from __future__ import annotations

from typing import Any

from mqttref.impl.broker.config import Config

LEGAL_CHOICES: dict[str, dict[str, object]] = {
    "max_qos_1": {"max_qos": 1},
    "max_qos_0": {"max_qos": 0},
    "refuse_wildcards": {"refuse_wildcard_subscriptions": True},
    "refuse_space_filters": {"refuse_filter_characters": " "},
    "no_empty_client_id": {"allow_zero_length_clientid": False},
    "close_on_control_characters": {"reject_control_characters": True},
    "short_topics": {"max_topic_length": 64, "max_topic_levels": 8},
    "no_offline_qos0": {"queue_qos0_messages": False},
    "offline_qos0": {"queue_qos0_messages": True},
    "short_queue": {"max_queued": 3},
}
"""Short name -> Config overrides of one legal choice."""

DESCRIPTIONS: dict[str, str] = {
    "max_qos_1": "grants at most QoS 1 (SUBACK 1 for a QoS 2 request) [MQTT-3.8.4-6]",
    "max_qos_0": "grants only QoS 0 (SUBACK 0 for a QoS 1 or 2 request) [MQTT-3.8.4-6]",
    "refuse_wildcards": "refuses filters containing '+' or '#' with 0x80 [MQTT-3.8.3-2]",
    "refuse_space_filters": "refuses filters containing ' ' with 0x80 [MQTT-3.8.4-5]",
    "no_empty_client_id":
        "rejects an empty client id with CONNACK 0x02 and closes [MQTT-3.1.3-6, MQTT-3.1.3-9]",
    "close_on_control_characters":
        "closes the connection (before CONNACK: without one) on a control character or a "
        "non-character in any UTF-8 string (1.5.3)",
    "short_topics":
        "topics of at most 64 bytes and 8 levels: a longer filter gets 0x80, a longer "
        "topic name (PUBLISH or will) closes the connection",
    "no_offline_qos0":
        "does not keep QoS 0 messages for an absent persistent session (3.1.2.4; the default)",
    "offline_qos0": "queues QoS 0 messages for an absent persistent session (3.1.2.4)",
    "short_queue":
        "keeps at most 3 queued messages per session and drops the newest beyond "
        "(storage limits, 4.1)",
}
"""Short name -> one line saying what the broker does differently."""


def legal_config(name: str, **overrides: Any) -> Config:
    """The ``Config`` of one legal choice, with further fields (``port=0``...) on top."""
    fields: dict[str, Any] = {**LEGAL_CHOICES[name], **overrides}
    return Config(**fields)
