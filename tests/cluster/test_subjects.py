"""MQTT topics as NATS subjects: reversible, valid for NATS and JetStream keys, and
matching in NATS's own terms exactly as MQTT matching does (4.7).

``nats_matches`` below is NATS's subject matching written from its documentation
(``*`` one token, ``>`` one or more trailing tokens), and ``mqtt_matches`` section 4.7
read independently, so a mistake in ``impl/cluster/subjects.py`` cannot hide behind
a shared helper.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mqttref.impl.cluster.subjects import (
    SubjectError,
    filter_subjects,
    level_token,
    subject_topic,
    token_level,
    topic_subject,
)
from tests.strategies import topic_filters, topic_levels, topic_names

KV_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
"""JetStream key-value keys (nats-py's and the server's rule)."""


def nats_matches(subject_filter: str, subject: str) -> bool:
    pattern, tokens = subject_filter.split("."), subject.split(".")
    for index, token in enumerate(pattern):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(pattern) == len(tokens)


def mqtt_matches(topic_filter: str, topic_name: str) -> bool:
    if topic_name.startswith("$") and topic_filter[0] in "+#":
        return False  # [MQTT-4.7.2-1]
    f, t = topic_filter.split("/"), topic_name.split("/")
    if f[-1] == "#":
        head = f[:-1]
        return len(t) >= len(head) and all(a in ("+", b) for a, b in zip(head, t, strict=False))
    return len(f) == len(t) and all(a in ("+", b) for a, b in zip(f, t, strict=True))


def valid_nats_subject(subject: str, *, wildcards: bool) -> bool:
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token or any(char.isspace() for char in token):
            return False
        if token in ("*", ">"):
            if not wildcards or (token == ">" and index != len(tokens) - 1):
                return False
        elif "*" in token or ">" in token:
            return False
    return True


MQTT_AWKWARD = st.sampled_from(["a.b", "a b", "*", ">", "", "$SYS", "=", "=41", "a\tb",
                                "ünï", "𪛔", "m", "d", "%", "\u00a0"])


@given(st.one_of(topic_levels(), MQTT_AWKWARD))
def test_a_level_survives_the_round_trip_through_one_token(level: str) -> None:
    token = level_token(level)
    assert token
    assert "." not in token
    assert token not in ("*", ">")
    assert KV_KEY.match(token)
    assert token_level(token) == level


@given(st.one_of(topic_names(), st.lists(MQTT_AWKWARD, min_size=1, max_size=4)
                 .map("/".join).filter(bool)))
@example("$SYS/broker/uptime")
@example("/")
@example("a//b")
def test_a_topic_name_survives_the_round_trip_and_is_a_valid_key(topic: str) -> None:
    subject = topic_subject(topic)
    assert valid_nats_subject(subject, wildcards=False)
    assert KV_KEY.match(subject)
    assert subject_topic(subject) == topic


@given(topic_filters(), topic_names())
@example("#", "$SYS/x")
@example("+/x", "$SYS/x")
@example("$SYS/#", "$SYS")
@example("a/#", "a")
@example("a/+", "a/")
@example("+", "")
@example("/#", "/")
def test_nats_matching_of_the_subjects_is_mqtt_matching_of_the_topics(
        topic_filter: str, topic: str) -> None:
    if not topic:
        return  # not a topic name [MQTT-4.7.3-1]
    subjects = filter_subjects(topic_filter)
    for subject_filter in subjects:
        assert valid_nats_subject(subject_filter, wildcards=True)
    nats = any(nats_matches(f, topic_subject(topic)) for f in subjects)
    assert nats == mqtt_matches(topic_filter, topic)


def test_a_wildcard_first_level_never_reaches_a_dollar_topic() -> None:
    """[MQTT-4.7.2-1]: ``#`` and ``+/...`` are mapped under the ordinary prefix, ``$SYS``
    topics under another one."""
    assert filter_subjects("#") == ("m.>",)
    assert filter_subjects("+/uptime") == ("m.*.uptime",)
    assert topic_subject("$SYS/uptime") == "d.=24SYS.uptime"
    assert filter_subjects("$SYS/#") == ("d.=24SYS", "d.=24SYS.>")


@pytest.mark.parametrize("subject", ["m", "x.a", "m.a..b", "m.a=4", "m.a=zz", "m.a b",
                                     "d.a", "m.=24SYS", "m.=FF"])
def test_a_subject_no_topic_maps_to_is_refused(subject: str) -> None:
    with pytest.raises(SubjectError):
        subject_topic(subject)
