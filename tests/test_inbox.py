"""The bounded receive queue, without a broker: it holds its bound, sheds the oldest
sheddable message first and counts it by agent, never drops anything else, keeps arrival
order, and what it charges a message covers the memory the message takes."""

import asyncio
import gc
import tracemalloc
from collections import Counter

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocols.inbox import (
    MESSAGE_OVERHEAD_BYTES,
    PROPERTIES_OVERHEAD_BYTES,
    UNREADABLE,
    ReceiveQueue,
    charge,
    shed_class,
)
from protocols.topics import (
    AgentTopic,
    StateView,
    TopicKind,
    agent_topic,
    command_topic,
    core_status_topic,
    events_topic,
    parse_topic,
    reply_topic,
    state_topic,
)

SITE = "dc1"


def message(topic: str, payload: bytes = b"", *, v5: bool = False) -> aiomqtt.Message:
    """A message as aiomqtt hands it on (with MQTT 5's empty properties if `v5`)."""
    properties = Properties(PacketTypes.PUBLISH) if v5 else None  # type: ignore[no-untyped-call]
    return aiomqtt.Message(topic, payload, qos=0, retain=False, mid=0, properties=properties)


def agent_message(kind: AgentTopic, agent: str, payload: bytes = b"") -> aiomqtt.Message:
    return message(agent_topic(kind, SITE, agent, agent), payload)


def telemetry(agent: str, size: int = 1000, mark: int = 0) -> aiomqtt.Message:
    """A telemetry message of `size` bytes whose first bytes say which one it is."""
    return agent_message(AgentTopic.TELEMETRY, agent, mark.to_bytes(4, "big").ljust(size, b"."))


def drain(queue: ReceiveQueue) -> list[aiomqtt.Message]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def marks(messages: list[aiomqtt.Message]) -> list[int]:
    return [int.from_bytes(m.payload[:4], "big") for m in messages]


def test_topics_are_classed_as_the_wire_contract_says() -> None:
    assert shed_class(agent_topic(AgentTopic.TELEMETRY, SITE, "r1", "r1-gw")) == (
        TopicKind.TELEMETRY,
        "r1-gw",
    )
    assert shed_class(agent_topic(AgentTopic.ASSIGN, SITE, "r1", "r1")) == (
        TopicKind.ASSIGN,
        "r1",
    )
    for view in StateView:
        assert shed_class(state_topic(SITE, view)) == (TopicKind(view), f"state/{view}")
    never = [
        agent_topic(AgentTopic.BIRTH, SITE, "r1", "r1"),
        agent_topic(AgentTopic.DEATH, SITE, "r1", "r1"),
        agent_topic(AgentTopic.AGENTCMD, SITE, "r1", "r1"),
        command_topic(SITE),
        reply_topic(SITE, "c1"),
        core_status_topic(SITE),
        events_topic(SITE),
        "aidc/v1/dc1/birth/R1/x",  # does not parse: an uppercase rack id
        "elsewhere/entirely",
    ]
    assert [shed_class(topic) for topic in never] == [None] * len(never)
    # telemetry whose ids do not parse is shed all the same: a flood of it is bounded too
    assert shed_class("aidc/v1/dc1/telemetry/R1/x") == (TopicKind.TELEMETRY, UNREADABLE)


def test_the_bound_holds_and_the_oldest_sheddable_message_goes_first() -> None:
    each = charge(telemetry("r1", 1000))
    queue = ReceiveQueue(max_bytes=5 * each)
    for n in range(50):
        queue.put_nowait(telemetry(f"r{n % 3}", 1000, n))
        assert queue.held_bytes <= queue.max_bytes
        assert queue.qsize() == min(n + 1, 5)
    assert queue.peak_bytes == 5 * each
    held = queue.held_bytes
    out = drain(queue)
    assert held == sum(charge(m) for m in out)
    assert marks(out) == [45, 46, 47, 48, 49]
    assert queue.held_bytes == 0


def test_drops_are_counted_by_agent_by_kind_and_in_all() -> None:
    queue = ReceiveQueue(max_bytes=3 * charge(telemetry("r1", 1000)))
    published = Counter[str]()
    for n in range(40):
        agent = ("r1", "r1", "r2", "r3")[n % 4]
        queue.put_nowait(telemetry(agent, 1000, n))
        published[agent] += 1
    handed_on = Counter(m.topic.value.rsplit("/", 1)[1] for m in drain(queue))
    assert queue.shed == published - handed_on
    assert queue.shed_total == 37
    assert queue.shed_kinds == {TopicKind.TELEMETRY: 37}


def test_state_views_and_assignments_are_shed_and_counted_by_view_and_agent() -> None:
    big = b"x" * 4000
    queue = ReceiveQueue(max_bytes=charge(message(state_topic(SITE, StateView.RACKS), big)))
    queue.put_nowait(message(state_topic(SITE, StateView.RACKS), big))
    queue.put_nowait(agent_message(AgentTopic.ASSIGN, "r7", big))
    queue.put_nowait(message(state_topic(SITE, StateView.SUMMARY), big))
    assert queue.shed == {"state/racks": 1, "r7": 1}
    assert queue.shed_kinds == {TopicKind.RACKS: 1, TopicKind.ASSIGN: 1}
    assert [m.topic.value for m in drain(queue)] == [state_topic(SITE, StateView.SUMMARY)]


def test_nothing_but_sheddable_messages_is_ever_dropped() -> None:
    queue = ReceiveQueue(max_bytes=10_000)
    kept = []
    for n in range(2000):
        queue.put_nowait(telemetry(f"r{n % 7}", 2000, n))
        if n % 10 == 0:
            kind = (AgentTopic.BIRTH, AgentTopic.DEATH, AgentTopic.AGENTCMD)[n % 3]
            important = agent_message(kind, f"r{n % 7}", b"y" * 5000)
            queue.put_nowait(important)
            kept.append(important)
    out = drain(queue)
    assert [m for m in out if shed_class(m.topic.value) is None] == kept
    assert queue.shed_total == 2000 - len(out) + len(kept)
    assert queue.shed_total > 1900


def test_arrival_order_is_kept_across_the_two_classes() -> None:
    queue = ReceiveQueue(max_bytes=1_000_000)
    sent = []
    for n in range(30):
        for each in (
            agent_message(AgentTopic.BIRTH, "r1", bytes([n])),
            telemetry("r1", 100, n),
            telemetry("r1", 100, n + 100),
            agent_message(AgentTopic.DEATH, "r1", bytes([n])),
            message(core_status_topic(SITE), bytes([n])),
        ):
            queue.put_nowait(each)
            sent.append(each)
    assert drain(queue) == sent


def test_a_death_never_overtakes_its_agents_earlier_telemetry_when_shedding() -> None:
    queue = ReceiveQueue(max_bytes=2 * charge(telemetry("r1", 1000)))
    for n in range(5):
        queue.put_nowait(telemetry("r1", 1000, n))
    queue.put_nowait(agent_message(AgentTopic.DEATH, "r1"))
    queue.put_nowait(telemetry("r2", 1000, 99))
    kinds = [shed_class(m.topic.value) for m in drain(queue)]
    assert kinds == [(TopicKind.TELEMETRY, "r1"), None, (TopicKind.TELEMETRY, "r2")]


def test_a_message_larger_than_the_bound_is_kept_alone() -> None:
    queue = ReceiveQueue(max_bytes=10_000)
    queue.put_nowait(telemetry("r1", 5000, 1))
    queue.put_nowait(telemetry("r1", 50_000, 2))
    assert marks(drain(queue)) == [2]
    assert queue.shed_total == 1


def test_the_charge_is_payload_topic_and_overhead() -> None:
    topic = agent_topic(AgentTopic.TELEMETRY, SITE, "r1", "r1")
    assert charge(message(topic, b"z" * 100)) == 100 + len(topic) + MESSAGE_OVERHEAD_BYTES
    assert (
        charge(message(topic, b"z" * 100, v5=True))
        == 100 + len(topic) + MESSAGE_OVERHEAD_BYTES + PROPERTIES_OVERHEAD_BYTES
    )


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
@pytest.mark.parametrize("size", [10, 19_000])
def test_what_a_message_is_charged_covers_the_memory_it_takes(v5: bool, size: int) -> None:
    queue = ReceiveQueue(max_bytes=1 << 40)
    count = 2000
    for n in range(count):  # the topics' parses are kept apart, bounded by their own cache
        parse_topic(agent_topic(AgentTopic.TELEMETRY, SITE, f"r{n:05}", f"r{n:05}"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(count):
            # built as paho's reader builds them: a fresh topic string and payload each
            topic = agent_topic(AgentTopic.TELEMETRY, SITE, f"r{n:05}", f"r{n:05}")
            queue.put_nowait(message(topic, bytes(size - 1) + b"!", v5=v5))
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert taken <= queue.held_bytes, f"{taken / count:.0f} bytes a message"


def test_memory_stays_flat_under_a_flood() -> None:
    bound = 2_000_000
    queue = ReceiveQueue(max_bytes=bound)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(4000):  # 40 times the bound, from 500 agents, some on MQTT 5
            topic = agent_topic(AgentTopic.TELEMETRY, SITE, f"r{n % 500}", f"r{n % 500}")
            queue.put_nowait(message(topic, bytes(20_000), v5=n % 2 == 0))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counters = 200_000  # the shed counts of 500 agents: about 100 bytes each, a guess
    assert grown <= bound + counters
    assert queue.shed_total > 3800
    assert len(queue.shed) == 500


async def test_a_waiting_get_is_woken_by_a_put() -> None:
    queue = ReceiveQueue()
    getting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getting.done()
    sent = telemetry("r1")
    queue.put_nowait(sent)
    assert await asyncio.wait_for(getting, 1) is sent


def test_discard_drops_what_waits_uncounted() -> None:
    queue = ReceiveQueue()
    queue.put_nowait(telemetry("r1"))
    queue.put_nowait(agent_message(AgentTopic.BIRTH, "r1"))
    assert queue.discard() == 2
    assert queue.empty()
    assert queue.held_bytes == 0
    assert queue.shed_total == 0


def test_a_bound_below_one_byte_is_refused_in_a_sentence() -> None:
    refusal = r"^a receive queue's bound must be 1 byte or more, not 0$"
    with pytest.raises(ValueError, match=refusal):
        ReceiveQueue(max_bytes=0)
