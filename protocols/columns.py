"""Device arrays on the wire: one little-endian array per field, declared with its dtype and unit.

A column block is a msgspec Struct whose every field is `bytes` annotated with a `Column`.
`pack` turns numpy arrays into a block; `unpack` checks a decoded block and returns one
numpy record whose fields are zero-copy views (`record["DCGM_FI_DEV_GPU_UTIL"]`).
"""

import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from protocols.errors import MessageError

Kind = Literal["index", "gauge", "counter"]


@dataclass(frozen=True, slots=True)
class Column:
    """What one column holds: numpy dtype, unit, whether it is a gauge or counter, and help."""

    dtype: str
    unit: str
    kind: Kind
    help: str


def index(help: str) -> Column:
    """A row index (node position in the message, device index within its node)."""
    return Column("<u2", "", "index", help)


def gauge(dtype: str, unit: str, help: str) -> Column:
    """A value that goes up and down."""
    return Column(dtype, unit, "gauge", help)


def counter(unit: str, help: str) -> Column:
    """A monotonic total since boot; it never decreases while the device is up."""
    return Column("<u8", unit, "counter", help)


class Columns(msgspec.Struct, array_like=True, gc=False):
    """Base of every column block: all fields are `bytes` with a `Column` annotation."""


class Layout:
    """The checked shape of one column block type: names, dtypes and a record dtype per length."""

    def __init__(self, block: type[Columns]) -> None:
        hints = typing.get_type_hints(block, include_extras=True)
        self.block = block
        self.names: tuple[str, ...] = block.__struct_fields__
        self.columns: dict[str, Column] = {n: hints[n].__metadata__[0] for n in self.names}
        self.dtypes = tuple(np.dtype(c.dtype) for c in self.columns.values())
        self.itemsizes = tuple(d.itemsize for d in self.dtypes)
        self._record_dtypes: dict[int, tuple[np.dtype[np.void], tuple[int, ...]]] = {}

    def _record(self, rows: int) -> tuple[np.dtype[np.void], tuple[int, ...]]:
        cached = self._record_dtypes.get(rows)
        if cached is None:
            record = np.dtype(
                {"names": list(self.names), "formats": [(d, (rows,)) for d in self.dtypes]}
            )
            cached = (record, tuple(size * rows for size in self.itemsizes))
            if len(self._record_dtypes) < 4096:
                self._record_dtypes[rows] = cached
        return cached

    def rows(self, block: Columns) -> int:
        """How many devices the block holds (not checked; `unpack` checks)."""
        first: bytes = getattr(block, self.names[0])
        return len(first) // self.itemsizes[0]

    def pack(self, arrays: Mapping[str, npt.ArrayLike]) -> Columns:
        """Build a block from one array (or scalar, broadcast) per field; all fields required."""
        missing = set(self.names) - set(arrays)
        if missing:
            raise ValueError(f"{self.block.__name__} needs {sorted(missing)}")
        rows = max(np.size(arrays[n]) for n in self.names)
        values = [
            np.ascontiguousarray(np.broadcast_to(np.asarray(arrays[n]), (rows,)), dtype=d).tobytes()
            for n, d in zip(self.names, self.dtypes, strict=True)
        ]
        return self.block(*values)

    def unpack(self, block: Columns, kind: str, nodes: int) -> np.void:
        """Check `block` (equal lengths, node indices below `nodes`) and view it as one record."""
        values: tuple[bytes, ...] = msgspec.structs.astuple(block)
        rows = len(values[0]) // self.itemsizes[0]
        record, sizes = self._record(rows)
        if tuple(map(len, values)) != sizes:
            raise MessageError(kind, self._length_error(values, rows))
        view: np.void = np.frombuffer(b"".join(values), dtype=record, count=1)[0]
        if rows and int(view["node"].max()) >= nodes:
            raise MessageError(kind, f"{self.block.__name__}.node refers past the {nodes} node(s)")
        return view

    def _length_error(self, values: tuple[bytes, ...], rows: int) -> str:
        for name, value, size, dtype in zip(
            self.names, values, self.itemsizes, self.dtypes, strict=True
        ):
            if len(value) != rows * size:
                return (
                    f"{self.block.__name__}.{name} has {len(value)} bytes, "
                    f"expected {rows * size} ({rows} x {dtype.str})"
                )
        return f"{self.block.__name__} is inconsistent"


@functools.cache
def layout(block: type[Columns]) -> Layout:
    """The Layout of a column block type, built once."""
    return Layout(block)


_NODE = index("position of the device's node in the message's `nodes` list")

F4 = "<f4"


class GpuColumns(Columns):
    """GPU samples under dcgm-exporter's field names and units."""

    node: Annotated[bytes, _NODE]
    gpu: Annotated[bytes, index("GPU index within its node (dcgm-exporter's `gpu` label)")]
    DCGM_FI_DEV_GPU_UTIL: Annotated[bytes, gauge(F4, "%", "GPU utilization")]
    DCGM_FI_DEV_MEM_COPY_UTIL: Annotated[bytes, gauge(F4, "%", "Memory utilization")]
    DCGM_FI_DEV_SM_CLOCK: Annotated[bytes, gauge(F4, "MHz", "SM clock frequency")]
    DCGM_FI_DEV_MEM_CLOCK: Annotated[bytes, gauge(F4, "MHz", "Memory clock frequency")]
    DCGM_FI_DEV_FB_USED: Annotated[bytes, gauge(F4, "MiB", "Framebuffer memory used")]
    DCGM_FI_DEV_FB_FREE: Annotated[bytes, gauge(F4, "MiB", "Framebuffer memory free")]
    DCGM_FI_DEV_POWER_USAGE: Annotated[bytes, gauge(F4, "W", "Power draw")]
    DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: Annotated[
        bytes, counter("mJ", "Total energy consumption since boot")
    ]
    DCGM_FI_DEV_GPU_TEMP: Annotated[bytes, gauge(F4, "C", "GPU temperature")]
    DCGM_FI_DEV_MEMORY_TEMP: Annotated[bytes, gauge(F4, "C", "Memory temperature")]
    DCGM_FI_DEV_POWER_VIOLATION: Annotated[
        bytes, counter("us", "Throttling duration due to power constraints")
    ]
    DCGM_FI_DEV_THERMAL_VIOLATION: Annotated[
        bytes, counter("us", "Throttling duration due to thermal constraints")
    ]
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL: Annotated[
        bytes, counter("errors", "Single-bit volatile ECC errors")
    ]
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL: Annotated[
        bytes, counter("errors", "Double-bit volatile ECC errors")
    ]
    DCGM_FI_DEV_XID_ERRORS: Annotated[
        bytes, gauge("<u4", "xid", "Value of the last XID error encountered (0: none)")
    ]
    xid_count: Annotated[bytes, counter("errors", "XID errors since boot")]
    DCGM_FI_DEV_PCIE_REPLAY_COUNTER: Annotated[bytes, counter("retries", "PCIe retries")]
    DCGM_FI_PROF_NVLINK_TX_BYTES: Annotated[bytes, gauge(F4, "B/s", "NVLink transmit rate")]
    DCGM_FI_PROF_NVLINK_RX_BYTES: Annotated[bytes, gauge(F4, "B/s", "NVLink receive rate")]
    DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: Annotated[
        bytes, counter("errors", "NVLink flow-control CRC errors")
    ]
    DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: Annotated[
        bytes, counter("errors", "NVLink data CRC errors")
    ]
    DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: Annotated[
        bytes, counter("retries", "NVLink retries")
    ]
    DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: Annotated[
        bytes, counter("errors", "NVLink recovery errors")
    ]
    DCGM_FI_PROF_GR_ENGINE_ACTIVE: Annotated[
        bytes, gauge(F4, "ratio", "Ratio of time the graphics engine is active")
    ]
    DCGM_FI_PROF_SM_ACTIVE: Annotated[
        bytes, gauge(F4, "ratio", "Ratio of cycles an SM has at least one warp assigned")
    ]
    DCGM_FI_PROF_PIPE_TENSOR_ACTIVE: Annotated[
        bytes, gauge(F4, "ratio", "Ratio of cycles the tensor (HMMA) pipe is active")
    ]
    DCGM_FI_PROF_DRAM_ACTIVE: Annotated[
        bytes, gauge(F4, "ratio", "Ratio of cycles the device memory interface is active")
    ]


class NicColumns(Columns):
    """ConnectX NIC samples under mlx5 (ethtool -S) counter names; RoCE traffic on priority 3."""

    node: Annotated[bytes, _NODE]
    port: Annotated[bytes, index("NIC index within its node (mlx5_N)")]
    rx_bytes: Annotated[bytes, counter("B", "Bytes received")]
    tx_bytes: Annotated[bytes, counter("B", "Bytes transmitted")]
    rx_prio3_pause: Annotated[bytes, counter("frames", "PFC pause frames received on prio 3")]
    tx_prio3_pause: Annotated[bytes, counter("frames", "PFC pause frames sent on prio 3")]
    rx_prio3_pause_duration: Annotated[
        bytes, counter("us", "Time the port was paused by received prio 3 pauses")
    ]
    tx_prio3_pause_duration: Annotated[
        bytes, counter("us", "Time the port asked its peer to pause on prio 3")
    ]
    np_ecn_marked_roce_packets: Annotated[
        bytes, counter("packets", "ECN-marked RoCE packets received (notification point)")
    ]
    np_cnp_sent: Annotated[bytes, counter("packets", "CNPs sent (notification point)")]
    rp_cnp_handled: Annotated[bytes, counter("packets", "CNPs handled (reaction point)")]
    out_of_sequence: Annotated[bytes, counter("packets", "Out-of-sequence packets received")]
    rx_discards_phy: Annotated[bytes, counter("packets", "Received packets discarded")]
    link_down_events_phy: Annotated[bytes, counter("events", "Link down events")]
    link_state: Annotated[bytes, gauge("<u1", "", "1 when the link is up, 0 when down")]
    temperature_c: Annotated[bytes, gauge(F4, "C", "Adapter temperature")]


class PortColumns(Columns):
    """Spectrum-X switch port samples; the switch is the `node`."""

    node: Annotated[bytes, _NODE]
    port: Annotated[bytes, index("port index on the switch (swpN)")]
    utilization: Annotated[bytes, gauge(F4, "%", "Transmit utilization of the port")]
    rx_bytes: Annotated[bytes, counter("B", "Bytes received")]
    tx_bytes: Annotated[bytes, counter("B", "Bytes transmitted")]
    ecn_marked_packets: Annotated[bytes, counter("packets", "Packets ECN-marked at egress")]
    rx_prio3_pause: Annotated[bytes, counter("frames", "PFC pause frames received on prio 3")]
    tx_prio3_pause: Annotated[bytes, counter("frames", "PFC pause frames sent on prio 3")]
    tx_drops: Annotated[bytes, counter("packets", "Packets dropped at egress")]
    buffer_occupancy: Annotated[bytes, gauge(F4, "%", "Shared buffer used by the port's queues")]
    link_state: Annotated[bytes, gauge("<u1", "", "1 when the link is up, 0 when down")]
    link_down_events: Annotated[bytes, counter("events", "Link flaps: transitions to down")]


class LpuColumns(Columns):
    """Inference chip (Groq-style LPU) samples."""

    node: Annotated[bytes, _NODE]
    chip: Annotated[bytes, index("chip index within its node")]
    utilization: Annotated[bytes, gauge(F4, "%", "Compute utilization")]
    tokens_per_second: Annotated[bytes, gauge(F4, "tokens/s", "Tokens produced")]
    sram_used_mb: Annotated[bytes, gauge(F4, "MB", "On-chip SRAM used")]
    power_w: Annotated[bytes, gauge(F4, "W", "Power draw")]
    temperature_c: Annotated[bytes, gauge(F4, "C", "Chip temperature")]
    c2c_link_errors: Annotated[bytes, counter("errors", "Chip-to-chip link errors")]
    status: Annotated[bytes, gauge("<u1", "", "0 ok, 1 degraded, 2 failed")]


class GpuLoad(Columns):
    """What the core asks of each GPU."""

    node: Annotated[bytes, _NODE]
    gpu: Annotated[bytes, index("GPU index within its node")]
    busy: Annotated[bytes, gauge(F4, "ratio", "Fraction of time kernels run (0..1)")]
    tensor: Annotated[bytes, gauge(F4, "ratio", "Fraction of cycles the tensor pipe is busy")]
    dram: Annotated[bytes, gauge(F4, "ratio", "Fraction of memory bandwidth used")]
    memory_mib: Annotated[bytes, gauge(F4, "MiB", "Weights and KV cache resident")]
    nvlink_bytes_per_s: Annotated[bytes, gauge(F4, "B/s", "NVLink traffic each way")]


class NicLoad(Columns):
    """What the core asks of each NIC."""

    node: Annotated[bytes, _NODE]
    port: Annotated[bytes, index("NIC index within its node")]
    tx_gbps: Annotated[bytes, gauge(F4, "Gb/s", "Offered send rate")]
    rx_gbps: Annotated[bytes, gauge(F4, "Gb/s", "Offered receive rate")]
    congestion: Annotated[
        bytes, gauge(F4, "ratio", "Fraction of time the path is above its ECN threshold")
    ]


class PortLoad(Columns):
    """What the core asks of each switch port."""

    node: Annotated[bytes, _NODE]
    port: Annotated[bytes, index("port index on the switch")]
    busy: Annotated[bytes, gauge(F4, "ratio", "Offered load relative to port speed")]
    congestion: Annotated[
        bytes, gauge(F4, "ratio", "Fraction of time the egress queue is above ECN threshold")
    ]


class LpuLoad(Columns):
    """What the core asks of each inference chip."""

    node: Annotated[bytes, _NODE]
    chip: Annotated[bytes, index("chip index within its node")]
    busy: Annotated[bytes, gauge(F4, "ratio", "Fraction of time the chip computes")]
    tokens_per_second: Annotated[bytes, gauge(F4, "tokens/s", "Tokens to produce")]
    sram_mb: Annotated[bytes, gauge(F4, "MB", "Weights and state resident in SRAM")]


class RackColumns(Columns):
    """Per-rack aggregates for dashboards; `node` is the rack's position in `racks`."""

    node: Annotated[bytes, index("position of the rack in the message's `racks` list")]
    devices: Annotated[bytes, gauge("<u4", "", "GPUs or LPU chips in the rack")]
    healthy: Annotated[bytes, gauge("<u4", "", "Devices healthy and schedulable")]
    cordoned: Annotated[bytes, gauge("<u4", "", "Devices on cordoned or draining nodes")]
    lost: Annotated[bytes, gauge("<u4", "", "Devices lost or failed")]
    utilization: Annotated[bytes, gauge(F4, "%", "Mean device utilization")]
    temperature_c: Annotated[bytes, gauge(F4, "C", "Hottest device temperature")]
    power_kw: Annotated[bytes, gauge(F4, "kW", "Rack power draw")]
    health: Annotated[bytes, gauge("<u1", "", "0 ok, 1 warning, 2 critical")]
