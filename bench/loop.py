"""The whole loop, as a user runs it: mosquitto, `aidc core`, `aidc agents` and a dashboard
client subscribed to every state view, all real processes on one machine.

Run from the repo root:
`.venv/bin/python bench/loop.py --gpus 10000,100000 --connections gateway,rack --seconds 60`.

For each size and connection kind: a fresh mosquitto, then the core (1 s ticks, speed 1),
then the fleet (NVL72 racks and their network racks, 1 s interval, split over `--fleets`
shard processes), then a dashboard client (the console's subscriptions). Once the core knows
every GPU, it measures for `--seconds` and prints one row:

- delivered: GPU samples the core ingested a second over the window (the growth of the
  summary's running count, so ticks that lose much count in full, and a tick that catches up
  after a stall counts for no more than it took in), as % of the fleet's GPUs (each should
  report once a second); ingest msg/s and GPU samples/s are the core's own summary figures,
  medians of the window's ticks;
- telemetry age p50/p99 (the core's summary: how old each live node's latest sample was at
  the tick), tick ms (the world's step) and assign ms (the assignment fan-out), as medians of
  the window's ticks (their max beside);
- CPU of core, fleet (all shards) and broker over the window, in cores;
- RSS of core, fleet and broker at the window's start and end (flat means bounded);
- the dashboard's lag: when each summary reached the client, less the simulated time it
  carries (the core's clock is the wall clock at speed 1), median and max.

With `--profile DIR`, py-spy samples the core and each fleet process over the window and
writes their collapsed stacks (`DIR/GPUS-CONN-core.txt`, ...), for flame graphs or `sort`.
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalog import RACK_KINDS  # noqa: E402
from aidc.runtime.brokers import spawned_broker  # noqa: E402
from bench.procs import broker_pid, cpu_seconds, rss_mib  # noqa: E402
from protocols.codec import SUMMARY  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from protocols.link import Link  # noqa: E402
from protocols.messages import Summary  # noqa: E402
from protocols.state_topics import state_subscriptions  # noqa: E402
from protocols.topics import StateView, state_topic  # noqa: E402

NVL72 = RACK_KINDS["nvl72"]
GPUS_PER_RACK = NVL72.nodes_per_rack * NVL72.gpus_per_node
SITE = "loop"
BORN_WAIT_S = 600.0
"""How long the fleet may take to connect and be known to the core (13,889 rack
connections take about a minute to connect; a gateway's births a few seconds)."""


@dataclass
class Dashboard:
    """What a console would receive: every state view; the summaries kept, with their lag."""

    summaries: list[Summary] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    views: int = 0

    async def on_message(self, message: object) -> None:
        topic = message.topic.value  # type: ignore[attr-defined]
        self.views += 1
        if topic == state_topic(SITE, StateView.SUMMARY):
            summary = SUMMARY.decode(message.payload)  # type: ignore[attr-defined]
            self.summaries.append(summary)
            self.lags.append(time.time() - summary.time)


def aidc(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """`aidc ARGS` as a user starts it, its output in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "aidc", *args],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def profilers(
    pids: dict[str, list[int]], seconds: float, prefix: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each process for `seconds`, its collapsed stacks in `prefix-NAME.txt`."""
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if spy is None:
        raise SystemExit("--profile needs py-spy: `.venv/bin/pip install py-spy`")
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                f"{seconds:.0f}",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                f"{prefix}-{name}{i or ''}.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, group in pids.items()
        for i, pid in enumerate(group)
    ]


async def measure(
    gpus: int,
    connection: str,
    fleets: int,
    seconds: float,
    switches: bool,
    profile: Path | None = None,
) -> dict[str, float]:
    """One run of the whole loop; its figures."""
    racks = max(1, round(gpus / GPUS_PER_RACK))
    with tempfile.TemporaryDirectory() as tmp, spawned_broker("mosquitto") as endpoint:
        logs = Path(tmp)
        topology = logs / "site.toml"
        fabric = "" if switches else "\n[fabric]\nleaves = 0\nspines = 0\n"
        topology.write_text(f'[[racks]]\nkind = "nvl72"\ncount = {racks}\n{fabric}')
        url = f"mqtt://127.0.0.1:{endpoint.port}"
        broker = broker_pid()
        core = aidc("core", "--broker", url, "--site", SITE, log=logs / "core.log")
        shards = [
            aidc(
                "agents",
                *("--broker", url, "--site", SITE, "--topology", str(topology)),
                *("--connection", connection, "--interval", "1", "--shard", f"{i}/{fleets}"),
                log=logs / f"agents{i}.log",
            )
            for i in range(fleets)
        ]
        dashboard = Dashboard()
        link = Link(
            Endpoint("127.0.0.1", endpoint.port),
            "bench-dashboard",
            subscriptions=state_subscriptions(SITE),
        )
        watching = asyncio.create_task(link.run(dashboard.on_message))
        try:
            expected = racks * GPUS_PER_RACK
            started = time.monotonic()
            while not (dashboard.summaries and dashboard.summaries[-1].gpus_healthy >= expected):
                if time.monotonic() - started > BORN_WAIT_S:
                    known = dashboard.summaries[-1].gpus_healthy if dashboard.summaries else 0
                    raise RuntimeError(f"the core knew {known:,} of {expected:,} GPUs")
                await asyncio.sleep(1.0)
            born_s = time.monotonic() - started
            await asyncio.sleep(5.0)  # settle: assignments flow, queues drain
            pids = {"core": core.pid, "fleet": [s.pid for s in shards], "broker": broker}
            spies = (
                profilers(
                    {"core": [core.pid], "fleet": [s.pid for s in shards]},
                    seconds,
                    profile / f"{expected}-{connection}",
                )
                if profile
                else []
            )
            cpu0 = snapshot_cpu(pids)
            rss0 = snapshot_rss(pids)
            first = len(dashboard.summaries)
            wall0 = time.monotonic()
            await asyncio.sleep(seconds)
            wall = time.monotonic() - wall0
            cpu1, rss1 = snapshot_cpu(pids), snapshot_rss(pids)
            window = dashboard.summaries[first:]
            lags = dashboard.lags[first:]
            for spy in spies:
                spy.wait()
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
            for process in (*shards, core):
                stop(process)
    samples = [s.gpu_samples_per_s for s in window]
    return {
        "gpus": expected,
        "born_s": born_s,
        "delivered": ingested(window) / expected,
        "ingest_msgs": median([s.ingest_per_s for s in window]),
        "samples": median(samples),
        "age_p50": median([s.telemetry_age_p50_s for s in window]),
        "age_p99": median([s.telemetry_age_p99_s for s in window]),
        "age_p99_max": max((s.telemetry_age_p99_s for s in window), default=float("nan")),
        "tick_ms": median([s.tick_ms for s in window]),
        "tick_ms_max": max((s.tick_ms for s in window), default=float("nan")),
        "assign_ms": median([s.assign_ms for s in window]),
        "dropped": float(window[-1].telemetry_dropped - window[0].telemetry_dropped)
        if window
        else 0.0,
        **{f"{name}_cpu": (cpu1[name] - cpu0[name]) / wall for name in cpu0},
        **{f"{name}_rss0": rss0[name] for name in rss0},
        **{f"{name}_rss1": rss1[name] for name in rss1},
        "lag_p50": median(lags),
        "lag_max": max(lags, default=float("nan")),
        "ticks": float(len(window)),
    }


def ingested(window: list[Summary]) -> float:
    """GPU samples a second the core ingested over the window: its running count's growth
    over the simulated time between the first summary and the last (at speed 1, wall time)."""
    if len(window) < 2 or window[-1].time <= window[0].time:
        return float("nan")
    grown = window[-1].gpu_samples - window[0].gpu_samples
    return grown / (window[-1].time - window[0].time)


def snapshot_cpu(pids: dict[str, object]) -> dict[str, float]:
    return {name: sum(cpu_seconds(p) for p in _pids(pid)) for name, pid in pids.items()}


def snapshot_rss(pids: dict[str, object]) -> dict[str, float]:
    return {name: sum(rss_mib(p) for p in _pids(pid)) for name, pid in pids.items()}


def _pids(pid: object) -> list[int]:
    return [int(p) for p in pid] if isinstance(pid, list) else [int(pid)]  # type: ignore[call-overload]


HEADER = (
    "|      GPUs | conn    | delivered | ingest msg/s | GPU samples/s | age p50/p99 s | "
    "tick ms (max) | assign ms | shed | core CPU | fleet CPU | broker CPU | core RSS MiB "
    "| fleet RSS MiB | broker RSS MiB | dashboard lag s (max) |"
)


def row(connection: str, f: dict[str, float]) -> str:
    return (
        f"| {f['gpus']:>9,.0f} | {connection:<7} | {f['delivered']:>8.1%} | "
        f"{f['ingest_msgs']:>12,.0f} | {f['samples']:>13,.0f} | "
        f"{f['age_p50']:.2f} / {f['age_p99']:.2f} | "
        f"{f['tick_ms']:>6.1f} ({f['tick_ms_max']:.0f}) | "
        f"{f['assign_ms']:>9.1f} | {f['dropped']:>4,.0f} | {f['core_cpu']:>8.2f} | "
        f"{f['fleet_cpu']:>9.2f} | {f['broker_cpu']:>10.2f} | "
        f"{f['core_rss0']:,.0f} → {f['core_rss1']:,.0f} | "
        f"{f['fleet_rss0']:,.0f} → {f['fleet_rss1']:,.0f} | "
        f"{f['broker_rss0']:,.0f} → {f['broker_rss1']:,.0f} | "
        f"{f['lag_p50']:.2f} ({f['lag_max']:.2f}) |"
    )


def main() -> None:
    """Measure each size and connection kind, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gpus", default="10000,100000", help="comma-separated GPU counts")
    parser.add_argument("--connections", default="gateway,rack", help="gateway, rack or node")
    parser.add_argument("--fleets", type=int, default=1, help="fleet shard processes")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    parser.add_argument(
        "--no-switches",
        action="store_true",
        help="no switch agents (the fabric a topology gets by default has a leaf per 32 NICs: "
        "46,877 switches and 3M ports at a million GPUs)",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the core and fleets into DIR"
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; 1 s interval and tick; "
        f"NVL72 racks{' (no switch agents)' if args.no_switches else ' and their switches'}; "
        f"{args.fleets} fleet process(es); medians over {args.seconds:g} s"
    )
    print(HEADER)
    print("|" + "|".join("-" * (len(c) + 2) for c in HEADER.split("|")[1:-1]) + "|")
    for gpus in (int(g) for g in args.gpus.split(",")):
        for connection in args.connections.split(","):
            figures = asyncio.run(
                measure(
                    gpus,
                    connection,
                    args.fleets,
                    args.seconds,
                    not args.no_switches,
                    args.profile,
                )
            )
            print(row(connection, figures), flush=True)


if __name__ == "__main__":
    main()
