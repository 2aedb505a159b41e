"""Benchmark of the operator console: keypress-to-updated-screen latency and frames per second
with the state a core publishes for fleets of 1k, 100k and 1M GPUs.

Method: a headless console at 160x50 is fed synthetic state messages of the sizes the core
publishes at each fleet size (racks = GPUs/72 NVL72 racks plus one network rack per 16
switches; a leaf per 32 NICs and a spine per two leaves in the fabric view; the default
pools; a few events) through the bridge's own message path (`Bridge.feed`: decode, update,
coalesced repaint), once per simulated tick, as msgpack bytes prepared beforehand. No broker
and no core run, so the figures are the console's alone. Every screen update is rendered
to terminal bytes (as on a real terminal) and timed.

- Latency: a key is pressed every 100 ms (heatmap cursor moves, metric changes, view
  switches) while state arrives every second; latency is the time from the key press to the
  first rendered frame that shows its effect.
- Decode: one tick's messages fed and every view of it decoded (the console decodes the rack
  and fabric views only when a view on screen reads them).
- Frames per second: state ticks are fed back to back for a few seconds with the racks view
  shown; the console repaints at most 20 times a second by design, so this shows whether it
  keeps up (20 means yes) and how many ticks it takes in per second (ticks that arrive
  between two repaints are coalesced: only the newest is decoded).

Run from the repo root (about a minute):

    .venv/bin/python bench/tui.py --gpus 1000,100000,1000000
"""

import sys
from pathlib import Path

# Run as `python bench/tui.py`, this file would shadow the `tui` package it measures.
sys.path.remove(str(Path(__file__).resolve().parent))

import argparse
import asyncio
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from textual._compositor import CompositorUpdate
from textual.screen import Screen

from protocols.codec import encode
from protocols.columns import RackColumns, layout
from protocols.endpoint import Endpoint
from protocols.messages import (
    CoreStatus,
    Event,
    Events,
    FabricState,
    Percentiles,
    PoolState,
    PoolStates,
    PortState,
    RackStates,
    RouteState,
    Summary,
    SwitchState,
)
from tui.app import AidcApp
from tui.widgets.heatmap import RackHeatmap

SITE = "bench"
SIZE = (160, 50)
VARIANTS = 8
"""Different ticks of state prepared per fleet size, fed in turn."""
GPUS_PER_RACK = 72
NICS_PER_LEAF = 32
SWITCHES_PER_NET_RACK = 16
PRESS_EVERY_S = 0.1
TICK_S = 1.0
KEYS = ("right", "right", "down", "m", "right", "3", "4", "5", "1", "down", "m", "left")
"""The keys pressed in turn: cursor moves and metric changes on the heatmap, view switches."""


@dataclass(frozen=True)
class Tick:
    """One tick of state as the core would publish it: (topic, msgpack bytes) pairs."""

    messages: list[tuple[str, bytes]]
    size: int


def fleet_tick(gpus: int, rng: np.random.Generator, now: float) -> Tick:
    """The state messages of one tick of a fleet of `gpus` GPUs."""
    racks = math.ceil(gpus / GPUS_PER_RACK)
    leaves = math.ceil(gpus / NICS_PER_LEAF)
    spines = math.ceil(leaves / 2)
    switches = leaves + spines
    net_racks = math.ceil(switches / SWITCHES_PER_NET_RACK)
    names = [f"r{i:05d}" for i in range(1, racks + 1)]
    names += [f"net{i:04d}" for i in range(1, net_racks + 1)]
    devices = np.r_[np.full(racks, GPUS_PER_RACK), np.zeros(net_racks)]
    lost = (rng.random(len(names)) < 0.01) * 4 * (devices > 0)
    columns = layout(RackColumns).pack(
        {
            "node": np.arange(len(names)),
            "devices": devices,
            "healthy": devices - lost,
            "cordoned": 0,
            "lost": lost,
            "utilization": rng.uniform(0, 100, len(names)) * (devices > 0),
            "temperature_c": rng.uniform(30, 90, len(names)) * (devices > 0),
            "power_kw": rng.uniform(20, 130, len(names)) * (devices > 0),
            "health": np.where(lost > 0, 2, 0),
        }
    )
    pools = [
        PoolState(
            f"pool-{i}",
            f"model-{i % 3}",
            "NVIDIA GB200",
            100 + i,
            100 + i,
            min_available=10,
            num_requests_running=int(rng.integers(0, 5000)),
            kv_cache_usage=float(rng.random()),
            tokens_per_s=float(rng.uniform(1e5, 1e7)),
            time_to_first_token=Percentiles(0.1, 0.2, 0.4),
            inter_token_latency=Percentiles(0.01, 0.02, 0.03),
            slo_attainment=0.99,
        )
        for i in range(8)
    ]
    util = rng.random(switches)
    fabric = FabricState(
        now,
        [
            SwitchState(
                f"leaf{i + 1:05d}" if i < leaves else f"spine{i - leaves + 1:05d}",
                64,
                64,
                float(util[i]),
                float(util[i] > 0.8) * 100.0,
                0.0,
                0.0,
                0,
            )
            for i in range(switches)
        ],
        [PortState(f"leaf{i + 1:05d}", i, 0.9, 10.0, 0.0, "peer") for i in range(10)],
    )
    summary = Summary(
        now,
        int(now),
        1.0,
        gpus=gpus,
        gpus_healthy=gpus - int(lost.sum()),
        gpus_lost=int(lost.sum()),
        power_w=gpus * 900.0,
        requests_per_s=gpus / 10,
        tokens_per_s=gpus * 30.0,
        goodput_rps=gpus / 10.5,
        ttft_p99_s=0.4,
        itl_p99_s=0.03,
    )
    events = Events(
        [
            Event(now, "warning", f"gpu/r{i:05d}-n01/0", "thermal", "GPU 0 throttling")
            for i in range(5)
        ]
    )
    base = f"aidc/v1/{SITE}"
    messages = [
        (f"{base}/state/summary", encode(summary)),
        (f"{base}/state/racks", encode(RackStates(now, names, columns))),
        (
            f"{base}/state/pools",
            encode(PoolStates(now, pools, [RouteState("model-0", {"pool-0": 100.0})])),
        ),
        (f"{base}/state/fabric", encode(fabric)),
        (f"{base}/core/events", encode(events)),
    ]
    return Tick(messages, sum(len(p) for _, p in messages))


class BenchApp(AidcApp):
    """The console, rendering every update to terminal bytes and noting when, and what the
    screen showed (view, heatmap cursor, metric)."""

    def __init__(self) -> None:
        super().__init__(Endpoint("127.0.0.1", 1883), SITE, connect=False)
        self.frames: list[tuple[float, tuple[Any, ...]]] = []

    def shown(self) -> tuple[Any, ...]:
        """What a frame shows, as far as the benchmark's keys change it."""
        racks = self.views.get("racks")
        cursor = (
            racks.query_one(RackHeatmap).cursor if racks is not None and racks.is_mounted else -1
        )
        metric = getattr(racks, "metric", "")
        return (self.current_mode, cursor, metric)

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(self.console)
            self.frames.append((time.perf_counter(), self.shown()))


def feed(app: AidcApp, tick: Tick) -> None:
    for topic, payload in tick.messages:
        app.bridge.feed(topic, payload)


async def measure(gpus: int, presses: int, fps_s: float) -> dict[str, float]:
    """Latencies and frame rates of the console fed a fleet of `gpus` GPUs."""
    rng = np.random.default_rng(gpus)
    now = 1_790_000_000.0
    ticks = [fleet_tick(gpus, rng, now + i) for i in range(VARIANTS)]
    app = BenchApp()
    async with app.run_test(size=SIZE) as pilot:
        picture = app.bridge.picture
        picture.link.up = True
        app.bridge.feed(f"aidc/v1/{SITE}/core/status", encode(CoreStatus(True, 1, now, 1.0)))
        ingest = []
        for tick in ticks:
            started = time.perf_counter()
            feed(app, tick)
            assert picture.racks is not None  # decoded when read
            assert picture.fabric is not None
            ingest.append(time.perf_counter() - started)
        await pilot.pause(0.5)
        for key in ("3", "4", "5", "1"):  # every view built once, as an operator's first minute
            await pilot.press(key)
        await pilot.pause(0.3)

        stop = asyncio.Event()

        async def state() -> None:
            i = 0
            while not stop.is_set():
                feed(app, ticks[i % VARIANTS])
                i += 1
                await asyncio.sleep(TICK_S)

        feeder = asyncio.create_task(state())
        latencies = []
        for i in range(presses):
            key = KEYS[i % len(KEYS)]
            frames = len(app.frames)
            pressed = time.perf_counter()
            await pilot.press(key)
            expected = app.shown()
            latencies.append(await first_frame(app, frames, expected) - pressed)
            await asyncio.sleep(max(0.0, PRESS_EVERY_S - (time.perf_counter() - pressed)))
        stop.set()
        await feeder

        await pilot.press("1")
        await pilot.pause(0.3)
        frames, fed_ticks = len(app.frames), 0
        started = time.perf_counter()
        while time.perf_counter() - started < fps_s:
            feed(app, ticks[fed_ticks % VARIANTS])
            fed_ticks += 1
            await asyncio.sleep(0)
        await pilot.pause(0.1)
        elapsed = time.perf_counter() - started
        frames = len(app.frames) - frames
    return {
        "racks": float(len(app.bridge.picture.racks or [])),
        "switches": float(
            len(app.bridge.picture.fabric.switches) if app.bridge.picture.fabric else 0
        ),
        "tick_bytes": float(ticks[0].size),
        "ingest_ms": statistics.median(ingest) * 1000,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": float(np.percentile(latencies, 95)) * 1000,
        "max_ms": max(latencies) * 1000,
        "fps": frames / elapsed,
        "ticks_per_s": fed_ticks / elapsed,
    }


async def first_frame(app: BenchApp, after: int, expected: tuple[Any, ...]) -> float:
    """When the first frame after index `after` showed `expected`."""
    deadline = time.perf_counter() + 5.0
    while time.perf_counter() < deadline:
        for when, shown in app.frames[after:]:
            if shown == expected:
                return when
        await asyncio.sleep(0.001)
    raise TimeoutError(f"no frame showed {expected}")


def table(rows: list[tuple[int, dict[str, float]]]) -> str:
    """The figures as a Markdown table."""
    header = (
        "|      GPUs |  racks | switches | state per tick | decode ms/tick | key p50 ms "
        "| key p95 ms | key max ms | frames/s | ticks taken/s |\n"
        "|----------:|-------:|---------:|---------------:|---------------:|-----------:"
        "|-----------:|-----------:|---------:|--------------:|"
    )
    lines = [header]
    for gpus, r in rows:
        lines.append(
            f"| {gpus:>9,} | {r['racks']:>6,.0f} | {r['switches']:>8,.0f} "
            f"| {r['tick_bytes'] / 1e6:>11.2f} MB | {r['ingest_ms']:>14.1f} "
            f"| {r['p50_ms']:>10.1f} | {r['p95_ms']:>10.1f} | {r['max_ms']:>10.1f} "
            f"| {r['fps']:>8.1f} | {r['ticks_per_s']:>13.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, run: Callable[..., Any] = asyncio.run) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gpus", default="1000,100000,1000000", help="fleet sizes (default %(default)s)"
    )
    parser.add_argument("--presses", type=int, default=200, help="keys pressed per size")
    parser.add_argument(
        "--fps-seconds", type=float, default=5.0, help="seconds of back-to-back state"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.gpus.split(",")]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"aidc console benchmark: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (load average {load}), Python {platform.python_version()}; "
        "synthetic state fed "
        f"through Bridge.feed (no broker, no core), {SIZE[0]}x{SIZE[1]} headless, every frame "
        "rendered to terminal bytes",
        flush=True,
    )
    rows = []
    for gpus in sizes:
        rows.append((gpus, run(measure(gpus, args.presses, args.fps_seconds))))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
