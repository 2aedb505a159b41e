"""Device arrays on the wire: one little-endian array per field, declared with dtype and unit.

A column block travels as `rows` and one buffer holding each column's array in turn, in the
order the block class declares them (columns of a newer version follow the ones an older
decoder knows, so it reads its prefix). `Layout.unpack` checks a block and views it as one
0-d record array without copying: `record["DCGM_FI_DEV_GPU_UTIL"]` is that column.
Agents keep device state in such a record (`Layout.record`) and send it with `pack_record`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from protocols.errors import MessageError

Kind = Literal["index", "gauge", "counter"]
Record = np.ndarray[Any, np.dtype[np.void]]
"""A column block as numpy sees it: a 0-d structured array whose fields are the columns."""

MAX_ROWS = 65536
"""Devices in one block."""


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
    """A column block: `rows` devices, and `data` holding every declared column in turn.

    Subclasses declare their columns as class attributes whose values are `Column`s.
    """

    rows: Annotated[int, msgspec.Meta(ge=0, le=MAX_ROWS)]
    data: bytes


C = TypeVar("C", bound=Columns)


class Layout(Generic[C]):
    """The columns of one block type, and the record dtype of each block length."""

    def __init__(self, block: type[C]) -> None:
        self.block = block
        self.columns: dict[str, Column] = {
            name: value
            for cls in reversed(block.__mro__)
            for name, value in vars(cls).items()
            if isinstance(value, Column)
        }
        self.names = tuple(self.columns)
        self.dtypes = tuple(np.dtype(c.dtype) for c in self.columns.values())
        self.row_bytes = sum(d.itemsize for d in self.dtypes)
        self._record_dtypes: dict[int, np.dtype[np.void]] = {}

    def record_dtype(self, rows: int) -> np.dtype[np.void]:
        """The structured dtype of a block of `rows` devices: each column a (rows,) subarray."""
        record = self._record_dtypes.get(rows)
        if record is None:
            record = np.dtype(
                {"names": list(self.names), "formats": [(d, (rows,)) for d in self.dtypes]}
            )
            if len(self._record_dtypes) < 4096:
                self._record_dtypes[rows] = record
        return record

    def record(self, rows: int) -> Record:
        """A writable, zeroed record of `rows` devices in wire layout, for `pack_record`."""
        return np.zeros((), self.record_dtype(rows))

    def pack_record(self, record: Record | np.void) -> C:
        """The block of a record in wire layout (from `record`, or one element of an array of
        `record_dtype(rows)`, as a fleet keeps all its racks); one copy."""
        rows = record.dtype[0].shape[0] if record.dtype.names else 0
        if record.dtype != self.record_dtype(rows):
            raise ValueError(f"record is not in {self.block.__name__} wire layout")
        return self.block(rows, record.tobytes())

    def pack(self, arrays: Mapping[str, npt.ArrayLike]) -> C:
        """The block of one array (or scalar, broadcast) per column; every column required."""
        missing = set(self.names) - set(arrays)
        if missing:
            raise ValueError(f"{self.block.__name__} needs {sorted(missing)}")
        record = self.record(max(np.size(arrays[n]) for n in self.names))
        for name in self.names:
            record[name] = arrays[name]
        return self.pack_record(record)

    def unpack(self, block: Columns, kind: str, nodes: int) -> Record:
        """Check `block` (its length, node indices below `nodes`) and view it as a record,
        read-only and without a copy; columns this version does not know are left out."""
        rows, data = block.rows, block.data
        extra = len(data) - rows * self.row_bytes
        if extra < 0 or (extra and (not rows or extra % rows)):
            raise MessageError(
                kind,
                f"{self.block.__name__} of {rows} rows needs {rows * self.row_bytes} bytes "
                f"(or more, in whole rows), not {len(data)}",
            )
        view: Record = np.ndarray((), self.record_dtype(rows), data)
        if rows and int(np.maximum.reduce(view["node"])) >= nodes:
            raise MessageError(kind, f"{self.block.__name__}.node refers past the {nodes} node(s)")
        return view


_LAYOUTS: dict[type[Columns], Any] = {}


def layout(block: type[C]) -> Layout[C]:
    """The Layout of a column block type, built once."""
    found: Layout[C] | None = _LAYOUTS.get(block)
    if found is None:
        found = _LAYOUTS[block] = Layout(block)
    return found


_NODE = index("position of the device's node in the message's `nodes` list")

F4 = "<f4"


class GpuColumns(Columns):
    """GPU samples under dcgm-exporter's field names and units."""

    node = _NODE
    gpu = index("GPU index within its node (dcgm-exporter's `gpu` label)")
    DCGM_FI_DEV_GPU_UTIL = gauge(F4, "%", "GPU utilization")
    DCGM_FI_DEV_MEM_COPY_UTIL = gauge(F4, "%", "Memory utilization")
    DCGM_FI_DEV_SM_CLOCK = gauge(F4, "MHz", "SM clock frequency")
    DCGM_FI_DEV_MEM_CLOCK = gauge(F4, "MHz", "Memory clock frequency")
    DCGM_FI_DEV_FB_USED = gauge(F4, "MiB", "Framebuffer memory used")
    DCGM_FI_DEV_FB_FREE = gauge(F4, "MiB", "Framebuffer memory free")
    DCGM_FI_DEV_POWER_USAGE = gauge(F4, "W", "Power draw")
    DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION = counter("mJ", "Total energy consumption since boot")
    DCGM_FI_DEV_GPU_TEMP = gauge(F4, "C", "GPU temperature")
    DCGM_FI_DEV_MEMORY_TEMP = gauge(F4, "C", "Memory temperature")
    DCGM_FI_DEV_POWER_VIOLATION = counter("us", "Throttling duration due to power constraints")
    DCGM_FI_DEV_THERMAL_VIOLATION = counter("us", "Throttling duration due to thermal constraints")
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL = counter("errors", "Single-bit volatile ECC errors")
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL = counter("errors", "Double-bit volatile ECC errors")
    DCGM_FI_DEV_XID_ERRORS = gauge(
        "<u4", "xid", "Value of the last XID error encountered (0: none)"
    )
    xid_count = counter("errors", "XID errors since boot")
    DCGM_FI_DEV_PCIE_REPLAY_COUNTER = counter("retries", "PCIe retries")
    DCGM_FI_PROF_NVLINK_TX_BYTES = gauge(F4, "B/s", "NVLink transmit rate")
    DCGM_FI_PROF_NVLINK_RX_BYTES = gauge(F4, "B/s", "NVLink receive rate")
    DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL = counter(
        "errors", "NVLink flow-control CRC errors"
    )
    DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL = counter("errors", "NVLink data CRC errors")
    DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL = counter("retries", "NVLink retries")
    DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL = counter("errors", "NVLink recovery errors")
    DCGM_FI_PROF_GR_ENGINE_ACTIVE = gauge(
        F4, "ratio", "Ratio of time the graphics engine is active"
    )
    DCGM_FI_PROF_SM_ACTIVE = gauge(
        F4, "ratio", "Ratio of cycles an SM has at least one warp assigned"
    )
    DCGM_FI_PROF_PIPE_TENSOR_ACTIVE = gauge(
        F4, "ratio", "Ratio of cycles the tensor (HMMA) pipe is active"
    )
    DCGM_FI_PROF_DRAM_ACTIVE = gauge(
        F4, "ratio", "Ratio of cycles the device memory interface is active"
    )


class NicColumns(Columns):
    """ConnectX NIC samples under mlx5 (ethtool -S) counter names; RoCE traffic on priority 3."""

    node = _NODE
    port = index("NIC index within its node (mlx5_N)")
    rx_bytes = counter("B", "Bytes received")
    tx_bytes = counter("B", "Bytes transmitted")
    rx_prio3_pause = counter("frames", "PFC pause frames received on prio 3")
    tx_prio3_pause = counter("frames", "PFC pause frames sent on prio 3")
    rx_prio3_pause_duration = counter("us", "Time the port was paused by received prio 3 pauses")
    tx_prio3_pause_duration = counter("us", "Time the port asked its peer to pause on prio 3")
    np_ecn_marked_roce_packets = counter(
        "packets", "ECN-marked RoCE packets received (notification point)"
    )
    np_cnp_sent = counter("packets", "CNPs sent (notification point)")
    rp_cnp_handled = counter("packets", "CNPs handled (reaction point)")
    out_of_sequence = counter("packets", "Out-of-sequence packets received")
    rx_discards_phy = counter("packets", "Received packets discarded")
    link_down_events_phy = counter("events", "Link down events")
    link_state = gauge("<u1", "state", "1 when the link is up, 0 when down")
    temperature_c = gauge(F4, "C", "Adapter temperature")


class PortColumns(Columns):
    """Spectrum-X switch port samples; the switch is the `node`."""

    node = _NODE
    port = index("port index on the switch (swpN)")
    utilization = gauge(F4, "%", "Transmit utilization of the port")
    rx_bytes = counter("B", "Bytes received")
    tx_bytes = counter("B", "Bytes transmitted")
    ecn_marked_packets = counter("packets", "Packets ECN-marked at egress")
    rx_prio3_pause = counter("frames", "PFC pause frames received on prio 3")
    tx_prio3_pause = counter("frames", "PFC pause frames sent on prio 3")
    tx_drops = counter("packets", "Packets dropped at egress")
    buffer_occupancy = gauge(F4, "%", "Shared buffer used by the port's queues")
    link_state = gauge("<u1", "state", "1 when the link is up, 0 when down")
    link_down_events = counter("events", "Link flaps: transitions to down")


class LpuColumns(Columns):
    """Inference chip (Groq-style LPU) samples."""

    node = _NODE
    chip = index("chip index within its node")
    utilization = gauge(F4, "%", "Compute utilization")
    tokens_per_second = gauge(F4, "tokens/s", "Tokens produced")
    sram_used_mb = gauge(F4, "MB", "On-chip SRAM used")
    power_w = gauge(F4, "W", "Power draw")
    temperature_c = gauge(F4, "C", "Chip temperature")
    c2c_link_errors = counter("errors", "Chip-to-chip link errors")
    status = gauge("<u1", "state", "0 ok, 1 degraded, 2 failed")


class GpuLoad(Columns):
    """What the core asks of each GPU."""

    node = _NODE
    gpu = index("GPU index within its node")
    busy = gauge(F4, "ratio", "Fraction of time kernels run (0..1)")
    tensor = gauge(F4, "ratio", "Fraction of cycles the tensor pipe is busy")
    dram = gauge(F4, "ratio", "Fraction of memory bandwidth used")
    memory_mib = gauge(F4, "MiB", "Weights and KV cache resident")
    nvlink_bytes_per_s = gauge(F4, "B/s", "NVLink traffic each way")


class NicLoad(Columns):
    """What the core asks of each NIC."""

    node = _NODE
    port = index("NIC index within its node")
    tx_gbps = gauge(F4, "Gb/s", "Offered send rate")
    rx_gbps = gauge(F4, "Gb/s", "Offered receive rate")
    congestion = gauge(F4, "ratio", "Fraction of time the path is above its ECN threshold")


class PortLoad(Columns):
    """What the core asks of each switch port."""

    node = _NODE
    port = index("port index on the switch")
    busy = gauge(F4, "ratio", "Offered load relative to port speed")
    congestion = gauge(F4, "ratio", "Fraction of time the egress queue is above ECN threshold")


class LpuLoad(Columns):
    """What the core asks of each inference chip."""

    node = _NODE
    chip = index("chip index within its node")
    busy = gauge(F4, "ratio", "Fraction of time the chip computes")
    tokens_per_second = gauge(F4, "tokens/s", "Tokens to produce")
    sram_mb = gauge(F4, "MB", "Weights and state resident in SRAM")


class RackColumns(Columns):
    """Per-rack aggregates for dashboards; `node` is the rack's position in `racks`."""

    node = index("position of the rack in the message's `racks` list")
    devices = gauge("<u4", "devices", "GPUs, LPU chips and switches in the rack")
    healthy = gauge("<u4", "devices", "Devices healthy and schedulable")
    cordoned = gauge("<u4", "devices", "Devices on cordoned or draining nodes")
    lost = gauge("<u4", "devices", "Devices lost or failed")
    utilization = gauge(F4, "%", "Mean device utilization (a switch's: its ports' mean)")
    temperature_c = gauge(F4, "C", "Hottest GPU or LPU chip (NaN if none: switches report none)")
    power_kw = gauge(F4, "kW", "Power of the GPUs and LPU chips (NaN if none)")
    health = gauge("<u1", "state", "0 ok, 1 warning, 2 critical")
