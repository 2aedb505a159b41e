"""The core with real agents over a real mosquitto: it learns the fleet, serves traffic, and a
JSON drain sent with mosquitto_pub is answered ok and ends with the node drained."""

import asyncio
import contextlib
import functools
import json
import math
import os
import signal
import subprocess
from collections.abc import Iterator

import msgspec
import pytest

from agents.catalog import GROQ_LPU, INLET_C
from aidc.runtime.brokers import spawned_broker
from protocols.codec import arrays, decode_message, encode, read_answer
from protocols.commands import Command, InjectFault, Query, Reply
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import PoolState, PoolStates, RackStates, Summary
from protocols.queries import ANSWERS, EventsPage, NodeDetail, NodesPage
from sim.service import BIRTHS_SETTLE_S
from tests.mqtt import running, spawn_aidc
from tests.mqtt import until as wait_until
from tests.sim.test_pools import hgx_rack

SITE = "core1"


TOPOLOGY = """
[[racks]]
kind = "hgx-h100"
count = 2

[[racks]]
kind = "lpu"
"""
"""Racks r001 and r002 of HGX H100s, r003 a GroqRack, and the fabric's network rack net01."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """mosquitto, a core at 30x and agents for TOPOLOGY."""
    topology = tmp_path_factory.mktemp("site") / "site.toml"
    topology.write_text(TOPOLOGY)
    with spawned_broker("mosquitto") as endpoint:
        url = f"mqtt://127.0.0.1:{endpoint.port}"
        core = spawn_aidc("core", "--broker", url, "--site", SITE, "--tick", "0.2", "--speed", "30")
        agents = spawn_aidc(
            "agents",
            "--broker",
            url,
            "--site",
            SITE,
            "--topology",
            str(topology),
            "--interval",
            "0.2",
        )
        try:
            yield Endpoint(endpoint.host, endpoint.port, mqtt5=True)
        finally:
            for process in (agents, core):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
            for process in (agents, core):
                _, err = process.communicate(timeout=15)
                assert "Traceback" not in err, err


COLD_START_S = 90.0
"""A fresh numba cache compiles the core's kernels before its first tick."""
until = functools.partial(wait_until, timeout=COLD_START_S)


async def test_the_core_learns_the_fleet_and_serves(site: Endpoint) -> None:
    watcher = Link(site, "watch-core", subscriptions=[(f"aidc/v1/{SITE}/state/+", 0)])
    async with running(watcher) as inbox:
        await until(lambda: (s := inbox.latest(Summary)) is not None and s.gpus_healthy == 64)

        def h100() -> object:
            pools = inbox.latest(PoolStates)
            return pools and next(p for p in pools.pools if p.pool == "llama-70b-h100")

        await until(lambda: (p := h100()) is not None and p.replicas_ready == 2)  # type: ignore[attr-defined]
        await until(lambda: inbox.received(Summary).tokens_per_s > 0)
        summary = inbox.received(Summary)
        assert summary.nodes.get("ready") == 8 + 9 + 3, "HGX nodes, GroqNodes, switches"
        assert summary.power_w > 0

        def busiest_rack() -> float:
            racks = inbox.latest(RackStates)
            record = arrays(racks, "columns") if racks else None
            return float(record["utilization"].max()) if record is not None else 0.0

        # the replicas' GPUs get busy: the core's assignments reach the right agents' devices
        await until(lambda: busiest_rack() > 20.0)


async def test_the_lpu_rack_heats_under_its_replica_and_every_rack_counts(site: Endpoint) -> None:
    watcher = Link(site, "watch-racks", subscriptions=[(f"aidc/v1/{SITE}/state/racks", 0)])
    async with running(watcher) as inbox:

        def rack(name: str) -> dict[str, float]:
            racks = inbox.latest(RackStates)
            record = arrays(racks, "columns") if racks else None
            if racks is None or record is None or name not in racks.racks:
                return {}
            row = racks.racks.index(name)
            return {k: float(record[k][row]) for k in record.dtype.names or ()}

        # the LPU replica's load reaches its chips, whose telemetry comes back to the core
        await until(lambda: rack("r003").get("utilization", 0.0) > 50.0)
        lpu = rack("r003")
        assert lpu["devices"] == 72
        assert lpu["power_kw"] > 72 * GROQ_LPU.idle_power_w / 1000
        assert (
            lpu["temperature_c"]
            > INLET_C + GROQ_LPU.thermal_resistance_c_per_w * GROQ_LPU.idle_power_w
        )
        network = rack("net01")
        assert network["devices"] == 3, "the fabric's switches"
        assert math.isnan(network["temperature_c"])


async def test_a_json_drain_from_mosquitto_pub_is_ok_and_the_node_drains(site: Endpoint) -> None:
    replies = Link(site, "replies", subscriptions=[(f"aidc/v1/{SITE}/ctl/reply/#", 1)])
    async with running(replies) as inbox:
        await asyncio.sleep(3)
        drain = (
            '{"op":"drain","id":"drain-r001-n01","nodes":["r001-n01"],"grace_s":30,"force":true}'
        )
        subprocess.run(
            ["mosquitto_pub", "-p", str(site.port), "-t", f"aidc/v1/{SITE}/ctl/cmd", "-m", drain],
            check=True,
        )
        (reply,) = await inbox.wait_for(1, timeout=10)
        answer = json.loads(reply.payload)
        assert answer["id"] == "drain-r001-n01"
        assert answer["ok"] is True, answer
        assert answer["result"]["nodes"]["r001-n01"] in ("draining", "drained")

        async def state() -> str:
            query = Query(id=f"q-{len(inbox.messages)}", what="nodes", filter="r001-n01")
            await replies.publish(f"aidc/v1/{SITE}/ctl/cmd", encode(query), qos=1)
            await inbox.wait_for(len(inbox.messages) + 1, timeout=10)
            _, last = decode_message(
                inbox.messages[-1].topic.value, bytes(inbox.messages[-1].payload)
            )
            return read_answer(NodesPage, last).nodes[0].state

        async with asyncio.timeout(30):
            while await state() != "drained":
                await asyncio.sleep(0.5)


async def test_malformed_telemetry_is_counted_not_fatal(site: Endpoint) -> None:
    watcher = Link(site, "watch-bad", subscriptions=[(f"aidc/v1/{SITE}/state/summary", 0)])
    async with running(watcher) as inbox:
        await until(lambda: inbox.latest(Summary) is not None)
        before = inbox.received(Summary).rejected
        for payload in (b"\x00\xff", b"[1,2]", b"{}"):
            await watcher.publish(f"aidc/v1/{SITE}/telemetry/r001/r001", payload, qos=1)
        await until(lambda: inbox.received(Summary).rejected >= before + 3)
        assert inbox.received(Summary).gpus_healthy > 0


@pytest.mark.parametrize("what", ["pools", "fabric", "events", "commands", "nodes"])
async def test_every_query_is_answered(site: Endpoint, what: str) -> None:
    replies = Link(
        site, f"reader-{what}", subscriptions=[(f"aidc/v1/{SITE}/ctl/reply/read-{what}", 1)]
    )
    async with running(replies) as inbox:
        query = Query(id=f"read-{what}", what=what)  # type: ignore[arg-type]
        await replies.publish(f"aidc/v1/{SITE}/ctl/cmd", encode(query), qos=1)
        (message,) = await inbox.wait_for(1, timeout=20)
    _, reply = decode_message(message.topic.value, bytes(message.payload))
    assert reply.ok, reply.error
    assert reply.result
    read_answer(ANSWERS[what], reply)  # type: ignore[index]


async def test_xid_79_through_the_core_drains_the_node_and_moves_its_replica(
    site: Endpoint,
) -> None:
    pool = "llama-70b-h100"
    replies = Link(
        site,
        "xid-drill",
        subscriptions=[(f"aidc/v1/{SITE}/ctl/reply/#", 1), (f"aidc/v1/{SITE}/state/pools", 0)],
    )
    async with running(replies) as inbox:
        asked = 0

        async def ask(command: Command) -> Reply:
            nonlocal asked
            asked += 1
            await replies.publish(f"aidc/v1/{SITE}/ctl/cmd", encode(command), qos=1)
            reply_topic = f"aidc/v1/{SITE}/ctl/reply/{command.id}"
            await until(lambda: any(m.topic.value == reply_topic for m in inbox.messages))
            message = next(m for m in inbox.messages if m.topic.value == reply_topic)
            _, reply = decode_message(reply_topic, bytes(message.payload))
            assert isinstance(reply, Reply)
            return reply

        def ready() -> int:
            pools = inbox.latest(PoolStates)
            return (
                next((p.replicas_ready for p in pools.pools if p.pool == pool), 0) if pools else 0
            )

        await until(lambda: ready() == 2)
        held = await ask(Query(id="held", what="nodes", pool=pool, state="ready"))
        victim = read_answer(NodesPage, held).nodes[0].node
        fault = InjectFault(id="xid79", target=victim, kind="xid", params={"code": 79, "gpu": 0})
        assert (await ask(fault)).ok
        async with asyncio.timeout(COLD_START_S):
            while True:
                reply = await ask(Query(id=f"detail-{asked}", what="node", node=victim))
                detail = read_answer(NodeDetail, reply)
                # A GPU off the bus fails the node; under that, the control plane drains it.
                if (detail.state, detail.intent) == ("failed", "drained"):
                    break
                await asyncio.sleep(0.5)
        assert any(e.severity == "critical" for e in detail.events)
        await until(lambda: ready() == 2)  # its replica placed elsewhere and warm again
        now_held = await ask(Query(id="held-after", what="nodes", pool=pool))
        assert victim not in [row.node for row in read_answer(NodesPage, now_held).nodes]


async def test_a_birth_on_another_agents_topic_is_refused(site: Endpoint) -> None:
    watcher = Link(site, "impostor", subscriptions=[(f"aidc/v1/{SITE}/state/summary", 0)])
    async with running(watcher) as inbox:
        await until(lambda: (s := inbox.latest(Summary)) is not None and s.gpus_healthy > 0)
        healthy, before = inbox.received(Summary).gpus_healthy, inbox.received(Summary).rejected
        # r001 born again with a newer session, but on agent zz01's topic
        impostor = msgspec.structs.replace(hgx_rack("r001", 4), session=99)
        await watcher.publish(f"aidc/v1/{SITE}/birth/r001/zz01", encode(impostor), qos=1)
        await until(lambda: inbox.received(Summary).rejected > before)
        # Had the core believed it, r001's real telemetry would be of an old session, and
        # its nodes lost after three of the impostor's 1 s intervals (6 s at 30x).
        await asyncio.sleep(6.0)
        assert inbox.received(Summary).gpus_healthy == healthy
        assert inbox.received(Summary).nodes.get("lost", 0) == 0


async def test_only_what_stays_unplaced_after_the_births_is_warned_about(site: Endpoint) -> None:
    watcher = Link(
        site,
        "watch-unplaced",
        subscriptions=[
            (f"aidc/v1/{SITE}/state/+", 0),
            (f"aidc/v1/{SITE}/ctl/reply/unplaced", 1),
        ],
    )
    async with running(watcher) as inbox:

        def pools() -> dict[str, PoolState]:
            states = inbox.latest(PoolStates)
            return {p.pool: p for p in states.pools} if states else {}

        await until(lambda: (p := pools().get("llama-70b-h100")) and p.replicas_ready == 2)
        await asyncio.sleep(BIRTHS_SETTLE_S + 1.0)
        query = Query(id="unplaced", what="events", filter="control", limit=1000)
        await watcher.publish(f"aidc/v1/{SITE}/ctl/cmd", encode(query), qos=1)
        await until(lambda: inbox.latest(Reply))
        reply, shown = inbox.latest(Reply), pools()
    assert reply is not None
    assert reply.result is not None
    events = read_answer(EventsPage, reply).events
    warned = [e.message for e in events if e.severity == "warning"]
    assert "pool llama-70b-gb200: the site has no NVIDIA GB200, so it stays empty" in warned
    assert shown["llama-70b-h100"].has_hardware
    assert not shown["llama-70b-gb200"].has_hardware
    for sentence in warned:
        pool = shown[sentence.removeprefix("pool ").split(":")[0]]
        assert pool.replicas_ready + pool.replicas_warming < pool.replicas_desired, sentence
