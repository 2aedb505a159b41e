"""A full core tick at 10k, 100k and 1M GPUs: median time, against its numpy twin, memory per
GPU, and numba compile time cold and with a warm cache.

Run from the repo root: `.venv/bin/python bench/core.py [--gpus 10000,100000,1000000]`.

The site is GB200 NVL72 racks (as agents would announce them), one pool of Llama 3.1 70B with
tensor parallel 4 on every GPU, and Poisson traffic at about half its capacity. A tick is
`World.tick` with dt = 1 s: health policy, control plane, routing (least outstanding),
serving, latency histograms, pool figures and autoscaling. The numpy twin runs the same tick
with every kernel that scales with the fleet swapped for a vectorised numpy version defined
here. The kernels run on numba's threads (all cores unless NUMBA_NUM_THREADS says fewer);
each size is also timed on one thread.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sim.aggregate  # noqa: E402
import sim.health  # noqa: E402
import sim.histogram  # noqa: E402
import sim.liveness  # noqa: E402
import sim.pools  # noqa: E402
import sim.routing  # noqa: E402
import sim.serving  # noqa: E402
import sim.world  # noqa: E402
from protocols.messages import Birth, GpuInfo, NicInfo, NodeInventory  # noqa: E402
from sim.control import ControlPlane  # noqa: E402
from sim.fleet_state import FleetState  # noqa: E402
from sim.journal import Journal  # noqa: E402
from sim.pools import Pools, PoolSpec  # noqa: E402
from sim.serving import PREFILL_SHARE  # noqa: E402
from sim.traffic import Traffic, TrafficProfile  # noqa: E402
from sim.world import TickReport, World  # noqa: E402

GPU = "NVIDIA GB200"
GPUS_PER_RACK, TRAYS, PER_TRAY = 72, 18, 4
TP = 4
RPS_PER_REPLICA = 2.0
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


def rss_mib() -> float:
    """This process's resident memory, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def racks(gpus: int) -> int:
    """NVL72 racks in a site of about `gpus` GPUs."""
    return max(1, gpus // GPUS_PER_RACK)


def populate(fleet: FleetState, gpus: int, nics: bool = False) -> None:
    """Give `fleet` the births of the NVL72 racks of a site of about `gpus` GPUs, as their
    agents would announce them (with a ConnectX-7 per GPU if `nics`)."""
    for r in range(racks(gpus)):
        rack = f"r{r:05d}"
        nodes = [
            NodeInventory(
                f"{rack}-n{t:02d}",
                "gpu",
                "GB200 NVL72 compute tray",
                gpus=[
                    GpuInfo(i, f"GPU-{rack}-{t}-{i}", GPU, 189471, 1200.0, f"{rack}-nvl")
                    for i in range(PER_TRAY)
                ],
                nics=[
                    NicInfo(i, "ConnectX-7", 400.0, gpu=i) for i in range(PER_TRAY if nics else 0)
                ],
            )
            for t in range(TRAYS)
        ]
        fleet.on_birth(Birth(rack, rack, 1, 0.0, 1.0, nodes), 0.0)


def pool_and_traffic(gpus: int) -> tuple[PoolSpec, TrafficProfile]:
    """The site's pool, a TP4 replica per four GPUs, and its traffic at about half capacity."""
    replicas = racks(gpus) * GPUS_PER_RACK // TP
    spec = PoolSpec("llama-70b-gb200", "llama-3-1-70b", GPU, TP, replicas=replicas)
    return spec, TrafficProfile(peak_rps=replicas * RPS_PER_REPLICA)


def warm_up(world: World) -> TickReport:
    """Place the replicas, warm them up and reach a steady queue; the last tick's report."""
    now = 0.0
    for _ in range(3):
        now += 100.0
        world.fleet.nodes["seen"][:] = now
        report = world.tick(now, 1.0)
    return report


def build(gpus: int, seed: int = 0) -> World:
    """A site of NVL72 racks with one TP4 pool on every GPU, warm and serving."""
    fleet = FleetState()
    populate(fleet, gpus)
    spec, profile = pool_and_traffic(gpus)
    pools = Pools(fleet)
    pools.add(spec)
    control = ControlPlane(fleet, pools, Journal(":memory:"), lambda agent, command: None)
    rng = np.random.default_rng(seed)
    world = World(fleet, pools, control, Traffic([profile], rng), [spec.model], rng)
    warm_up(world)
    return world


def tick_times(world: World, ticks: int, start: float) -> list[float]:
    """Seconds per tick of `ticks` one-second ticks."""
    times = []
    now = start
    for _ in range(ticks):
        now += 1.0
        world.fleet.nodes["seen"][:] = now
        begin = time.perf_counter()
        world.tick(now, 1.0)
        times.append(time.perf_counter() - begin)
    return times


# -- the numpy twin -------------------------------------------------------------------------


def serve_numpy(dt: float, arrivals: F64, clock: F64, up: Bool, kind: Any, *arrays: F64) -> None:
    """sim.serving._serve, vectorised with numpy."""
    params, (waiting, backlog, running), outs = arrays[:12], arrays[12:15], arrays[15:]
    prompt, output, prompt_work, _, fixed, per_ctx, per_seq, capacity, max_seqs = (
        a[kind] for a in params[:9]
    )
    per_seq_tokens, per_kv = params[9][kind], params[10][kind]
    work = prompt_work / clock
    backlog[:] = np.where(up, waiting * work, backlog)
    busy = running >= 1e-9
    share = np.where(busy, PREFILL_SHARE, 1.0)
    ahead = np.maximum(backlog - 0.5 * dt * share, 0.0) + 0.5 * np.maximum(arrivals - 1, 0) * work
    queued = waiting + arrivals
    queued_s = backlog + arrivals * work
    context = prompt + 0.5 * output
    room = np.minimum(max_seqs - running, (capacity - running * context) * per_seq_tokens)
    admissible = np.minimum(queued, np.maximum(room, 0.0))
    prefill_time = np.minimum(dt * share, admissible * work)
    admitted = np.where(work > 0, prefill_time / np.where(work > 0, work, 1.0), admissible)
    batch = running + admitted
    iteration = np.maximum(fixed + per_ctx * batch * context, per_seq * batch / clock)
    decode_time = dt - prefill_time
    decoding = (output > 0) & (batch > 0)
    tokens = np.where(decoding, batch * decode_time / iteration, 0.0)
    completed = np.where(
        output > 0, np.minimum(batch, tokens / np.where(output > 0, output, 1.0)), admitted
    )
    now_running = np.where(output > 0, batch - completed, 0.0)
    itl = np.where(decoding, iteration * dt / np.maximum(decode_time, 1e-9), 0.0)
    ttft = np.where(busy, ahead * 2.0, ahead) + work
    waiting[:] = np.where(up, np.maximum(queued - admitted, 0.0), waiting)
    backlog[:] = np.where(up, np.maximum(queued_s - prefill_time, 0.0), backlog)
    running[:] = np.where(up, now_running, running)
    values = (
        admitted,
        completed,
        tokens,
        ttft,
        itl,
        ttft + output * itl,
        running * context * per_kv,
    )
    for out, value in zip(outs, values, strict=True):
        out[:] = np.where(up, value, 0.0)


def route_numpy(
    policy: str,
    counts: Any,
    pool_of: Any,
    ready: Any,
    waiting: Any,
    running: Any,
    rng: np.random.Generator,
    **_: Any,
) -> tuple[F64, npt.NDArray[np.int64]]:
    """Least-outstanding water-filling per pool, with a sort and prefix sums."""
    counts = np.asarray(counts)
    arrivals = np.zeros(len(pool_of))
    unroutable = np.zeros(counts.size, np.int64)
    outstanding = np.asarray(waiting) + np.asarray(running)
    for pool, count in enumerate(counts.tolist()):
        members = np.flatnonzero((pool_of == pool) & ready)
        if count == 0:
            continue
        if not members.size:
            unroutable[pool] = count
            continue
        costs = np.sort(outstanding[members])
        prefix = np.cumsum(costs)
        k = np.arange(1, costs.size + 1)
        fits = k * costs - prefix < count
        last = int(np.flatnonzero(fits)[-1]) + 1
        level = (count + prefix[last - 1]) / last
        arrivals[members] = np.maximum(level - outstanding[members], 0.0)
    return arrivals, unroutable


def add_numpy(
    counts: F64, sum_s: F64, edges: F64, _cells: Any, entity: Any, values: F64, _bits: Any, w: F64
) -> int:
    """sim.histogram._add with np.searchsorted and np.add.at."""
    ok = (entity >= 0) & (entity < len(counts)) & np.isfinite(values) & (values >= 0)
    if not (ok.all() and np.isfinite(w).all() and (w >= 0).all()):
        return 1
    bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, counts.shape[1] - 1)
    np.add.at(counts, (entity, bins), w)
    np.add.at(sum_s, entity, values * w)
    return 0


def replica_gpus_numpy(
    devices: Any, clocks: Any, present: Bool, kind: Any, max_clock: F64, factor: F64, missing: Bool
) -> None:
    """sim.world._replica_gpus with gathers and row reductions."""
    valid = devices >= 0
    gpu = np.where(valid, devices, 0)
    here = present[gpu]
    seen = np.where(valid & here & (clocks[gpu] > 0), clocks[gpu], np.inf).min(axis=1)
    missing[:] = (valid & ~here).any(axis=1)
    ratio = np.clip(seen / max_clock[kind], sim.world.MIN_CLOCK_FACTOR, 1.0)
    factor[:] = np.where(np.isfinite(seen), ratio, 1.0)


def scan_gpus_numpy(
    present: Bool, node: Any, alive: Bool, xid: Any, thermal: Any, samples: Any, *arrays: Any
) -> int:
    """sim.health._scan_gpus with whole-array comparisons."""
    was_gone, last_xid, last_thermal, was_throttling, last_samples, rows, found = arrays
    gone = ~present & alive[node]
    throttling = np.where(samples != last_samples, thermal > last_thermal, was_throttling)
    left = gone & ~was_gone
    bits = (
        np.where(was_throttling, sim.health.SHUT_DOWN, sim.health.GONE) * left
        + (xid > last_xid) * sim.health.NEW_XID
        + (throttling & ~was_throttling) * sim.health.THROTTLING
    )
    was_gone[:], last_xid[:], last_thermal[:], was_throttling[:] = gone, xid, thermal, throttling
    last_samples[:] = samples
    changed = np.flatnonzero(bits)
    rows[: changed.size], found[: changed.size] = changed, bits[changed]
    return int(changed.size)


def pool_totals_numpy(
    pool: Any,
    ttft_slo: F64,
    itl_slo: F64,
    per_replica: tuple[F64, ...],
    ttft: F64,
    itl: F64,
    out: F64,
) -> None:
    """sim.aggregate._pool_totals with np.bincount."""
    member = pool >= 0
    group = pool[member]
    n = out.shape[0]
    out[:, 0] += np.bincount(group, minlength=n)
    for c, values in enumerate(per_replica):
        out[:, 1 + c] += np.bincount(group, values[member], minlength=n)
    good = (ttft[member] <= ttft_slo[group]) & (itl[member] <= itl_slo[group])
    out[:, -1] += np.bincount(group, np.where(good, per_replica[-1][member], 0.0), minlength=n)


def mark_numpy(
    states: Any, alive: Bool, seen: F64, interval: F64, silent_after: float, now: float, *rest: Any
) -> int:
    """sim.liveness._mark with masks and np.bincount."""
    gpu_node, gpu_present, lost, failed = rest
    states[~alive | (now - seen > silent_after * interval)] = lost
    missing = np.bincount(gpu_node[~gpu_present], minlength=states.size) > 0
    states[missing & (states != lost)] = failed
    return 0


def pools_with_ready_numpy(pool_of_replica: Any, ready: Bool, pools: int) -> Bool:
    """sim.routing._pools_with_ready with np.bincount."""
    member = ready & (pool_of_replica >= 0)
    found: Bool = np.bincount(pool_of_replica[member], minlength=pools) > 0
    return found


def promote_and_count_numpy(pool: Any, state: Any, ready_at: F64, now: float, pools: int) -> Any:
    """sim.pools._promote_and_count with masks and np.bincount."""
    state[(state == sim.pools.WARMING) & (ready_at <= now)] = sim.pools.READY
    active = ((state == sim.pools.WARMING) | (state == sim.pools.READY)) & (pool >= 0)
    return np.bincount(pool[active], minlength=pools)[:pools]


TWINS = [
    (sim.pools, "_promote_and_count", promote_and_count_numpy),
    (sim.liveness, "_mark", mark_numpy),
    (sim.routing, "_pools_with_ready", pools_with_ready_numpy),
    (sim.serving, "_serve", serve_numpy),
    (sim.world, "route", route_numpy),
    (sim.histogram, "_add", add_numpy),
    (sim.world, "_replica_gpus", replica_gpus_numpy),
    (sim.health, "_scan_gpus", scan_gpus_numpy),
    (sim.aggregate, "_pool_totals", pool_totals_numpy),
]
"""Every kernel a tick runs over the fleet's nodes, replicas or GPUs, and its numpy twin."""


@contextlib.contextmanager
def numpy_twin() -> Iterator[None]:
    """Run ticks with the numpy versions of the kernels."""
    saved = [(module, name, getattr(module, name)) for module, name, _ in TWINS]
    for module, name, twin in TWINS:
        setattr(module, name, twin)
    try:
        yield
    finally:
        for module, name, kernel in saved:
            setattr(module, name, kernel)


# -- runs ------------------------------------------------------------------------------------


def check_twin(gpus: int = 3_000, ticks: int = 5) -> None:
    """The twin must compute what the kernels do: the same site ticked both ways agrees."""
    fast_world, twin_world = build(gpus), build(gpus)
    for k in range(ticks):
        now = 1000.0 + k
        for world in (fast_world, twin_world):
            world.fleet.nodes["seen"][:] = now
        fast = fast_world.tick(now, 1.0)
        with numpy_twin():
            twin = twin_world.tick(now, 1.0)
        for name, figures in fast.pools.items():
            for field, value in vars(figures).items():
                twin_value = vars(twin.pools[name])[field]
                np.testing.assert_allclose(twin_value, value, rtol=1e-6, atol=1e-9, err_msg=field)


def measure(gpus: int, ticks: int) -> dict[str, float]:
    """Build a site of `gpus` GPUs and time its ticks, both ways; figures as a dict."""
    before = rss_mib()
    built = time.perf_counter()
    world = build(gpus)
    build_s = time.perf_counter() - built
    memory = rss_mib() - before
    numba_ticks = tick_times(world, ticks, 1000.0)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    one_thread_ticks = tick_times(world, ticks, 1500.0)
    numba.set_num_threads(threads)
    with numpy_twin():
        twin_ticks = tick_times(world, max(3, ticks // 3), 2000.0)
    rank_s, order_s = placement_order_times(world)
    return {
        "gpus": float(len(world.fleet.devices["gpu"].table)),
        "replicas": float(len(world.pools.replicas)),
        "build_s": build_s,
        "tick_ms": statistics.median(numba_ticks) * 1e3,
        "one_thread_ms": statistics.median(one_thread_ticks) * 1e3,
        "twin_ms": statistics.median(twin_ticks) * 1e3,
        "bytes_per_gpu": memory * 2**20 / max(len(world.fleet.devices["gpu"].table), 1),
        "rank_ms": rank_s * 1e3,
        "order_ms": order_s * 1e3,
    }


def placement_order_times(world: World) -> tuple[float, float]:
    """Seconds to rank every GPU in id order (after births change the devices) and, the
    ranks cached, to sort all of them as free for a placement (what a short pool pays every
    tick)."""
    pools, free = world.pools, np.arange(len(world.fleet.devices["gpu"].table))
    pools._id_order.clear()
    began = time.perf_counter()
    pools._in_id_order(free, "gpu")
    rank_s = time.perf_counter() - began
    times = []
    for _ in range(5):
        began = time.perf_counter()
        pools._in_id_order(free, "gpu")
        times.append(time.perf_counter() - began)
    return rank_s, statistics.median(times)


def compile_times(cache: str) -> dict[str, float]:
    """First tick minus a steady tick, in a fresh process, with the given numba cache dir."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    script = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from bench.core import build\n"
        "t = time.perf_counter(); build(10_000); first = time.perf_counter() - t\n"
        "t = time.perf_counter(); build(10_000); second = time.perf_counter() - t\n"
        "print(first - second)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return {"seconds": float(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gpus", default="10000,100000,1000000")
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.ticks)))
        return
    check_twin()
    print("numpy twin checked: it ticks a 3,000-GPU site to the same pool figures")
    with tempfile.TemporaryDirectory() as cache:
        cold = compile_times(cache)["seconds"]
        warm = compile_times(cache)["seconds"]
    print(
        f"numba compile: {cold:.1f} s with an empty cache, {warm:.2f} s with a warm one "
        "(first tick of a fresh process minus a steady one)"
    )
    print(
        f"| GPUs | replicas | tick ms (numba, {numba.get_num_threads()} threads) "
        "| tick ms (numba, 1 thread) | tick ms (numpy twin) | speed-up | memory B/GPU | build s "
        "| id rank ms | placement order ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for gpus in (int(g) for g in args.gpus.split(",")):
        run = subprocess.run(
            [sys.executable, __file__, "--one", str(gpus), "--ticks", str(args.ticks)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(
            f"| {r['gpus']:,.0f} | {r['replicas']:,.0f} | {r['tick_ms']:.1f} "
            f"| {r['one_thread_ms']:.1f} | {r['twin_ms']:.1f} | {r['twin_ms'] / r['tick_ms']:.1f}x "
            f"| {r['bytes_per_gpu']:,.0f} | {r['build_s']:.1f} | {r['rank_ms']:.0f} "
            f"| {r['order_ms']:.1f} |",
            flush=True,
        )
    print("Goals: a 1M-GPU tick <= 20 ms median, >= 10x faster than the numpy twin.")


if __name__ == "__main__":
    main()
