"""A whole site ticking: traffic served, routes split, a GPU off the bus drained around,
the autoscaler following load, and the same seed giving the same numbers."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.commands import Autoscale, Route, Scale
from protocols.messages import Birth, LpuInfo, NodeInventory
from sim.catalog import BYTES_PER_MB, GROQ_LPU
from sim.control import ControlPlane
from sim.defaults import POOLS
from sim.fleet_state import FleetState
from sim.journal import Journal
from sim.pools import READY, Pools, PoolSpec
from sim.traffic import Traffic, TrafficProfile
from sim.world import World, replica_gpus
from tests import naive
from tests.sim.test_pools import H100, hgx_rack

MODEL = "llama-3-1-70b"


def site(
    rps: float = 4.0,
    seed: int = 7,
    pools: tuple[PoolSpec, ...] | None = None,
    racks: int = 2,
    born: list[int] | None = None,
) -> World:
    """A site of `racks` HGX racks of 4 nodes, born in the order `born` (by default r0
    first), serving `pools` (one TP8 pool of 3 replicas by default)."""
    fleet = FleetState()
    for r in born if born is not None else range(racks):
        fleet.on_birth(hgx_rack(f"r{r}", 4), 0.0)
    pool_set = Pools(fleet)
    for spec in pools or (PoolSpec("a", MODEL, H100, 8, replicas=3, min_available=1),):
        pool_set.add(spec)
    control = ControlPlane(fleet, pool_set, Journal(":memory:"), lambda agent, command: None)
    rng = np.random.default_rng(seed)
    traffic = Traffic(
        [TrafficProfile(peak_rps=rps, prompt_tokens_mean=1000, output_tokens_mean=200)], rng
    )
    return World(fleet, pool_set, control, traffic, [MODEL], rng)


def run(world: World, start: float, seconds: float, dt: float = 0.5):  # type: ignore[no-untyped-def]
    report = None
    t = start
    while t < start + seconds:
        t += dt
        world.fleet.nodes["seen"][:] = t
        report = world.tick(t, dt)
    return report, t


def test_traffic_is_served_within_its_slo() -> None:
    world = site()
    report, t = run(world, 0.0, 200.0)
    assert all(world.pools.replicas["state"][world.pools.pools["a"].replicas] == READY)
    report, t = run(world, t, 120.0)
    figures = report.pools["a"]
    assert figures.completed_per_s == pytest.approx(4.0, rel=0.5)
    assert figures.ttft[0] < 0.5
    assert figures.goodput_rps > 0
    assert report.unroutable == 0


def test_a_route_splits_traffic_between_pools() -> None:
    specs = (PoolSpec("a", MODEL, H100, 8, replicas=2), PoolSpec("b", MODEL, H100, 8, replicas=2))
    world = site(rps=20.0, pools=specs)
    world.control.handle(Route(id="r1", model=MODEL, weights={"a": 80, "b": 20}), 0.0)
    _, t = run(world, 0.0, 150.0)
    arrived = {"a": 0.0, "b": 0.0}
    for _ in range(200):
        report, t = run(world, t, 0.5)
        for name in arrived:
            arrived[name] += report.pools[name].arrivals_per_s
    share = arrived["a"] / (arrived["a"] + arrived["b"])
    assert share == pytest.approx(0.8, abs=0.05)


def test_a_gpu_off_the_bus_drains_its_node_and_the_replica_moves() -> None:
    world = site()
    _, t = run(world, 0.0, 200.0)
    pool = world.pools.pools["a"]
    victim = pool.replicas[0]
    gpu = world.pools.devices[victim][3]
    node = world.fleet.nodes.ids[world.fleet.devices["gpu"].table["node"][gpu]]
    world.fleet.devices["gpu"].table["present"][gpu] = False
    report, t = run(world, t, 0.5)
    assert any(f.drain and f.node == node for f in report.findings)
    assert victim not in pool.replicas
    assert world.control.intents[node].state in ("draining", "drained")
    assert len(pool.replicas) == 3, "a replacement was placed"
    report, t = run(world, t, 200.0)
    assert all(world.pools.replicas["state"][pool.replicas] == READY)
    assert world.control.intents[node].state == "drained"
    assert report.pools["a"].ttft[0] < 0.5


def test_the_autoscaler_follows_the_load() -> None:
    world = site(rps=30.0, racks=4)
    world.control.handle(
        Autoscale(
            id="a1",
            pool="a",
            enabled=True,
            min_replicas=1,
            max_replicas=4,
            target_queue_depth=2.0,
            cooldown_s=30,
        ),
        0.0,
    )
    scaled = []
    for step in range(1, 841):
        world.fleet.nodes["seen"][:] = step * 0.5
        scaled += world.tick(step * 0.5, 0.5).autoscaled
        if step == 240:
            assert world.pools.pools["a"].desired == 4
            world.traffic.set_rate(0, 0.0)
    assert world.pools.pools["a"].desired == 1
    assert [pool for pool, _ in scaled] == ["a"] * len(scaled)
    said = [sentence.split(": ", 2) for _, sentence in scaled]
    assert said[-1][1:] == ["3 → 1 replicas", "no traffic, so its minimum of 1"]
    assert said[-2][1:] == [
        "4 → 3 replicas",
        "no traffic, so its minimum of 1, held at the most wanted over the last 30 s",
    ]
    ups = [s for s in said if s[1].endswith("(its maximum)")]
    assert ups, said
    assert ups[0][2].endswith("against 2 per replica")


def test_the_same_seed_gives_the_same_numbers() -> None:
    first, second = site(seed=3), site(seed=3)
    report_a, _ = run(first, 0.0, 300.0)
    report_b, _ = run(second, 0.0, 300.0)
    assert report_a.pools == report_b.pools
    assert report_a.pools["a"].completed_per_s > 0


@pytest.mark.parametrize("born", [[2, 1, 0], [1, 2, 0], [0, 2, 1]])
def test_the_numbers_do_not_depend_on_the_order_the_racks_were_born_in(born: list[int]) -> None:
    worlds = [site(seed=3, racks=3), site(seed=3, racks=3, born=born)]
    for world in worlds:  # a GPU of r0-n0 falls off the bus: it matters where replicas are
        _, t = run(world, 0.0, 100.0)
        gpu = world.fleet.nodes["first_gpu"][world.fleet.nodes.rows["r0-n0"]]
        world.fleet.devices["gpu"].table["present"][gpu] = False
    (first, _), (second, _) = (run(world, t, 200.0) for world in worlds)
    assert first.pools == second.pools
    assert first.pools["a"].completed_per_s > 0


def test_the_numbers_do_not_depend_on_how_many_threads_run_the_kernels() -> None:
    threads = numba.get_num_threads()
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # numba sets it at import
    try:
        reports = []
        for count in (1, most):
            numba.set_num_threads(count)
            reports.append(run(site(rps=40.0, seed=5, racks=4), 0.0, 120.0)[0])
    finally:
        numba.set_num_threads(threads)
    assert most > 1, "needs a machine with two cores or more"
    assert reports[0].pools == reports[1].pools
    assert reports[0].pools["a"].completed_per_s > 0


def test_gpu_loads_before_any_replica_are_idle() -> None:
    world = site()
    load = world.gpu_load()
    assert load["busy"].shape == (64,)
    assert not load["busy"].any()


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 30), st.integers(1, 8), st.integers(0, 2**31))
def test_replica_gpus_equals_its_naive_twin(replicas: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    gpus = replicas * width + 3
    devices = rng.permutation(gpus)[: replicas * width].reshape(replicas, width)
    devices[rng.random(devices.shape) < 0.2] = -1
    clocks = rng.choice([0.0, 900.0, 1500.0, 1980.0], gpus).astype(np.float32)
    present = rng.random(gpus) > 0.1
    kind = rng.integers(0, 2, replicas)
    max_clock = np.array([1980.0, 1000.0])
    fast = replica_gpus(devices, clocks, present, kind, max_clock)
    slow = naive.replica_gpus(devices, clocks, present, kind, max_clock)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def lpu_rack(rack: str) -> Birth:
    """A GroqRack: nine nodes of eight LPU chips, one domain per rack."""
    chips = [LpuInfo(i, GROQ_LPU.name, 230.0) for i in range(8)]
    return Birth(
        rack,
        rack,
        1,
        0.0,
        1.0,
        [NodeInventory(f"{rack}-n{n}", "lpu", "GroqNode", lpus=chips) for n in range(9)],
    )


LPU_POOL = next(p for p in POOLS if p.hardware == GROQ_LPU.name)


def lpu_site() -> World:
    """Two GroqRacks (and the two HGX racks of `site`) serving LPU_POOL's model at 20 req/s."""
    world = site(pools=(LPU_POOL,))
    for rack in ("l0", "l1"):
        world.fleet.on_birth(lpu_rack(rack), 0.0)
    profile = TrafficProfile(peak_rps=20.0, prompt_tokens_mean=600, output_tokens_mean=150)
    world.traffic = Traffic([profile], world.rng)
    world.models = [LPU_POOL.model]
    return world


def test_an_lpu_pool_spans_a_rack_of_chips_and_serves_fast_tokens() -> None:
    spec = LPU_POOL
    world = lpu_site()
    report, _ = run(world, 0.0, 200.0, dt=1.0)
    pool = world.pools.pools[spec.pool]
    assert world.pools.counts(pool)[READY] == 2
    assert pool.model.bytes_per_param == 1, "LPUs serve 8-bit weights"
    assert (world.pools.owners("lpu") >= 0).sum() == 2 * spec.tensor_parallel
    figures = report.pools[spec.pool]
    assert figures.completed_per_s == pytest.approx(20.0, rel=0.3)
    assert figures.itl[1] < 0.005, "hundreds of tokens/s per user"


def test_lpu_chips_carry_the_load_of_their_replica() -> None:
    world = lpu_site()
    report, _ = run(world, 0.0, 200.0, dt=1.0)
    load = world.lpu_load(1.0)
    held = world.pools.owners("lpu") >= 0
    assert held.sum() == 2 * LPU_POOL.tensor_parallel
    assert load["busy"][held].any(), "serving replicas compute"
    assert not load["busy"][~held].any(), "spare chips idle"
    tokens = load["tokens_per_second"]
    assert tokens.sum() == pytest.approx(report.pools[LPU_POOL.pool].tokens_per_s)
    assert np.ptp(tokens[held][: LPU_POOL.tensor_parallel]) == 0, "a replica's chips share alike"
    sram = GROQ_LPU.memory_bytes / BYTES_PER_MB
    assert (load["sram_mb"][held] > 0).all()
    assert (load["sram_mb"] <= sram).all()
    assert not load["sram_mb"][~held].any()


def test_gpu_load_right_after_a_scale_between_ticks() -> None:
    world = site()
    _, t = run(world, 0.0, 30.0)
    reply = world.control.handle(Scale(id="up", pool="a", replicas=5), t)
    assert reply.ok, reply.error
    placed = len(world.pools.replicas)
    assert placed == 5, "placed before the next tick"
    assert world.result.kv_usage.shape == world.pools.busy.shape == (placed,)
    assert not world.pools.busy[3:].any(), "the new replicas have not served yet"
    load = world.gpu_load()
    held = world.pools.owners("gpu")[: len(load["busy"])] >= 0
    assert held.sum() == 5 * 8
    assert (load["memory_mib"][held] > 0).all(), "weights are loaded on the new replicas too"


def test_without_a_route_traffic_skips_pools_that_cannot_serve() -> None:
    pools = (
        PoolSpec("a", MODEL, H100, 8, replicas=3, min_available=1),
        PoolSpec("nowhere", MODEL, "NVIDIA B200", 8, replicas=1, min_available=1),
    )
    world = site(pools=pools)
    _, t = run(world, 0.0, 100.0)  # placed and warm
    unroutable = arrived = 0.0
    for _ in range(200):
        report, t = run(world, t, 0.5)
        unroutable += report.unroutable
        arrived += report.pools["a"].arrivals_per_s * 0.5
    assert unroutable == 0, "no B200s here: that pool gets no share"
    assert arrived == pytest.approx(4.0 * 100.0, rel=0.2)


def test_an_lpu_replica_that_loses_a_chip_stops_and_is_placed_again() -> None:
    spec = next(p for p in POOLS if p.hardware == GROQ_LPU.name)
    world = site(pools=(spec,))
    for rack in ("l0", "l1", "l2"):
        world.fleet.on_birth(lpu_rack(rack), 0.0)
    _, t = run(world, 0.0, 200.0, dt=1.0)
    pool = world.pools.pools[spec.pool]
    assert world.pools.counts(pool)[READY] == 2
    owner = world.pools.owners("lpu")
    chip = int(np.flatnonzero(owner >= 0)[0])
    world.fleet.devices["lpu"].table["present"][chip] = False  # the chip fails
    run(world, t, 1.0, dt=1.0)
    assert world.pools.owners("lpu")[chip] < 0, "its replica let go of it"
    _, t = run(world, t + 1.0, 200.0, dt=1.0)
    assert world.pools.counts(pool)[READY] == 2, "placed again on the spare rack"
