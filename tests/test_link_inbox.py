"""A link's bounded receive queue against a real mosquitto: a reader that falls behind a
telemetry flood gets every birth and death, in order, and the freshest telemetry the bound
holds; the rest is shed, counted by agent, across reconnects."""

import asyncio
from collections import Counter
from collections.abc import Iterator

import aiomqtt
import pytest

from aidc.runtime.brokers import spawned_broker
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.topics import AgentTopic, TopicKind, agent_topic, parse_topic
from tests.mqtt import Inbox, running, until

SITE = "flood"
AGENTS = [f"r{n}" for n in range(6)]
ROUNDS = 100
"""Telemetry messages each agent publishes."""
PAYLOAD_BYTES = 4000
BOUND = 256 * 1024
"""About 25 of the flood's messages (each is also charged MQTT 5's properties, 6 KiB): a
twenty-fourth of the flood."""


@pytest.fixture(scope="module")
def mosquitto() -> Iterator[Endpoint]:
    with spawned_broker("mosquitto") as endpoint:
        yield endpoint


class Blocked(Inbox):
    """A reader stuck on the first message it is handed until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def put(self, message: aiomqtt.Message) -> None:
        await super().put(message)
        await self.release.wait()


def payload(what: str, size: int = PAYLOAD_BYTES) -> bytes:
    return what.encode().ljust(size, b".")


def flood_plan(tag: str) -> list[tuple[str, bytes]]:
    """Births, then rounds of every agent's telemetry, with one agent dying and coming back
    halfway and another dying late; then every agent's death."""
    plan = [
        (agent_topic(AgentTopic.BIRTH, SITE, a, a), payload(f"{tag} birth {a}", 300))
        for a in AGENTS
    ]
    for n in range(ROUNDS):
        for a in AGENTS:
            plan.append((agent_topic(AgentTopic.TELEMETRY, SITE, a, a), payload(f"{tag} {a} {n}")))
        if n == ROUNDS // 2:
            plan.append(
                (agent_topic(AgentTopic.DEATH, SITE, "r0", "r0"), payload(f"{tag} death r0 1", 50))
            )
            plan.append(
                (agent_topic(AgentTopic.BIRTH, SITE, "r0", "r0"), payload(f"{tag} birth r0 2", 300))
            )
        if n == ROUNDS - 3:
            plan.append(
                (agent_topic(AgentTopic.DEATH, SITE, "r5", "r5"), payload(f"{tag} death r5 1", 50))
            )
    plan += [
        (agent_topic(AgentTopic.DEATH, SITE, a, a), payload(f"{tag} death {a}", 50)) for a in AGENTS
    ]
    return plan


def is_telemetry(topic: str) -> bool:
    return parse_topic(topic).kind == TopicKind.TELEMETRY


async def flood(
    subscriber: Link, publisher: Link, tag: str
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """Publish the plan while the subscriber's reader is stuck on its first message; release
    it once the link has received everything. What was published, and what was handed on."""
    plan = flood_plan(tag)
    blocked = Blocked()
    arrived_before = subscriber.inbox.arrived
    async with running(subscriber, blocked), running(publisher):
        for topic, body in plan:
            await publisher.publish(topic, body, qos=1)
        await until(lambda: subscriber.inbox.arrived - arrived_before == len(plan))
        assert len(blocked.messages) == 1, "the reader was not stuck"
        blocked.release.set()
        await until(subscriber.inbox.empty)
    return plan, [(m.topic.value, bytes(m.payload)) for m in blocked.messages]


async def test_a_stuck_reader_gets_every_birth_and_death_and_the_freshest_telemetry(
    mosquitto: Endpoint,
) -> None:
    subscriber = Link(
        mosquitto, "inbox-sub", subscriptions=[(f"aidc/v1/{SITE}/#", 1)], inbox_bytes=BOUND
    )
    publisher = Link(mosquitto, "inbox-pub")
    plan, got = await flood(subscriber, publisher, "a")

    important = [entry for entry in plan if not is_telemetry(entry[0])]
    assert [entry for entry in got if not is_telemetry(entry[0])] == important
    sent = [entry for entry in plan if is_telemetry(entry[0])]
    kept = [entry for entry in got if is_telemetry(entry[0])]
    assert 0 < len(kept) < len(sent) / 10
    assert kept == sent[-len(kept) :], "not the newest telemetry"
    assert got == [entry for entry in plan if not is_telemetry(entry[0]) or entry in kept], (
        "out of order"
    )

    assert subscriber.shed_total == len(sent) - len(kept)
    per_agent = Counter(topic.rsplit("/", 1)[1] for topic, _ in sent)
    per_agent.subtract(topic.rsplit("/", 1)[1] for topic, _ in kept)
    assert subscriber.shed == +per_agent
    assert subscriber.inbox.shed_kinds == {TopicKind.TELEMETRY: subscriber.shed_total}
    assert 0 < subscriber.inbox.peak_bytes <= BOUND


async def test_shed_counts_outlive_the_connection(mosquitto: Endpoint) -> None:
    subscriber = Link(
        mosquitto, "inbox-again", subscriptions=[(f"aidc/v1/{SITE}/#", 1)], inbox_bytes=BOUND
    )
    publisher = Link(mosquitto, "inbox-pub-again")
    await flood(subscriber, publisher, "b")
    first = subscriber.shed_total
    first_r3 = subscriber.shed["r3"]
    await flood(subscriber, publisher, "c")
    assert subscriber.session == 2
    assert first > 0
    assert subscriber.shed_total > first
    assert subscriber.shed["r3"] > first_r3
