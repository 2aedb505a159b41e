"""A gateway's messages, end to end without a broker: its births and batches into the core's
tables, and the core's assignments back onto its racks' devices."""

from typing import Any

import msgspec
import numpy as np
import pytest

from agents.agent import ASSIGNMENT_TTL_MIN_S
from agents.catalog import RACK_KINDS
from agents.clock import MAX_STEP_S, FleetClock
from agents.connections import BATCH_BYTES, Gateway
from agents.fleet import Fleet
from agents.topology import Fabric, build_site
from protocols.codec import TELEMETRY, encode
from protocols.columns import GpuLoad, NicLoad, layout
from protocols.endpoint import Endpoint
from protocols.messages import Death
from sim.assignments import Assigner
from sim.fleet_state import FleetState


def gateway_fleet(nvl72: int = 30, hgx: int = 3) -> tuple[Fleet, Gateway]:
    site = build_site(
        "t1", [(RACK_KINDS["nvl72"], nvl72), (RACK_KINDS["hgx-h100"], hgx)], Fabric(2, 1)
    )
    fleet = Fleet(site, Endpoint("127.0.0.1", 1), connection="gateway", seed=3)
    (gateway,) = fleet.connections
    assert isinstance(gateway, Gateway)
    return fleet, gateway


def core_of(gateway: Gateway) -> FleetState:
    state = FleetState()
    for agent in gateway.agents:
        state.on_birth(agent.birth(gateway.link.session, gateway.id), now=1.0)
    return state


def test_one_gateway_speaks_for_every_rack_in_batches_under_the_size_limit() -> None:
    fleet, gateway = gateway_fleet()
    assert len(fleet.agents) == 30 + 3 + 1  # and the network rack's switches
    covered = [agent.id for batch in gateway.batches for agent in batch.agents]
    assert sorted(covered) == sorted(agent.id for agent in fleet.agents)
    for batch in gateway.batches:
        message = gateway.telemetry(batch)
        assert message is not None
        data = sum(len(b.data) for b in (message.gpu, message.nic, message.port) if b)
        assert data <= BATCH_BYTES
        assert message.agents == [a.id for a in batch.agents]
        assert message.seqs == [1] * len(batch.agents)
    assert len(gateway.batches) > 3, "30 NVL72 racks do not fit one 256 KiB batch"


def test_a_gateways_batches_land_in_the_rows_of_their_devices() -> None:
    fleet, gateway = gateway_fleet()
    for group in fleet.groups:
        group.step(5.0, fleet.rng)
    core = core_of(gateway)
    for batch in gateway.batches:
        message = TELEMETRY.decode(encode(gateway.telemetry(batch)))
        assert core.on_telemetry(message, now=2.0) is None
    gpus = core.devices["gpu"]
    assert gpus.table["present"].all()
    for group in fleet.groups:
        device = next((d for d in group.devices if d.name == "gpu"), None)
        if device is None:
            continue
        for rack, nodes in zip(group.racks, group.nodes, strict=True):
            first = core.nodes["first_gpu"][core.nodes.rows[nodes[0]]]
            sent = device.bank.wire[group.racks.index(rack)]["DCGM_FI_DEV_POWER_USAGE"]
            got = gpus.gauge("DCGM_FI_DEV_POWER_USAGE")[first : first + sent.size]
            np.testing.assert_array_equal(got, sent)


def test_a_batch_naming_another_gateways_rack_is_refused() -> None:
    _, gateway = gateway_fleet(nvl72=2, hgx=0)
    core = core_of(gateway)
    message = gateway.telemetry(gateway.batches[0])
    assert message is not None
    forged = msgspec.structs.replace(message, agent="gw9-of-9")
    assert "not one of its agents" in (core.on_telemetry(forged, 2.0) or "")
    assert core.counts.rejected == {"identity": 1}


def test_a_batch_accepted_once_is_refused_after_one_of_its_racks_is_reborn() -> None:
    _, gateway = gateway_fleet(nvl72=2, hgx=0)
    core = core_of(gateway)
    message = gateway.telemetry(gateway.batches[0])
    assert message is not None
    assert core.on_telemetry(message, 2.0) is None
    assert core.on_telemetry(message, 3.0) is None, "the same racks again"
    core.on_birth(gateway.agents[1].birth(gateway.link.session + 1, gateway.id), now=4.0)
    assert core.on_telemetry(message, 5.0) == f"batch of an old session of {gateway.id}"


def test_the_gateways_death_is_every_one_of_its_racks() -> None:
    _, gateway = gateway_fleet(nvl72=3, hgx=1)
    core = core_of(gateway)
    assert core.on_death(Death(gateway.id, session=7)) == 0, "an older session's will"
    assert core.on_death(Death(gateway.id, session=0)) == len(gateway.agents)
    assert not core.nodes["alive"].any()


def loads_of(core: FleetState, busy: float) -> dict[str, Any]:
    gpus = len(core.devices["gpu"].table)
    nics = len(core.devices["nic"].table)
    return {
        "gpu": (
            GpuLoad,
            {
                "busy": np.full(gpus, busy),
                "tensor": np.full(gpus, busy * 0.7),
                "dram": np.full(gpus, busy * 0.6),
                "memory_mib": np.arange(gpus, dtype=np.float64),
                "nvlink_bytes_per_s": np.zeros(gpus),
            },
        ),
        "nic": (
            NicLoad,
            {
                "tx_gbps": np.full(nics, 100.0),
                "rx_gbps": np.zeros(nics),
                "congestion": np.zeros(nics),
            },
        ),
    }


def test_assignments_reach_every_racks_devices_and_then_only_what_changed() -> None:
    fleet, gateway = gateway_fleet(nvl72=120)
    core = core_of(gateway)
    assigner = Assigner(core, keepalive_ticks=3)
    loads = loads_of(core, 0.5)
    first = list(assigner.messages(1, 10.0, loads))
    assert {chunk.connection for chunk, _ in first} == {gateway.id}
    for _, message in first:
        assert message.agent == gateway.id
        assert sum(len(b.data) for b in (message.gpu, message.nic) if b) <= 256 * 1024
        gateway.apply(message)
    gpus = [d for g in fleet.groups for d in g.devices if d.name == "gpu"]
    assert all(np.all(d.load["busy"] == np.float32(0.5)) for d in gpus)
    # each GPU got its own memory figure: the core's row number, in the agents' own order
    for group in fleet.groups:
        device = next((d for d in group.devices if d.name == "gpu"), None)
        if device is None:
            continue
        for index, nodes in enumerate(group.nodes):
            first_gpu = core.nodes["first_gpu"][core.nodes.rows[nodes[0]]]
            expected = first_gpu + np.arange(device.load["memory_mib"].shape[1])
            np.testing.assert_array_equal(device.load["memory_mib"][index], expected)
    assert assigner.sent_rows == len(core.devices["gpu"].table) + len(core.devices["nic"].table)
    assert len(first) == 2, "120 NVL72 racks' loads take two 256 KiB messages"
    # unchanged next tick: only the chunk whose keep-alive is due (the second) goes out
    (second,) = list(assigner.messages(2, 11.0, loads))
    assert second[1].agents == first[1][1].agents
    # one GPU moves past the threshold, and one by less: the first alone goes out
    loads["gpu"][1]["busy"][5] = 0.9
    loads["gpu"][1]["busy"][6] = 0.505
    ((_, changed),) = list(assigner.messages(4, 12.0, loads))
    assert changed.gpu is not None
    assert changed.gpu.rows == 1
    assert changed.nic is None
    gateway.apply(changed)


def test_a_newborn_agent_gets_all_its_loads_again() -> None:
    _, gateway = gateway_fleet(nvl72=2, hgx=0)
    core = core_of(gateway)
    assigner = Assigner(core, keepalive_ticks=1000)
    loads = loads_of(core, 0.5)
    list(assigner.messages(1, 1.0, loads))
    assert not list(assigner.messages(2, 2.0, loads))
    agent = gateway.agents[0]
    core.on_birth(agent.birth(1, gateway.id), now=3.0)  # reconnected: a new session
    (_, message), *_ = list(assigner.messages(3, 3.0, loads))
    assert message.session == 1
    assert message.gpu is not None
    assert message.gpu.rows == 72


def test_the_fleet_clock_follows_the_core() -> None:
    clock = FleetClock(wall_now=0.0)
    assert clock.advance(1.0) == 1.0, "no core yet: the wall clock at 1x"
    clock.heard(1000.0, 60.0, wall_now=1.0)
    assert clock.advance(2.0) == pytest.approx(60.0)
    assert clock.advance(3.0) == pytest.approx(60.0)
    assert clock.sim_time == pytest.approx(1120.0)
    clock.heard(1110.0, 60.0, wall_now=3.0)  # the core ticked late: wait for it
    assert clock.advance(3.1) == 0.0
    clock.heard(2000.0, 0.0, wall_now=4.0)  # a manual clock
    assert clock.advance(5.0) == pytest.approx(2000.0 - 1120.0)
    assert clock.advance(9.0) == 0.0, "a manual clock moves only when the core ticks"
    clock.heard(2005.0, 0.0, wall_now=9.5)
    assert clock.advance(10.0) == pytest.approx(5.0)
    clock.heard(2005.0 + 10 * MAX_STEP_S, 0.0, wall_now=11.0)
    assert clock.advance(12.0) == 0.0, "a jump is followed, not replayed"
    clock.heard(1500.0, 0.0, wall_now=12.5)  # a new core, earlier in simulated time
    assert clock.advance(13.0) == 0.0
    assert clock.sim_time == 1500.0
    clock.forget()
    assert clock.advance(14.0) == 1.0


def test_agents_idle_without_assignments_no_sooner_than_the_keepalive_allows() -> None:
    fleet, _ = gateway_fleet(nvl72=1, hgx=0)
    agent = fleet.agents[0]
    assert agent.ttl_s >= ASSIGNMENT_TTL_MIN_S
    device = agent.devices[0]
    device.load["busy"][agent.rack_index] = 0.9
    agent.assigned_at = 100.0
    agent.expire(100.0 + ASSIGNMENT_TTL_MIN_S - 1)
    assert np.all(device.load["busy"][agent.rack_index] == np.float32(0.9))
    agent.expire(100.0 + ASSIGNMENT_TTL_MIN_S + 1)
    assert np.all(device.load["busy"][agent.rack_index] < 0.9)
    assert layout(GpuLoad).names[2] == "busy"
