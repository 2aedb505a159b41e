"""100,000 generated payloads on every topic the core and the agents subscribe to, against a
running core and fleet on a real mosquitto: nothing crashes, real nodes keep their state,
every rejection is counted, the log stays short, and a wrong command's reply names the field.

Payloads: random bytes, truncated and mutated encodings of valid samples, oversized ones,
JSON with a value of the wrong type, unknown ops, and commands naming nodes that do not exist.
Messages of agents go to a made-up agent (`fz01`), so a payload that happens to be valid
changes only that agent; the real agents get only payloads their decoders refuse.
"""

import json
import random
from collections.abc import Iterator

import pytest

from protocols.codec import decode_message, encode, encode_json
from protocols.errors import MessageError
from protocols.limits import MAX_COMMAND_BYTES, MAX_SMALL_BYTES
from protocols.link import Link
from protocols.messages import Summary
from protocols.topics import AgentTopic, agent_topic, command_topic, core_status_topic
from tests.chaos.site import LiveSite, live_site, report
from tests.mqtt import running, until
from tests.samples import SAMPLES

SITE = "fuzz1"
PAYLOADS = 100_000
FAKE = "fz01"
BATCH = 1000


@pytest.fixture(scope="module")
def site() -> Iterator[LiveSite]:
    with live_site(SITE, racks=2) as live:
        yield live


def _encodings(kind: str) -> list[bytes]:
    samples = SAMPLES[kind]
    return [encode(s) for s in samples] + [encode_json(s) for s in samples]


def _mutated(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.randint(1, 5)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _wrong_type(rng: random.Random, kind: str) -> bytes:
    sample = json.loads(rng.choice(_encodings(kind)[len(SAMPLES[kind]) :]))
    if isinstance(sample, dict) and sample:
        key = rng.choice(sorted(sample))
        sample[key] = rng.choice([[], {}, "x" * rng.randint(0, 5), -1, 1e300, None, True])
    return json.dumps(sample).encode()


def _command(rng: random.Random, n: int) -> bytes:
    choice = rng.random()
    if choice < 0.3:
        return json.dumps({"op": rng.choice(["explode", "DRAIN", ""]), "id": f"u{n}"}).encode()
    if choice < 0.6:
        node = f"nowhere-{rng.randrange(1000)}"
        return json.dumps({"op": "cordon", "id": f"ghost-{n}", "nodes": [node]}).encode()
    while True:  # a retyped field can leave a valid command: only refused ones may go
        payload = _wrong_type(rng, "cmd")
        if not _decodes(command_topic(SITE), payload):
            return payload


def payloads(seed: int = 1) -> Iterator[tuple[str, bytes, bool]]:
    """PAYLOADS of (topic, payload, whether protocols/ refuses it), every kind of bad input on
    every subscribed topic."""
    rng = random.Random(seed)
    core_topics: dict[str, str] = {
        kind: agent_topic(kind, SITE, FAKE, FAKE)
        for kind in (AgentTopic.BIRTH, AgentTopic.DEATH, AgentTopic.TELEMETRY)
    }
    agent_topics: dict[str, str] = {
        AgentTopic.ASSIGN: agent_topic(AgentTopic.ASSIGN, SITE, "r001", "r001"),
        AgentTopic.AGENTCMD: agent_topic(AgentTopic.AGENTCMD, SITE, "r002", "r002"),
        "core": core_status_topic(SITE),
    }
    sample_kind = {"core": "status"}
    n = 0
    while n < PAYLOADS:
        n += 1
        target = rng.random()
        if target < 0.15:
            topic, payload = command_topic(SITE), _command(rng, n)
            yield topic, payload, not _decodes(topic, payload)
            continue
        pool = core_topics if target < 0.7 else agent_topics
        kind = rng.choice(sorted(pool))
        topic = pool[kind]
        samples = _encodings(sample_kind.get(kind, kind))
        how = rng.random()
        if how < 0.25:
            payload = rng.randbytes(rng.randint(0, 300))
        elif how < 0.5:
            sample = rng.choice(samples)
            payload = sample[: rng.randrange(max(len(sample), 1))]
        elif how < 0.8:
            payload = _mutated(rng, rng.choice(samples))
        elif how < 0.99:
            payload = _wrong_type(rng, sample_kind.get(kind, kind))
        else:
            limit = MAX_SMALL_BYTES if kind in ("death", "core") else MAX_COMMAND_BYTES * 200
            payload = b"\x92" + b"\x00" * limit
        valid = _decodes(topic, payload)
        if pool is agent_topics and valid:
            n -= 1
            continue  # the real agents get only what they must refuse
        yield topic, payload, not valid


def _decodes(topic: str, payload: bytes) -> bool:
    try:
        decode_message(topic, payload)
    except (MessageError, ValueError):
        return False
    return True


async def test_a_flood_of_bad_input_breaks_nothing(site: LiveSite) -> None:
    watcher = Link(site.endpoint, "fuzzer", subscriptions=[(f"aidc/v1/{SITE}/state/summary", 0)])
    async with running(watcher) as inbox:
        await until(
            lambda: (s := inbox.latest(Summary)) is not None and s.gpus_healthy == 64, timeout=90
        )
        before = inbox.received(Summary)
        sent = refused_by_core = 0

        def caught_up() -> bool:
            return inbox.received(Summary).rejected - before.rejected >= refused_by_core

        for topic, payload, refused in payloads():
            watcher.send(topic, payload)
            sent += 1
            to_core = not any(k in topic for k in ("/agentcmd/", "/assign/", "/core/status"))
            refused_by_core += to_core and refused
            if sent % BATCH == 0:
                # The broker drops QoS 0 messages a slow subscriber has not taken: keep the
                # flood at the core's pace, so every payload it must refuse reaches it.
                await until(caught_up, 60)
        await until(caught_up, 60)
        after = inbox.received(Summary)
        await until(lambda: inbox.received(Summary).time > after.time + 2, 30)  # still ticking
        # Agents report every 0.2 s and the core runs at 30x, so 0.6 s without a report (a core
        # chewing through a batch of refusals on a busy machine) counts a node lost until its
        # next report. What the flood must not do is leave anything lost or broken.
        await until(lambda: inbox.received(Summary).gpus_healthy == 64, 10)
    states = await site.node_states(rack="r001") | await site.node_states(rack="r002")
    assert set(states.values()) == {"ready"}, states
    reply = await site.command_json('{"op":"scale","id":"bad-scale","pool":"p","replicas":"x"}')
    assert not reply.ok
    assert "$.replicas" in (reply.error or "")
    site.assert_alive()
    log_lines = site.log_lines()
    assert log_lines < 1_000, f"{log_lines} log lines for {sent} payloads: not rate limited"
    report(
        "bad input",
        payloads=sent,
        refused_by_core_decoders=refused_by_core,
        rejections_counted=after.rejected - before.rejected,
        log_lines=log_lines,
    )
