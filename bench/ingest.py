"""The core's telemetry ingest alone: decoding a fleet's gateway batches and storing them in
the device tables, per interval, with no broker and no event loop.

Run from the repo root: `.venv/bin/python bench/ingest.py [--gpus 100000,1000000]`.

For each size: a fleet of NVL72 racks (no switch agents) is built as `aidc agents` builds it,
with one gateway; the core's FleetState takes every rack's birth; then one interval's
telemetry batches (the bytes the gateway would publish) are decoded and stored, as the core's
message handler does. It prints the median over `--repeats` intervals of the time to decode
and to store one interval, and what that is as a share of one core at a 1 s interval.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalog import RACK_KINDS  # noqa: E402
from agents.connections import Gateway  # noqa: E402
from agents.fleet import Fleet  # noqa: E402
from agents.topology import Fabric, build_site  # noqa: E402
from protocols import codec  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from sim.fleet_state import FleetState  # noqa: E402

NVL72 = RACK_KINDS["nvl72"]
GPUS_PER_RACK = NVL72.nodes_per_rack * NVL72.gpus_per_node


def measure(gpus: int, repeats: int) -> dict[str, float]:
    """Decode and store `repeats` intervals of a `gpus`-GPU gateway's telemetry."""
    racks = max(1, gpus // GPUS_PER_RACK)
    site = build_site("bench", [(NVL72, racks)], Fabric(0, 0))
    fleet = Fleet(site, Endpoint("127.0.0.1", 1), connection="gateway")
    (gateway,) = fleet.connections
    assert isinstance(gateway, Gateway)
    state = FleetState()
    for agent in fleet.agents:
        state.on_birth(codec.BIRTH.decode(codec.encode(agent.birth(0, gateway.id))), 0.0)
    decode_s, store_s = [], []
    for _ in range(repeats):
        fleet.groups[0].step(1.0, fleet.rng)
        payloads = [codec.encode(t) for b in gateway.batches if (t := gateway.telemetry(b))]
        decoding = storing = 0.0
        for payload in payloads:  # one at a time, as they arrive
            started = time.perf_counter()
            message = codec.TELEMETRY.decode(payload)
            decoded = time.perf_counter()
            if problem := state.on_telemetry(message, 1.0):
                raise RuntimeError(problem)
            decoding += decoded - started
            storing += time.perf_counter() - decoded
        decode_s.append(decoding)
        store_s.append(storing)
    return {
        "gpus": racks * GPUS_PER_RACK,
        "messages": len(payloads),
        "mb": sum(map(len, payloads)) / 1e6,
        "decode_ms": statistics.median(decode_s) * 1e3,
        "store_ms": statistics.median(store_s) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gpus", default="100000,1000000", help="comma-separated GPU counts")
    parser.add_argument("--repeats", type=int, default=7, help="intervals to time")
    args = parser.parse_args()
    print("|      GPUs | messages | MB/interval | decode ms | store ms | core share at 1 s |")
    print("|----------:|---------:|------------:|----------:|---------:|------------------:|")
    for gpus in (int(g) for g in args.gpus.split(",")):
        f = measure(gpus, args.repeats)
        share = (f["decode_ms"] + f["store_ms"]) / 1e3
        print(
            f"| {f['gpus']:>9,.0f} | {f['messages']:>8,.0f} | {f['mb']:>11.1f} | "
            f"{f['decode_ms']:>9.1f} | {f['store_ms']:>8.1f} | {share:>17.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
