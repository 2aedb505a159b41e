"""Time and size of a Prometheus scrape of the core at 100k and 1M GPUs: everything, one rack,
aggregates only, and the default (which leaves per-device series out of a fleet this big).

Run from the repo root: `.venv/bin/python bench/metrics.py [--gpus 100000,1000000]`.

The site is bench/core.py's (GB200 NVL72 racks, one TP4 pool of Llama 3.1 70B, warm and
serving) with a ConnectX-7 NIC per GPU, and every device's gauges and counters set as
telemetry would leave them (random values). A scrape costs the core a snapshot on its event
loop (the pause a tick may see) and the text rendered off the loop; both are timed (medians).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core import pool_and_traffic, populate, warm_up  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from sim.metrics import CoreMetrics, Selection, render  # noqa: E402
from sim.service import CoreService  # noqa: E402
from sim.views import Pace  # noqa: E402

SCRAPES = (
    ("everything", "limit=all"),
    ("one rack", "rack=r00000"),
    ("aggregates only", "aggregate=1"),
    ("default", ""),
)


def build(gpus: int, seed: int = 0) -> CoreService:
    """A core (never connected) with the site's births, its devices' samples and a tick's
    views, as a running core has them."""
    spec, profile = pool_and_traffic(gpus)
    core = CoreService(
        Endpoint("127.0.0.1", 1), "bench", seed=seed, pools=[spec], traffic={spec.model: profile}
    )
    populate(core.fleet, gpus, nics=True)
    rng = np.random.default_rng(seed)
    for devices in core.fleet.devices.values():
        table = devices.table
        table["gauges"][:] = rng.uniform(0.0, 100.0, table["gauges"].shape)
        table["counters"][:] = rng.integers(0, 2**40, table["counters"].shape)
    core.build_views(warm_up(core.world), Pace(0.0))
    return core


def scrape(metrics: CoreMetrics, query: str, runs: int, renders: int) -> tuple[float, float, int]:
    """Median seconds of `runs` snapshots and of rendering `renders` of them, and the bytes of
    text. The first snapshot of a size pays the kernel's page faults for fresh memory."""
    selection = Selection.parse(query)
    snapshots, rendered, size = [], [], 0
    for run in range(runs):
        began = time.perf_counter()
        snapshot = metrics.snapshot(selection)
        snapshots.append(time.perf_counter() - began)
        if run < renders:
            began = time.perf_counter()
            size = sum(len(chunk) for chunk in render(snapshot))
            rendered.append(time.perf_counter() - began)
        del snapshot
    return statistics.median(snapshots), statistics.median(rendered), size


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gpus", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=5, help="scrapes per median (default 5)")
    args = parser.parse_args()
    print("|      GPUs | scrape          |     query     | snapshot ms | render ms |       size |")
    print("|----------:|-----------------|---------------|------------:|----------:|-----------:|")
    for gpus in (int(g) for g in args.gpus.split(",")):
        core = build(gpus)
        metrics = CoreMetrics(core)
        for name, query in SCRAPES:
            renders = 1 if name == "everything" and gpus > 200_000 else args.runs
            snapshot_s, render_s, size = scrape(metrics, query, args.runs, renders)
            gpu_count = len(core.fleet.devices["gpu"].table)
            print(
                f"| {gpu_count:>9,} | {name:<15} | {query or '-':<13} | {snapshot_s * 1e3:>11.1f} "
                f"| {render_s * 1e3:>9.0f} | {size / 2**20:>7.1f} MiB |",
                flush=True,
            )
        del core, metrics


if __name__ == "__main__":
    main()
