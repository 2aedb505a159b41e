"""Agents against a real mosquitto: births, telemetry, assignments, commands, faults, deaths."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.fleet import Fleet
from agents.topology import generated_site
from aidc.runtime.brokers import free_port, spawned_broker
from protocols.codec import arrays, decode_message, encode
from protocols.columns import GpuLoad, layout
from protocols.commands import ClearFault, InjectFault, Rebirth
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import Assignment, Birth, CoreStatus, Death, Telemetry
from protocols.topics import AgentTopic, agent_topic, core_status_topic
from tests.mqtt import running, until

ROOT = Path(__file__).resolve().parents[2]
SITE = "t1"


@pytest.fixture(scope="module")
def mosquitto() -> Iterator[Endpoint]:
    with spawned_broker("mosquitto") as endpoint:
        yield endpoint


@contextlib.asynccontextmanager
async def fleet_running(fleet: Fleet) -> AsyncIterator[Fleet]:
    task = asyncio.create_task(fleet.run())
    try:
        yield fleet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_birth_then_telemetry_then_clean_deaths(mosquitto: Endpoint) -> None:
    site = generated_site(SITE, 2, "hgx-h100")
    fleet = Fleet(site, mosquitto, interval_s=0.2, seed=1, connection="rack")
    watcher = Link(mosquitto, "watch-1", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    async with running(watcher) as inbox:
        async with fleet_running(fleet):
            await until(lambda: len(inbox.decoded(Telemetry)) >= 2 * len(fleet.agents))
        await until(lambda: len(inbox.decoded(Death)) == len(fleet.agents))
    births = inbox.decoded(Birth)
    assert {b.agent for b in births} == {a.id for a in fleet.agents}
    gpu_birth = next(b for b in births if b.agent == "r001")
    assert [n.node for n in gpu_birth.nodes] == [f"r001-n{i:02d}" for i in range(1, 5)]
    assert all(len(n.gpus) == 8 and len(n.nics) == 8 for n in gpu_birth.nodes)
    first: dict[str, type[Birth | Telemetry]] = {}
    for message in inbox.messages:
        _, decoded = decode_message(message.topic.value, bytes(message.payload))
        if isinstance(decoded, Birth | Telemetry):
            first.setdefault(decoded.agent, type(decoded))
    assert set(first.values()) == {Birth}, "an agent sent telemetry before its birth"
    telemetry = [t for t in inbox.decoded(Telemetry) if t.agent == "r001"]
    assert [t.seq for t in telemetry] == list(range(1, len(telemetry) + 1))
    gpu = arrays(telemetry[-1], "gpu")
    assert gpu is not None
    assert gpu["node"].size == 32
    assert np.all(gpu["DCGM_FI_DEV_POWER_USAGE"] > 0)
    assert all(d.clean for d in inbox.decoded(Death))


async def test_assignment_drives_the_devices_and_faults_show(mosquitto: Endpoint) -> None:
    site = generated_site(SITE, 1, "hgx-h100")
    fleet = Fleet(site, mosquitto, interval_s=0.2, seed=2, connection="rack")
    agent, link = fleet.agents[0], fleet.connections[0].link
    core = Link(mosquitto, "core-2", subscriptions=[(f"aidc/v1/{SITE}/telemetry/+/+", 0)])
    async with running(core) as inbox, fleet_running(fleet):
        await until(lambda: link.session > 0 and agent.seq > 0)
        nodes = agent.nodes
        load = layout(GpuLoad).pack(
            {
                "node": np.repeat(np.arange(4), 8),
                "gpu": np.tile(np.arange(8), 4),
                "busy": 1.0,
                "tensor": 0.8,
                "dram": 0.6,
                "memory_mib": 60_000.0,
                "nvlink_bytes_per_s": 1e11,
            },
        )
        assignment = Assignment(agent.id, link.session, 1, 0.0, nodes, gpu=load)
        await core.publish(
            agent_topic(AgentTopic.ASSIGN, SITE, agent.rack, agent.id), encode(assignment), qos=1
        )

        def latest_gpu() -> np.ndarray:
            telemetry = [t for t in inbox.decoded(Telemetry) if t.agent == agent.id][-1]
            record = arrays(telemetry, "gpu")
            assert record is not None
            return record

        await until(lambda: bool(np.all(latest_gpu()["DCGM_FI_DEV_GPU_UTIL"] > 80)))
        busy = latest_gpu()
        assert np.all(busy["DCGM_FI_DEV_FB_USED"] > 55_000)
        assert np.all(busy["DCGM_FI_DEV_POWER_USAGE"] > 300)

        command = agent_topic(AgentTopic.AGENTCMD, SITE, agent.rack, agent.id)
        fault = InjectFault(id="x-1", target=nodes[1], kind="xid", params={"code": 79, "gpu": 3})
        await core.publish(command, encode(fault), qos=1)
        await until(lambda: latest_gpu()["node"].size == 31)
        gone = latest_gpu()
        assert not np.any((gone["node"] == 1) & (gone["gpu"] == 3))
        await core.publish(command, encode(ClearFault(id="x-2", target=nodes[1])), qos=1)
        await core.publish(command, b"\x00garbage", qos=1)
        await core.publish(
            command, encode(InjectFault(id="x-3", target="r999-n01", kind="xid")), qos=1
        )
        await until(lambda: fleet.complaints.total >= 2)
        assert fleet.complaints.counts["malformed"] >= 2
        seq = agent.seq
        await until(lambda: agent.seq > seq + 2)


async def test_power_loss_fires_the_will_then_the_node_comes_back(mosquitto: Endpoint) -> None:
    site = generated_site(SITE, 1, "lpu")
    fleet = Fleet(site, mosquitto, interval_s=0.2, seed=3, connection="rack")
    agent = fleet.agents[0]
    watcher = Link(mosquitto, "watch-3", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    async with running(watcher) as inbox, fleet_running(fleet):
        await until(lambda: agent.seq > 0)
        loss = InjectFault(
            id="p-1", target=agent.nodes[0], kind="power_loss", params={"duration_s": 1.0}
        )
        await watcher.publish(
            agent_topic(AgentTopic.AGENTCMD, SITE, agent.rack, agent.id), encode(loss), qos=1
        )
        await until(lambda: any(d.agent == agent.id for d in inbox.decoded(Death)))
        (death,) = [d for d in inbox.decoded(Death) if d.agent == agent.id]
        assert not death.clean
        await until(
            lambda: [b.session for b in inbox.decoded(Birth) if b.agent == agent.id] == [1, 2]
        )


async def test_a_rack_behind_a_gateway_loses_power_alone(mosquitto: Endpoint) -> None:
    site = generated_site(SITE, 3, "hgx-h100")
    fleet = Fleet(site, mosquitto, interval_s=0.2, seed=6)
    (gateway,) = fleet.connections
    agent = fleet.agents[1]
    watcher = Link(mosquitto, "watch-6", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    async with running(watcher) as inbox, fleet_running(fleet):
        await until(lambda: all(a.seq > 0 for a in fleet.agents))
        births = inbox.decoded(Birth)
        assert {b.gateway for b in births} == {gateway.id}
        loss = InjectFault(
            id="p-6", target=agent.nodes[0], kind="power_loss", params={"duration_s": 1.0}
        )
        await watcher.publish(
            agent_topic(AgentTopic.AGENTCMD, SITE, agent.rack, gateway.id), encode(loss), qos=1
        )
        await until(lambda: any(d.agent == agent.id for d in inbox.decoded(Death)))
        (death,) = inbox.decoded(Death)
        assert not death.clean
        assert gateway.link.connected.is_set(), "the gateway stays up for the other racks"
        await until(lambda: [b.agent for b in inbox.decoded(Birth)].count(agent.id) == 2)
    # in the order the broker passed them on: nothing of the rack between its death and birth
    order = [decode_message(m.topic.value, bytes(m.payload))[1] for m in inbox.messages]
    died = next(i for i, m in enumerate(order) if isinstance(m, Death))
    born = next(i for i, m in enumerate(order) if i > died and isinstance(m, Birth))
    between = [m for m in order[died:born] if isinstance(m, Telemetry)]
    assert between, "the other racks kept reporting"
    assert not [m for m in between if agent.id in m.agents]
    assert any(m.agents == ["r001", "r003"] for m in between)


async def test_agents_rebirth_when_asked_and_when_a_core_comes_online(mosquitto: Endpoint) -> None:
    site = generated_site(SITE, 1, "nvl72")
    fleet = Fleet(site, mosquitto, interval_s=0.5, seed=4, connection="rack")
    agent = fleet.agents[0]
    watcher = Link(mosquitto, "watch-4", subscriptions=[(f"aidc/v1/{SITE}/birth/+/+", 1)])
    async with running(watcher) as inbox, fleet_running(fleet):
        await until(lambda: len(inbox.messages) == len(fleet.agents))
        await watcher.publish(
            agent_topic(AgentTopic.AGENTCMD, SITE, agent.rack, agent.id),
            encode(Rebirth(id="rb")),
            qos=1,
        )
        await until(lambda: len(inbox.messages) == len(fleet.agents) + 1)
        await watcher.publish(core_status_topic(SITE), encode(CoreStatus(True, 7)), qos=1)
        await until(lambda: len(inbox.messages) == 2 * len(fleet.agents) + 1)
        # The same core back on a broker that forgot the births: its connection count changed.
        back = CoreStatus(True, 7, connection=2)
        await watcher.publish(core_status_topic(SITE), encode(back), qos=1)
        await until(lambda: len(inbox.messages) == 3 * len(fleet.agents) + 1)


async def test_a_bug_in_handling_a_message_leaves_the_agent_on_the_air(
    mosquitto: Endpoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = generated_site(SITE, 1, "hgx-h100")
    fleet = Fleet(site, mosquitto, interval_s=0.5, seed=5, connection="rack")
    agent = fleet.agents[0]

    def broken(assignment: Assignment) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fleet.connections[0], "apply", broken)
    watcher = Link(mosquitto, "watch-5", subscriptions=[(f"aidc/v1/{SITE}/birth/+/+", 1)])
    async with running(watcher) as inbox, fleet_running(fleet):
        await until(lambda: len(inbox.messages) == len(fleet.agents))
        assign = agent_topic(AgentTopic.ASSIGN, SITE, agent.rack, agent.id)
        await watcher.publish(assign, encode(Assignment(agent.id, 1, 1, 0.0, [])), qos=1)
        await until(lambda: "could not handle a message" in caplog.text)
        rebirth = agent_topic(AgentTopic.AGENTCMD, SITE, agent.rack, agent.id)
        await watcher.publish(rebirth, encode(Rebirth(id="after-bug")), qos=1)
        await until(lambda: len(inbox.messages) == len(fleet.agents) + 1)


@pytest.mark.broker
async def test_broker_restart_makes_every_agent_rebirth() -> None:
    port = free_port()
    endpoint = Endpoint("127.0.0.1", port, mqtt5=True)
    site = generated_site(SITE, 3, "hgx-h200")
    fleet = Fleet(site, endpoint, interval_s=0.5, seed=5)
    with spawned_broker("mosquitto", port):
        task = asyncio.create_task(fleet.run())
        await until(lambda: fleet.up() == len(fleet.agents))
    await until(lambda: fleet.up() == 0)
    try:
        with spawned_broker("mosquitto", port):
            await until(lambda: fleet.up() == len(fleet.agents), timeout=10)
            assert {c.link.session for c in fleet.connections} == {2}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def start_fleet(port: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aidc",
            "agents",
            "--broker",
            f"mqtt://127.0.0.1:{port}",
            "--site",
            SITE,
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("connection", ["rack", "gateway"])
@pytest.mark.parametrize(("sig", "clean"), [(signal.SIGKILL, False), (signal.SIGINT, True)])
async def test_fleet_process_stopped_every_death_arrives(
    mosquitto: Endpoint, sig: signal.Signals, clean: bool, connection: str
) -> None:
    watcher = Link(mosquitto, f"watch-{sig}-{connection}", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    async with running(watcher) as inbox:
        fleet = start_fleet(
            mosquitto.port,
            *("--racks", "3", "--rack-kind", "hgx-b200", "--interval", "0.3"),
            *("--connection", connection),
        )
        try:
            await until(lambda: len({b.agent for b in inbox.decoded(Birth)}) == 4)
            births = inbox.decoded(Birth)
            # a gateway's will (or clean death) is the death of every agent it speaks for
            speakers = {b.gateway or b.agent for b in births}
            assert len(speakers) == (1 if connection == "gateway" else 4)
            os.killpg(fleet.pid, sig)
            await until(lambda: {d.agent for d in inbox.decoded(Death)} == speakers, timeout=10)
            assert fleet.wait(5) == (128 + signal.SIGINT if clean else -signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(fleet.pid, signal.SIGKILL)
            out, err = fleet.communicate()
    assert {d.clean for d in inbox.decoded(Death)} == {clean}
    assert "Traceback" not in err
    if clean:
        assert "stopped; 4 of 4 deaths published" in out
