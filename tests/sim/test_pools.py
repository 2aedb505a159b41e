"""Placement of replicas on devices, warm-up, scaling and the serving parameters of pools."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from protocols.messages import Birth, GpuInfo, NodeInventory
from sim.fleet_state import FleetState
from sim.pools import DRAINING, READY, STOPPED, WARMING, Pools, PoolSpec, _promote_and_count
from tests import naive

H100 = "NVIDIA H100 80GB HBM3"


def hgx_rack(rack: str, nodes: int) -> Birth:
    """A rack of HGX H100 nodes, one NVLink domain per node."""
    inventory = [
        NodeInventory(
            f"{rack}-n{n}",
            "gpu",
            "HGX H100",
            gpus=[
                GpuInfo(i, f"GPU-{rack}-{n}-{i}", H100, 81559, 700.0, f"{rack}-n{n}")
                for i in range(8)
            ],
        )
        for n in range(nodes)
    ]
    return Birth(rack, rack, 1, 0.0, 1.0, inventory)


def site(nodes: int = 2) -> tuple[FleetState, Pools]:
    fleet = FleetState()
    fleet.on_birth(hgx_rack("r1", nodes), 0.0)
    return fleet, Pools(fleet)


def everywhere(fleet: FleetState) -> dict[str, np.ndarray]:
    return {kind: np.ones(len(d.table), bool) for kind, d in fleet.devices.items()}


SPEC = PoolSpec("llama-70b-h100", "llama-3-1-70b", H100, tensor_parallel=4, replicas=3)


def test_replicas_are_packed_into_one_nvlink_domain_each() -> None:
    fleet, pools = site(2)
    pool = pools.add(SPEC)
    assert pools.reconcile(everywhere(fleet), now=0.0) == []
    assert len(pool.replicas) == 3
    domains = fleet.devices["gpu"].table["domain"]
    for row in pool.replicas:
        assert len(set(domains[pools.devices[row]].tolist())) == 1
        assert len(pools.devices[row]) == 4
    used = np.concatenate([pools.devices[r] for r in pool.replicas])
    assert len(set(used.tolist())) == 12, "a GPU holds at most one replica"
    # best fit: the third replica goes where 4 GPUs were left, not to a fresh node
    assert sorted(np.bincount(domains[used]).tolist()) == [4, 8]


def test_warm_up_then_ready() -> None:
    fleet, pools = site(1)
    pool = pools.add(PoolSpec("p", "llama-3-1-70b", H100, 8, replicas=1))
    pools.reconcile(everywhere(fleet), now=100.0)
    (row,) = pool.replicas
    assert pools.replicas["state"][row] == WARMING
    assert pool.warm_up_s > 20.0
    pools.reconcile(everywhere(fleet), now=100.0 + pool.warm_up_s - 1)
    assert pools.replicas["state"][row] == WARMING
    pools.reconcile(everywhere(fleet), now=100.0 + pool.warm_up_s)
    assert pools.replicas["state"][row] == READY


def test_not_enough_room_is_said_and_the_rest_is_placed() -> None:
    fleet, pools = site(1)
    pool = pools.add(PoolSpec("p", "llama-3-1-70b", H100, 4, replicas=3))
    problems = pools.reconcile(everywhere(fleet), now=0.0)
    assert len(pool.replicas) == 2
    assert problems == ["pool p: no room for 1 more replica(s) of 4 x NVIDIA H100 80GB HBM3"]


def test_a_pool_places_on_its_own_hardware_only_and_knows_its_ceiling() -> None:
    fleet, pools = site(2)
    h200 = hgx_rack("r2", 1)
    nodes = [replace(n, gpus=[replace(g, model="NVIDIA H200") for g in n.gpus]) for n in h200.nodes]
    fleet.on_birth(replace(h200, nodes=nodes), 0.0)
    pool = pools.add(dataclasses.replace(SPEC, replicas=9))
    assert pools.capacity(pool) == (16, 4)
    pools.reconcile(everywhere(fleet), now=0.0)
    used = np.concatenate([pools.devices[r] for r in pool.replicas])
    assert len(pool.replicas) == 4
    assert set(fleet.devices["gpu"].table["model"][used].tolist()) == {fleet.models.rows[H100]}
    absent = pools.add(PoolSpec("b200", "llama-3-1-70b", "NVIDIA B200", tensor_parallel=8))
    assert pools.capacity(absent) == (0, 0)
    assert pools.has_hardware(pool)
    assert not pools.has_hardware(absent)


def test_unschedulable_devices_are_not_used() -> None:
    fleet, pools = site(2)
    pool = pools.add(PoolSpec("p", "llama-3-1-70b", H100, 8, replicas=2))
    allowed = everywhere(fleet)
    allowed["gpu"][:8] = False  # node 0 cordoned
    pools.reconcile(allowed, now=0.0)
    assert len(pool.replicas) == 1
    assert pools.devices[pool.replicas[0]].min() >= 8


def test_scaling_down_drains_then_stops_when_empty() -> None:
    fleet, pools = site(2)
    pool = pools.add(SPEC)
    pools.reconcile(everywhere(fleet), now=0.0)
    last = pool.replicas[-1]
    pools.state.running[last] = 3.0
    pool.desired = 2
    pools.reconcile(everywhere(fleet), now=1.0)
    assert pools.replicas["state"][last] == DRAINING
    assert pools.counts(pool) == {WARMING: 2, READY: 0, DRAINING: 1}
    pools.state.running[last] = 0.0
    pools.reconcile(everywhere(fleet), now=2.0)
    assert pools.replicas["state"][last] == STOPPED
    assert last not in pool.replicas
    assert (pools.owner["gpu"] == last).sum() == 0


def test_stopping_a_replica_reports_what_it_dropped() -> None:
    fleet, pools = site(1)
    pool = pools.add(PoolSpec("p", "llama-3-1-8b", H100, 1, replicas=2))
    pools.reconcile(everywhere(fleet), now=0.0)
    row = pool.replicas[0]
    pools.state.waiting[row], pools.state.running[row] = 4.0, 7.0
    assert pools.stop(row) == (4.0, 7.0)


def test_serving_parameters_come_from_the_roofline() -> None:
    fleet, pools = site(2)
    pool = pools.add(SPEC)
    pools.reconcile(everywhere(fleet), now=0.0)
    params = pools.serving_params()
    assert params.kv_capacity_tokens.shape == (1,), "one row per pool, not per replica"
    assert params.decode_fixed_s[0] == pytest.approx(pool.perf.decode_fixed_s)
    assert params.prompt_tokens[0] == SPEC.prompt_tokens


def test_bad_pools_are_refused() -> None:
    _, pools = site(1)
    pools.add(SPEC)
    with pytest.raises(ValueError, match="exists already"):
        pools.add(SPEC)
    with pytest.raises(ValueError, match="does not fit"):
        pools.add(PoolSpec("tiny", "llama-3-1-70b", H100, 1))
    with pytest.raises(KeyError, match="no model"):
        pools.add(PoolSpec("x", "llama-9", H100, 1))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 80), st.integers(1, 4), st.integers(0, 2**31))
def test_promote_and_count_equals_its_naive_twin(n: int, pools: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool = rng.integers(-1, pools + 1, n).astype(np.int32)
    state = rng.integers(0, 4, n).astype(np.uint8)
    ready_at = rng.uniform(0.0, 10.0, n)
    twin_states, twin_counts = naive.promote_and_count(pool, state, ready_at, 5.0, pools)
    counts = _promote_and_count(pool, state, ready_at, 5.0, pools)
    assert state.tolist() == twin_states
    assert counts.tolist() == twin_counts


def _placed(births: list[Birth]) -> list[list[tuple[str, int]]]:
    """Where three TP4 replicas and one TP8 replica land on a fleet born in this order: each
    replica's GPUs as (node, slot)."""
    fleet = FleetState()
    for birth in births:
        fleet.on_birth(birth, 0.0)
    pools = Pools(fleet)
    added = [pools.add(SPEC), pools.add(PoolSpec("p8", "llama-3-1-70b", H100, 8, replicas=1))]
    assert pools.reconcile(everywhere(fleet), now=0.0) == []
    table = fleet.devices["gpu"].table
    return [
        [(fleet.nodes.ids[table["node"][d]], int(table["slot"][d])) for d in pools.devices[row]]
        for pool in added
        for row in pool.replicas
    ]


@given(st.permutations(range(6)))
@settings(max_examples=30, deadline=None)
def test_placement_is_the_same_whatever_order_the_racks_are_born_in(order: list[int]) -> None:
    racks = [hgx_rack(f"r{i}", 1 + i % 3) for i in range(6)]
    first = _placed(racks)
    assert _placed([racks[i] for i in order]) == first
    # and it fills by id: the TP4 replicas take r0-n0, then half of r1-n0 (every node has 8
    # free, so best fit ties, broken by id); the TP8 replica takes the first whole node left
    assert [sorted({node for node, _ in replica}) for replica in first] == [
        ["r0-n0"],
        ["r0-n0"],
        ["r1-n0"],
        ["r1-n1"],
    ]


def test_nodes_born_one_at_a_time_in_any_order_rank_as_their_ids() -> None:
    fleet = FleetState()
    for rack in ("r3", "r10", "r1", "r2"):
        fleet.on_birth(hgx_rack(rack, 2), 0.0)
    ranks = fleet.node_order.ranks()
    by_rank = sorted(fleet.nodes.ids, key=lambda node: ranks[fleet.nodes.rows[node]])
    assert by_rank == sorted(fleet.nodes.ids)
    fleet.on_birth(hgx_rack("r0", 1), 0.0)  # later births merge in, longer ids too
    fleet.node_order.ranks()
    fleet.on_birth(hgx_rack("r1000", 1), 0.0)
    ranks = fleet.node_order.ranks()
    by_rank = sorted(fleet.nodes.ids, key=lambda node: ranks[fleet.nodes.rows[node]])
    assert by_rank == sorted(fleet.nodes.ids)
    assert by_rank[:3] == ["r0-n0", "r1-n0", "r1-n1"]


def test_a_rebirth_of_the_same_devices_changes_no_layout_but_new_devices_do() -> None:
    fleet, _ = site(2)
    before = fleet.layout_changes
    fleet.on_birth(hgx_rack("r1", 2), 1.0)  # the same agent after a reconnect
    assert fleet.layout_changes == before
    fleet.on_birth(hgx_rack("r2", 1), 1.0)
    assert fleet.layout_changes > before
