"""Pools scaled up and down at random between ticks, as an operator does at 30x: every
per-replica array keeps the replica table's length, the loads sent to the agents fit the fleet,
and devices are held by one replica of their own hardware at most."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.commands import Scale
from protocols.messages import Birth, GpuInfo, NicInfo, NodeInventory, PortInfo
from sim.control import ControlPlane
from sim.fabric import Fabric
from sim.fleet_state import FleetState
from sim.journal import Journal
from sim.pools import DRAINING, READY, STOPPED, WARMING, Pools, PoolSpec
from sim.traffic import Traffic, TrafficProfile
from sim.world import World

MODEL = "llama-3-1-70b"
H100, H200 = "NVIDIA H100 80GB HBM3", "NVIDIA H200"
POOLS = (
    PoolSpec("wide", MODEL, H100, 8, replicas=2),
    PoolSpec("narrow", MODEL, H100, 4, replicas=2),
    PoolSpec("h200", MODEL, H200, 8, replicas=1),
)
TICK_S = 30.0
"""One real second of a core at --speed 30."""


def _rack(rack: str, hardware: str, leaf: str) -> Birth:
    """Four 8-GPU nodes, each GPU with its NIC cabled to a port of `leaf`."""
    nodes = [
        NodeInventory(
            f"{rack}-n{n}",
            "gpu",
            "HGX",
            gpus=[
                GpuInfo(i, f"G-{rack}-{n}-{i}", hardware, 81559, 700.0, f"{rack}-n{n}")
                for i in range(8)
            ],
            nics=[
                NicInfo(i, "ConnectX-7", 400.0, gpu=i, peer=f"{leaf}/{8 * n + i}") for i in range(8)
            ],
        )
        for n in range(4)
    ]
    return Birth(rack, rack, 1, 0.0, 1.0, nodes)


def _site() -> tuple[World, Fabric]:
    fleet = FleetState()
    racks = (("r1", H100, "leaf01"), ("r2", H100, "leaf02"), ("r3", H200, "leaf03"))
    for rack, hardware, leaf in racks:
        fleet.on_birth(_rack(rack, hardware, leaf), 0.0)
    switches = [
        NodeInventory(leaf, "switch", "SN5600", ports=[PortInfo(p, 800.0) for p in range(64)])
        for _, _, leaf in racks
    ]
    fleet.on_birth(Birth("net01", "net01", 1, 0.0, 1.0, switches), 0.0)
    pools = Pools(fleet)
    for spec in POOLS:
        pools.add(spec)
    control = ControlPlane(fleet, pools, Journal(":memory:"), lambda agent, command: None)
    rng = np.random.default_rng(3)
    traffic = Traffic([TrafficProfile(peak_rps=30.0)], rng)
    return World(fleet, pools, control, traffic, [MODEL], rng), Fabric(fleet, pools)


def _check_invariants(world: World, fabric: Fabric) -> None:
    pools, fleet = world.pools, world.fleet
    n = len(pools.replicas)
    per_replica = [
        *vars(pools.state).values(),
        *vars(world.result).values(),
        pools.busy,
        pools.replicas["pool"],
    ]
    assert all(a.shape == (n,) for a in per_replica), "a per-replica array lost step"
    assert len(pools.devices) == len(pools.kind) == n
    assert pools.gpu_devices.shape[0] >= n
    for values in vars(pools.state).values():
        assert np.isfinite(values).all()
        assert (values >= 0).all()
    # What the core sends the agents: one row per device.
    gpus, nics = fleet.devices["gpu"].table, fleet.devices["nic"].table
    ports = fleet.devices["port"].table
    assert all(a.shape == (len(gpus),) for a in world.gpu_load().values())
    net = fabric.load(world.result.tokens, TICK_S)
    assert net.nic_gbps.shape == net.nic_congestion.shape == (len(nics),)
    assert net.port_busy.shape == net.port_congestion.shape == (len(ports),)
    assert (net.nic_gbps >= 0).all()
    # Each device is held by at most one replica, which holds exactly its width of them.
    owner = pools.owners("gpu")[: len(gpus)]
    specs = list(pools.pools.values())
    for row in range(n):
        pool = specs[int(pools.replicas["pool"][row])]
        held = np.flatnonzero(owner == row)
        if pools.replicas["state"][row] == STOPPED:
            assert held.size == 0
            continue
        assert sorted(held.tolist()) == sorted(pools.devices[row].tolist())
        assert held.size == pool.spec.tensor_parallel
        model = fleet.models.rows[pool.spec.hardware]
        assert (gpus["model"][held] == model).all(), "a replica on another pool's hardware"
    for pool in specs:
        counts = pools.counts(pool)
        assert counts[WARMING] + counts[READY] <= pool.desired


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([spec.pool for spec in POOLS]),
            st.integers(0, 9),
            st.integers(1, 4),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_scaling_between_ticks_keeps_every_invariant(
    steps: list[tuple[str, int, int]],
) -> None:
    world, fabric = _site()
    now = 0.0
    for number, (pool, replicas, ticks) in enumerate(steps):
        for _ in range(ticks):
            now += TICK_S
            world.fleet.nodes["seen"][:] = now
            world.tick(now, TICK_S)
            _check_invariants(world, fabric)
        # The core publishes a tick's views, then sends the agents their load: a command that
        # lands while the views are sent changes the pools before that load is worked out.
        reply = world.control.handle(Scale(id=f"s{number}", pool=pool, replicas=replicas), now)
        if reply.ok:
            assert world.pools.pools[pool].desired == replicas
        _check_invariants(world, fabric)
    states = world.pools.replicas["state"]
    assert set(np.unique(states).tolist()) <= {WARMING, READY, DRAINING, STOPPED}
