"""Decode throughput of rack telemetry: column blocks versus one msgspec Struct per device.

Run from the repo root: `.venv/bin/python bench/codec.py [--repeats 7] [--min-time 0.5]`.

The figure is GPU samples/s decoded into numpy columns on one pinned core, where one GPU
sample is every field of one GPU in one message. Each message is one agent's batch for a
rack (an NVL72: 18 nodes x 4 GPUs, or an HGX rack: 4 nodes x 8 GPUs) and carries one NIC
per GPU too, as a real agent publishes; NICs are decoded but not counted as samples.

- columns: the wire format, `protocols.codec.TELEMETRY.decode` then `arrays(msg, "gpu")`
  and `arrays(msg, "nic")`, giving records of zero-copy column views. "GPU-only" is the
  same batch without its NICs.
- pack+enc: the agent's path, device state kept in wire-layout records, then
  `Layout.pack_record` and msgpack; "enc only" is the msgpack step alone.
- structs: the same values as `list[GpuSample]` and `list[NicSample]` (msgspec Structs,
  array_like, gc=False, one int or float per field) decoded through the same `Codec`
  (size limit, JSON sniffing), then turned into one numpy array per field with
  `zip(*map(astuple, rows))` and `np.array(column, dtype)`, the fastest of the conversions
  tried (np.array of tuples into a structured dtype, np.fromiter per field over attrgetter).

Both forms check node indices against `nodes`. Each case reports the median of `--repeats`
timed runs of at least `--min-time` seconds.
"""

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from protocols.codec import TELEMETRY, Codec, arrays, encode
from protocols.columns import GpuColumns, Layout, NicColumns, Record, layout
from protocols.errors import MessageError
from protocols.ids import EntityId
from protocols.limits import MAX_TELEMETRY_BYTES
from protocols.messages import NodeRefs, Seq, Telemetry

GOAL = 10e6
"""GPU samples/s decoded on one core."""

GPU = layout(GpuColumns)
NIC = layout(NicColumns)


def sample_struct(name: str, spec: Layout[Any]) -> type[msgspec.Struct]:
    """A Struct with one number per column of `spec` (float for float columns, else int)."""
    fields = [
        (n, float if d.kind == "f" else int) for n, d in zip(spec.names, spec.dtypes, strict=True)
    ]
    return msgspec.defstruct(name, fields, array_like=True, gc=False, frozen=True)


GpuSample = sample_struct("GpuSample", GPU)
NicSample = sample_struct("NicSample", NIC)
StructTelemetry = msgspec.defstruct(
    "StructTelemetry",
    [
        ("agent", EntityId),
        ("session", Seq),
        ("seq", Seq),
        ("time", float),
        ("nodes", NodeRefs),
        ("gpu", list[GpuSample]),  # type: ignore[valid-type]
        ("nic", list[NicSample]),  # type: ignore[valid-type]
    ],
    array_like=True,
    gc=False,
    frozen=True,
)
"""Telemetry with one Struct per device instead of column blocks."""

STRUCTS = Codec[Any]("telemetry", StructTelemetry, MAX_TELEMETRY_BYTES)

Arrays = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class Rack:
    """One agent's batch shape."""

    name: str
    nodes: int
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        """GPU samples per message."""
        return self.nodes * self.gpus_per_node


RACKS = (Rack("NVL72 18x4", 18, 4), Rack("HGX 4x8", 4, 8))


def values(spec: Layout[Any], rack: Rack, rng: np.random.Generator) -> Arrays:
    """Plausible arrays for every column of `spec`, one device per GPU."""
    rows, per_node = rack.gpus, rack.gpus_per_node
    out: Arrays = {}
    for name, column in spec.columns.items():
        if name == "node":
            out[name] = np.repeat(np.arange(rack.nodes), per_node)
        elif column.kind == "index":
            out[name] = np.tile(np.arange(per_node), rack.nodes)
        elif column.kind == "counter":
            out[name] = rng.integers(0, 2**40, rows)
        elif column.dtype == "<u1":
            out[name] = rng.integers(0, 2, rows)
        elif column.dtype.startswith("<f"):
            out[name] = rng.uniform(0, 1000, rows).astype(column.dtype)
        else:
            out[name] = rng.integers(0, 100, rows)
    return out


def struct_columns(rows: list[Any], spec: Layout[Any], nodes: int) -> Arrays:
    """One numpy array per field of `rows`, node indices checked as `Layout.unpack` does."""
    columns = list(zip(*map(msgspec.structs.astuple, rows), strict=True)) or [()] * len(spec.names)
    out = {n: np.array(c, d) for n, d, c in zip(spec.names, spec.dtypes, columns, strict=True)}
    if rows and int(out["node"].max()) >= nodes:
        raise MessageError("telemetry", "node refers past the message's nodes")
    return out


def decode_columns(payload: bytes) -> tuple[Record, Record]:
    """The wire path: decode, then view the GPU and NIC blocks as numpy records."""
    message = TELEMETRY.decode(payload)
    gpu, nic = arrays(message, "gpu"), arrays(message, "nic")
    assert gpu is not None
    assert nic is not None
    return gpu, nic


def decode_structs(payload: bytes) -> tuple[Arrays, Arrays]:
    """The struct path: decode, then build one numpy array per field."""
    message = STRUCTS.decode(payload)
    nodes = len(message.nodes)
    return struct_columns(message.gpu, GPU, nodes), struct_columns(message.nic, NIC, nodes)


def seconds_per_call(fn: Callable[[], object], repeats: int, min_time: float) -> list[float]:
    """Seconds per call of `fn` in each of `repeats` runs of at least `min_time` seconds."""
    calls = 1
    while True:  # warm up and size the runs
        start = time.perf_counter()
        for _ in repeat(None, calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        calls = max(calls * 2, int(calls * 1.2 * min_time / max(elapsed, 1e-9)))
    results = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in repeat(None, calls):
            fn()
        results.append((time.perf_counter() - start) / calls)
    return results


@dataclass(frozen=True)
class Row:
    """One measured case."""

    rack: Rack
    form: str
    payload: int
    seconds: list[float]

    @property
    def rate(self) -> float:
        """Median GPU samples/s."""
        return self.rack.gpus / statistics.median(self.seconds)

    def cells(self, ratio: str) -> str:
        """The row of the printed table."""
        low, high = (self.rack.gpus / s for s in (max(self.seconds), min(self.seconds)))
        return (
            f"| {self.rack.name:<10} | {self.form:<16} | {self.payload:>9,} "
            f"| {statistics.median(self.seconds) * 1e6:>7.2f} | {self.rate / 1e6:>11.2f} "
            f"| {low / 1e6:>6.2f}-{high / 1e6:<6.2f} | {ratio:>15} |"
        )


HEADER = (
    "| rack       | form             | payload B |  us/msg | M samples/s |  min-max M/s  "
    "| columns/structs |\n"
    "|------------|------------------|----------:|--------:|------------:|---------------"
    "|----------------:|"
)


def measure(rack: Rack, repeats: int, min_time: float) -> list[Row]:
    """Column and struct decode, and column encode with and without packing, of one batch."""
    rng = np.random.default_rng(0)
    gpu, nic = values(GPU, rack, rng), values(NIC, rack, rng)
    nodes = [f"r001-n{i + 1:02d}" for i in range(rack.nodes)]

    gpu_state, nic_state = GPU.record(rack.gpus), NIC.record(rack.gpus)
    for state, data in ((gpu_state, gpu), (nic_state, nic)):
        for name, array in data.items():
            state[name] = array

    def pack_encode() -> bytes:
        """The agent's path: device state kept in wire layout, packed and encoded."""
        gpu_block = GPU.pack_record(gpu_state)
        nic_block = NIC.pack_record(nic_state)
        return encode(Telemetry("r001", 3, 41, 1.7e9, nodes, gpu_block, nic_block))

    columns = pack_encode()
    gpu_only = encode(msgspec.structs.replace(TELEMETRY.decode(columns), nic=None))

    def rows(sample: type[msgspec.Struct], data: Arrays) -> list[Any]:
        return [sample(*row) for row in zip(*(a.tolist() for a in data.values()), strict=True)]

    structs = encode(
        StructTelemetry("r001", 3, 41, 1.7e9, nodes, rows(GpuSample, gpu), rows(NicSample, nic))
    )

    both: tuple[tuple[Any, Any], ...] = (decode_columns(columns), decode_structs(structs))
    for decoded in both:  # the same numbers either way
        for got, want in zip(decoded, (gpu, nic), strict=True):
            for name, array in want.items():
                np.testing.assert_array_equal(got[name], array, err_msg=name)

    message = TELEMETRY.decode(columns)

    cases: list[tuple[str, int, Callable[[], object]]] = [
        ("columns decode", len(columns), lambda: decode_columns(columns)),
        ("GPU-only decode", len(gpu_only), lambda: arrays(TELEMETRY.decode(gpu_only), "gpu")),
        ("structs decode", len(structs), lambda: decode_structs(structs)),
        ("columns pack+enc", len(columns), pack_encode),
        ("columns enc only", len(columns), lambda: encode(message)),
    ]
    return [Row(rack, f, n, seconds_per_call(fn, repeats, min_time)) for f, n, fn in cases]


def pin() -> str:
    """Pin this process to one CPU and say which."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main() -> None:
    """Measure every rack and print the table and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timed run")
    args = parser.parse_args()
    print(
        f"{pin()}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"msgspec {msgspec.__version__}; median of {args.repeats} runs >= {args.min_time} s"
    )
    print(HEADER)
    decoded: list[Row] = []
    for rack in RACKS:
        column, gpu_only, struct, *encoded = measure(rack, args.repeats, args.min_time)
        print(column.cells(f"{column.rate / struct.rate:.1f}x"))
        for row in (gpu_only, struct, *encoded):
            print(row.cells(""))
        decoded += [column, gpu_only]
    print(f"Goal >= {GOAL / 1e6:.0f} million GPU samples/s decoded on one core:")
    for row in decoded:
        verdict = "met" if row.rate >= GOAL else "NOT met"
        print(f"  {row.rack.name}, {row.form}: {row.rate / 1e6:.2f} M/s, {verdict}")


if __name__ == "__main__":
    main()
