"""Open loop: how many GPUs one fleet process emulates and publishes every second through
mosquitto, with no core, so no assignments come back and nothing ingests what it sends.

Run from the repo root: `.venv/bin/python bench/fleet.py [--gpus 10000,100000,1000000]`.

Each size runs in a fresh process: a local mosquitto, then a Fleet of NVL72 racks (no switch
agents) at a 1 s interval, each rack one agent and one connection, as `aidc agents` runs it.
After the fleet is connected and warm, it measures for `--seconds`: GPU samples/s actually
published (median of the per-second figures), the fleet's CPU (user+sys) and resident memory,
and mosquitto's CPU. The ceiling beside it is the raw rate of one aiomqtt client publishing
the same NVL72 telemetry payload in a loop (QoS 0), times 72 GPUs per message.
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalog import RACK_KINDS  # noqa: E402
from agents.fleet import Fleet  # noqa: E402
from agents.topology import Fabric, build_site  # noqa: E402
from aidc.runtime.brokers import spawned_broker  # noqa: E402
from bench.procs import broker_pid, cpu_seconds, rss_mib  # noqa: E402
from protocols.codec import encode  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402

NVL72 = RACK_KINDS["nvl72"]
GPUS_PER_RACK = NVL72.nodes_per_rack * NVL72.gpus_per_node


async def measure_shard(gpus: int, shard: tuple[int, int], port: int, seconds: float) -> None:
    """Run one shard of a fleet of `gpus` GPUs against the broker on `port`; print "ready"
    once it is connected and warm, then its figures as JSON after `seconds`."""
    racks = max(1, gpus // GPUS_PER_RACK)
    site = build_site("bench", [(NVL72, racks)], Fabric(0, 0))
    fleet = Fleet(
        site,
        Endpoint("127.0.0.1", port),
        interval_s=1.0,
        seed=shard[0],
        shard=shard,
        connection="rack",
    )
    started = time.monotonic()
    task = asyncio.create_task(fleet.run())
    while fleet.up() < len(fleet.agents):  # noqa: ASYNC110 - polling a count, not an event
        await asyncio.sleep(0.5)
    connect_s = time.monotonic() - started
    await asyncio.sleep(3.0)  # warm up: every agent publishes a few times
    print("ready", flush=True)
    fleet.status()
    cpu0, wall0 = cpu_seconds(os.getpid()), time.monotonic()
    rates = []
    for _ in range(int(seconds)):
        await asyncio.sleep(1.0)
        rates.append(fleet.status().gpu_samples_per_s)
    wall = time.monotonic() - wall0
    figures = {
        "gpus": fleet.gpus,
        "agents": len(fleet.agents),
        "connect_s": connect_s,
        "samples_per_s": statistics.median(rates),
        "cpu": (cpu_seconds(os.getpid()) - cpu0) / wall,
        "rss_mib": rss_mib(os.getpid()),
    }
    print(json.dumps(figures), flush=True)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def measure(gpus: int, processes: int, seconds: float) -> dict[str, float]:
    """A fleet of `gpus` GPUs split over `processes` shard processes, one shared mosquitto."""
    with spawned_broker("mosquitto") as endpoint:
        broker = broker_pid()
        shards = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--shard-of",
                    str(gpus),
                    f"{i}/{processes}",
                    str(endpoint.port),
                    "--seconds",
                    str(seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]
        for shard in shards:
            assert shard.stdout is not None
            assert shard.stdout.readline().strip() == "ready"
        broker0, wall0 = cpu_seconds(broker), time.monotonic()
        results = []
        for shard in shards:
            assert shard.stdout is not None
            results.append(json.loads(shard.stdout.readline()))
        broker_cpu = (cpu_seconds(broker) - broker0) / (time.monotonic() - wall0)
        for shard in shards:
            shard.wait(30)
    return {
        "gpus": sum(r["gpus"] for r in results),
        "agents": sum(r["agents"] for r in results),
        "connect_s": max(r["connect_s"] for r in results),
        "samples_per_s": sum(r["samples_per_s"] for r in results),
        "fleet_cpu": sum(r["cpu"] for r in results),
        "broker_cpu": broker_cpu,
        "rss_mib": sum(r["rss_mib"] for r in results),
    }


async def raw_publish_rate(seconds: float) -> float:
    """Messages/s one aiomqtt client publishes of an NVL72 telemetry payload (QoS 0)."""
    site = build_site("bench", [(NVL72, 1)], Fabric(0, 0))
    with spawned_broker("mosquitto") as endpoint:
        fleet = Fleet(site, Endpoint(endpoint.host, endpoint.port), seed=0, connection="rack")
        agent = fleet.agents[0]
        payload = encode(agent.telemetry(1, 0.0))
        async with aiomqtt.Client(endpoint.host, endpoint.port) as client:
            sent, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                for _ in range(100):
                    await client.publish("aidc/v1/bench/telemetry/r001/r001", payload)
                sent += 100
        return sent / seconds


def main() -> None:
    """Measure each size and process count, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gpus", default="10000,100000,1000000", help="comma-separated sizes")
    parser.add_argument("--processes", default="1,2", help="fleet processes to split across")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--shard-of", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shard_of:
        gpus, shard, port = args.shard_of
        index, count = (int(n) for n in shard.split("/"))
        asyncio.run(measure_shard(int(gpus), (index, count), int(port), args.seconds))
        return
    raw = asyncio.run(raw_publish_rate(5.0))
    print(
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; 1 s interval; NVL72 racks, "
        f"one agent and connection per rack; median over {args.seconds:g} s"
    )
    print(
        f"raw aiomqtt publish of one NVL72 message: {raw:,.0f} msg/s = "
        f"{raw * GPUS_PER_RACK:,.0f} GPU samples/s (one process's ceiling)"
    )
    print(
        "|      GPUs | procs | agents | connect s | GPU samples/s | of target | of ceiling "
        "| fleet CPU | broker CPU | CPU ms/s per 1k GPUs | MiB per 1k GPUs |"
    )
    print(
        "|----------:|------:|-------:|----------:|--------------:|----------:|-----------:"
        "|----------:|-----------:|---------------------:|----------------:|"
    )
    for gpus in (int(g) for g in args.gpus.split(",")):
        for processes in (int(p) for p in args.processes.split(",")):
            r = measure(gpus, processes, args.seconds)
            per_k = r["gpus"] / 1000
            ceiling = raw * GPUS_PER_RACK * processes
            print(
                f"| {r['gpus']:>9,.0f} | {processes:>5} | {r['agents']:>6,.0f} "
                f"| {r['connect_s']:>9.1f} | {r['samples_per_s']:>13,.0f} "
                f"| {r['samples_per_s'] / r['gpus']:>9.0%} "
                f"| {r['samples_per_s'] / ceiling:>10.0%} | {r['fleet_cpu']:>9.0%} "
                f"| {r['broker_cpu']:>10.0%} | {r['fleet_cpu'] * 1000 / per_k:>20.2f} "
                f"| {r['rss_mib'] / per_k:>15.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
