"""Topic builders and the parser agree, and refuse ids that would break a topic."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.commands import Cordon, reply_destination
from protocols.ids import ID_PATTERN, check_command_id, check_id
from protocols.topics import (
    LOGIN,
    SUBTREE,
    AgentTopic,
    StateView,
    Topic,
    TopicKind,
    agent_filter,
    agent_topic,
    command_topic,
    core_filter,
    core_status_topic,
    events_topic,
    parse_topic,
    reply_topic,
    site_filter,
    state_filter,
    state_topic,
)

ids = st.from_regex(ID_PATTERN, fullmatch=True)


@given(kind=st.sampled_from(list(AgentTopic)), site=ids, rack=ids, agent=ids)
def test_agent_topics_round_trip(kind: AgentTopic, site: str, rack: str, agent: str) -> None:
    topic = agent_topic(kind, site, rack, agent)
    assert topic == f"aidc/v1/{site}/{kind}/{rack}/{agent}"
    assert parse_topic(topic) == Topic(site, TopicKind(kind), rack, agent)
    assert type(parse_topic(topic).kind) is TopicKind


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        (core_status_topic("dc1"), Topic("dc1", TopicKind.STATUS)),
        (events_topic("dc1"), Topic("dc1", TopicKind.EVENTS)),
        (command_topic("dc1"), Topic("dc1", TopicKind.CMD)),
        (reply_topic("dc1", "Drain_1.a"), Topic("dc1", TopicKind.REPLY, name="Drain_1.a")),
        ("aidc/v1/dc1/ctl/reply/tui-7/c1", Topic("dc1", TopicKind.REPLY, name="tui-7/c1")),
        *[(state_topic("dc1", view), Topic("dc1", TopicKind(view))) for view in StateView],
    ],
)
def test_core_topics_round_trip(topic: str, parsed: Topic) -> None:
    assert parse_topic(topic) == parsed
    assert type(parse_topic(topic).kind) is TopicKind


def test_every_agent_topic_and_state_view_is_a_topic_kind() -> None:
    assert {*AgentTopic, *StateView} < set(TopicKind)


def test_filters_use_single_level_wildcards() -> None:
    assert agent_filter(AgentTopic.TELEMETRY, "dc1") == "aidc/v1/dc1/telemetry/+/+"
    assert agent_filter(AgentTopic.BIRTH, "dc1", rack="r7") == "aidc/v1/dc1/birth/r7/+"


def test_acl_filters_take_subtrees_and_the_login_as_the_agent() -> None:
    assert site_filter("dc1") == "aidc/v1/dc1/#"
    assert core_filter("dc1") == "aidc/v1/dc1/core/#"
    assert state_filter("dc1") == "aidc/v1/dc1/state/+"
    assert state_filter("dc1", SUBTREE) == "aidc/v1/dc1/state/#"
    assert agent_filter(AgentTopic.ASSIGN, "dc1", agent=LOGIN) == "aidc/v1/dc1/assign/+/%u"
    with pytest.raises(ValueError, match="rack"):
        agent_filter(AgentTopic.ASSIGN, "dc1", rack=LOGIN)


@pytest.mark.parametrize(
    "bad", ["", "R01", "-r1", "r1/x", "r+", "r#", "a" * 64, "r1\n", "rack one", "é"]
)
def test_bad_ids_are_a_clear_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="is not valid: use lowercase letters, digits and '-'"):
        agent_topic(AgentTopic.BIRTH, "dc1", bad, "n1")
    with pytest.raises(ValueError, match="site"):
        check_id(bad, "site")


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x" * 65, "a b"])
def test_bad_command_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="command id"):
        check_command_id(bad)


@pytest.mark.parametrize(
    "topic",
    [
        "aidc/v2/dc1/core/status",
        "other/v1/dc1/core/status",
        "aidc/v1/dc1/bogus",
        "aidc/v1/dc1/birth/r1",
        "aidc/v1/dc1/birth/r1/n1/extra",
        "aidc/v1/dc1/state/everything",
        "aidc/v1/DC1/core/status",
        "aidc/v1/dc1/ctl/reply/a+b",
        "aidc/v1/dc1/ctl/reply/a/b/c/d/e",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        parse_topic(topic)


def test_reply_destination_defaults_and_stays_inside_the_reply_namespace() -> None:
    assert reply_destination("dc1", Cordon(id="c1", nodes=["n1"])) == "aidc/v1/dc1/ctl/reply/c1"
    mine = "aidc/v1/dc1/ctl/reply/tui-7/c1"
    assert reply_destination("dc1", Cordon(id="c1", nodes=["n1"], reply_to=mine)) == mine
    for bad in ["aidc/v1/dc1/assign/r1/r1", "aidc/v1/dc1/ctl/reply/#", "aidc/v1/dc2/ctl/reply/x"]:
        with pytest.raises(ValueError, match="reply_to must be a topic under"):
            reply_destination("dc1", Cordon(id="c1", nodes=["n1"], reply_to=bad))
