"""ACL files in mosquitto's ``acl_file`` syntax (impl/auth/acl.py): blocks, patterns, deny,
what a SUBSCRIBE filter may cover, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttref.impl.auth.acl import Access, AclFileError, _covers, _matches, parse_acl_file
from mqttref.impl.broker.matching import topic_matches

EXAMPLE = """\
# anonymous clients
topic read public/#

user alice
topic sensors/#
topic deny sensors/secret/#
topic write   log/with space

user bob
topic read sensors/+/temperature
pattern readwrite clients/%c/#
pattern read inbox/%u
pattern deny clients/%c/locked/#
"""


def test_blocks_go_to_anonymous_clients_users_and_everyone() -> None:
    acl = parse_acl_file(EXAMPLE, "acl")
    assert [r.topic for r in acl.anonymous] == ["public/#"]
    assert [(r.access, r.topic) for r in acl.users["alice"]] == [
        (Access.READWRITE, "sensors/#"), (Access.DENY, "sensors/secret/#"),
        (Access.WRITE, "log/with space")]
    assert [r.line for r in acl.patterns] == [11, 12, 13]


def test_a_deny_rule_beats_every_grant_for_reading_and_writing() -> None:
    alice = parse_acl_file(EXAMPLE).for_client("alice", "a1")
    assert alice.may_read("sensors/x")
    assert alice.may_write("sensors/x")
    assert not alice.may_read("sensors/secret/x")
    assert not alice.may_write("sensors/secret/x")
    assert alice.may_write("log/with space")
    assert not alice.may_read("log/with space")
    assert not alice.may_read("public/x")  # the anonymous block is not a user's


def test_patterns_fill_in_client_id_and_user_name_for_everyone() -> None:
    acl = parse_acl_file(EXAMPLE)
    bob = acl.for_client("bob", "b1")
    assert bob.may_write("clients/b1/x")
    assert not bob.may_write("clients/a1/x")
    assert bob.may_read("inbox/bob")
    assert not bob.may_read("inbox/alice")
    assert not bob.may_read("clients/b1/locked/x")  # a deny pattern too
    anonymous = acl.for_client(None, "c9")
    assert anonymous.may_read("clients/c9/x")
    assert anonymous.may_read("public/y")
    assert not anonymous.may_read("inbox/")  # %u patterns leave anonymous clients out


@pytest.mark.parametrize(("user", "client_id"), [("bob", "+"), ("bob", "#"), ("b+", "c1")])
def test_a_wildcard_in_a_name_gets_nothing_from_patterns(user: str, client_id: str) -> None:
    """CVE-2017-7650: '+' as client id must not turn clients/%c/# into clients/+/#; and
    a deny pattern that cannot be filled in safely denies everything."""
    client = parse_acl_file(EXAMPLE).for_client(user, client_id)
    assert not client.may_read("clients/b1/x")
    assert not client.may_read("sensors/a/temperature")
    assert not client.may_subscribe("sensors/+/temperature")


def test_a_subscribe_is_granted_only_where_a_read_rule_covers_the_filter() -> None:
    alice = parse_acl_file(EXAMPLE).for_client("alice", "a1")
    assert alice.may_subscribe("sensors/#")  # the deny part is withheld per message
    assert alice.may_subscribe("sensors/+/x")
    assert not alice.may_subscribe("sensors/secret/#")
    assert not alice.may_subscribe("#")
    assert not alice.may_subscribe("log/with space")  # write only
    bob = parse_acl_file(EXAMPLE).for_client("bob", "b1")
    assert bob.may_subscribe("sensors/kitchen/temperature")
    assert bob.may_subscribe("sensors/+/temperature")
    assert not bob.may_subscribe("sensors/#")
    assert not bob.may_subscribe("sensors/kitchen/+")


def test_wildcards_at_the_first_level_do_not_reach_dollar_topics() -> None:
    everything = parse_acl_file("topic read #\n").for_client(None, "c")
    assert everything.may_read("a/b")
    assert not everything.may_read("$SYS/broker/uptime")
    assert not everything.may_subscribe("$SYS/#")
    assert parse_acl_file("topic read $SYS/#\n").for_client(None, "c").may_subscribe("$SYS/#")


def test_without_any_rule_nothing_is_allowed() -> None:
    nobody = parse_acl_file("# only a comment\n").for_client("alice", "a")
    assert not nobody.may_read("a")
    assert not nobody.may_write("a")
    assert not nobody.may_subscribe("a")


@pytest.mark.parametrize(("text", "line", "words"), [
    ("topic read a\nsubscribe b\n", 2, "unknown keyword 'subscribe'"),
    ("\n\nuser\n", 3, "needs a user name"),
    ("topic read a/#/b\n", 1, "'#' must be a whole level"),
    ("topic a+\n", 1, "'+' must be a whole level"),
    ("user x\ntopic\n", 2, "needs a topic"),
    ("pattern read devices/%c-x/#\n", 1, "whole level"),
])
def test_a_bad_line_is_an_error_naming_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(AclFileError) as caught:
        parse_acl_file(text, "acl.conf")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"acl.conf:{line}: ")
    assert words in str(caught.value)


LEVELS = st.sampled_from(["a", "b", "$s", "+", "#", ""])
NAMES = st.lists(st.sampled_from(["a", "b", "$s", ""]), min_size=1, max_size=4).map("/".join)


def filters() -> st.SearchStrategy[str]:
    return st.lists(LEVELS, min_size=1, max_size=4).map("/".join).filter(
        lambda f: "#" not in f or (f.endswith("#") and f.count("#") == 1
                                   and (f == "#" or f.endswith("/#"))))


@settings(max_examples=300, deadline=None)
@given(rule=filters(), topic=NAMES)
def test_rule_matching_agrees_with_the_brokers_filter_matching(rule: str, topic: str) -> None:
    assert _matches(rule.split("/"), topic.split("/")) == topic_matches(rule, topic)


@settings(max_examples=300, deadline=None)
@given(rule=filters(), topic_filter=filters(), topic=NAMES)
def test_a_rule_that_covers_a_filter_matches_every_topic_the_filter_matches(
        rule: str, topic_filter: str, topic: str) -> None:
    if _covers(rule.split("/"), topic_filter.split("/")) and topic_matches(topic_filter, topic):
        assert topic_matches(rule, topic)


def test_the_example_in_docs_security_md_reads_as_it_says() -> None:
    text = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    example = text.split("An ACL file in mosquitto's `acl_file` syntax:")[1].split("```")[1]
    acl = parse_acl_file(example, "docs/security.md")
    alice = acl.for_client("alice", "a1")
    assert alice.may_write("log/with spaces")
    assert not alice.may_read("sensors/secret/x")
    assert acl.for_client(None, "c1").may_read("clients/c1/x")


def test_words_may_be_separated_by_tabs_and_runs_of_spaces() -> None:
    acl = parse_acl_file("user\t alice\ntopic \t read  a b\n")
    assert [(r.access, r.topic) for r in acl.users["alice"]] == [(Access.READ, "a b")]
