"""Health policy: what telemetry says about a device, and what the control plane does about it.

XID severity follows NVIDIA's guidance: 13, 31, 43, 45 and 68 are application errors (the
node stays healthy); 48, 79, 94, 95, 119 and 120 are critical, as are 63/64 seen again and
again; critical findings cordon and drain the node. A GPU that stops reporting while its agent
is alive has fallen off the bus (XID 79 takes its row out of the telemetry), or, when its last
samples showed it thermally throttling, shut down from heat.
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from sim.chunks import CHUNKS, chunk, parallel_kernel
from sim.fleet_state import FleetState

APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68})
CRITICAL_XIDS = frozenset({48, 79, 94, 95, 119, 120})
REMAPPING_XIDS = frozenset({63, 64})
REMAPPING_LIMIT = 3
"""Row-remapping XIDs on one GPU before they count as critical."""

Severity = Literal["info", "warning", "error", "critical"]


@dataclass(frozen=True)
class Finding:
    """Something telemetry showed: where, how bad, a sentence, and whether to drain the node."""

    node: str
    subject: str
    kind: str
    severity: Severity
    message: str
    drain: bool = False


@njit(cache=True)
def _grew(values: np.ndarray, last: np.ndarray, out: np.ndarray) -> None:
    for i in range(values.shape[0]):
        out[i] = values[i] > last[i]
        last[i] = values[i]


GONE, NEW_XID, THROTTLING, SHUT_DOWN = 1, 2, 4, 8
"""What `scan_gpus` found on a GPU, as bits."""
_STRAY = "a GPU names a node beyond alive_nodes"


@parallel_kernel
def _scan_gpus(
    present: np.ndarray,
    node: np.ndarray,
    alive_nodes: np.ndarray,
    xid_count: np.ndarray,
    thermal: np.ndarray,
    samples: np.ndarray,
    was_gone: np.ndarray,
    last_xid: np.ndarray,
    last_thermal: np.ndarray,
    was_throttling: np.ndarray,
    last_samples: np.ndarray,
    rows: np.ndarray,
    found: np.ndarray,
) -> int:
    n = present.size
    hits = np.zeros(CHUNKS, np.int64)
    strays = 0
    for c in prange(CHUNKS):
        lo, hi = chunk(n, c)
        k = lo  # a chunk lists what it finds from its own first row on
        for i in range(lo, hi):
            gone = False
            if not present[i]:  # rare: the gathers and checks are left to the rare case
                if not 0 <= node[i] < alive_nodes.size:
                    strays += 1
                    continue
                gone = alive_nodes[node[i]]
            x, t, s = xid_count[i], thermal[i], samples[i]
            # with no new sample, a GPU is as it was last seen
            throttling = t > last_thermal[i] if s != last_samples[i] else was_throttling[i]
            left = gone and not was_gone[i]
            bits = (
                left * (SHUT_DOWN if was_throttling[i] else GONE)
                + (x > last_xid[i]) * NEW_XID
                + (throttling and not was_throttling[i]) * THROTTLING
            )
            was_gone[i], was_throttling[i] = gone, throttling
            last_xid[i], last_thermal[i], last_samples[i] = x, t, s
            if bits:
                rows[k], found[k] = i, bits
                k += 1
        hits[c] = k - lo
    if strays:
        return -1
    # The chunks' lists, one after the other: every row in GPU order.
    k = 0
    for c in range(CHUNKS):
        lo = chunk(n, c)[0]
        for j in range(lo, lo + hits[c]):
            rows[k], found[k] = rows[j], found[j]
            k += 1
    return k


class GpuBaseline:
    """What `scan_gpus` saw last time, per GPU."""

    def __init__(self) -> None:
        self.was_gone = np.zeros(0, np.bool_)
        self.last_xid = np.zeros(0, np.uint64)
        self.last_thermal = np.zeros(0, np.uint64)
        self.was_throttling = np.zeros(0, np.bool_)
        self.last_samples = np.zeros(0, np.uint8)

    def arrays(self) -> list[npt.NDArray[Any]]:
        """The five arrays, in the kernel's order."""
        return [
            self.was_gone,
            self.last_xid,
            self.last_thermal,
            self.was_throttling,
            self.last_samples,
        ]


def scan_gpus(
    present: npt.NDArray[np.bool_],
    node: npt.NDArray[np.integer[Any]],
    alive_nodes: npt.NDArray[np.bool_],
    xid_count: npt.NDArray[np.uint64],
    thermal: npt.NDArray[np.uint64],
    samples: npt.NDArray[np.uint8],
    baseline: GpuBaseline,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint8]]:
    """In one pass over the GPUs, those that changed since `baseline` (which is updated):
    their rows and what happened, as GONE (stopped reporting while its agent is alive),
    SHUT_DOWN (the same, after samples that showed it throttling), NEW_XID (the XID count rose)
    and THROTTLING (the thermal-violation counter started rising) bits. A GPU whose `samples`
    count is unchanged has sent nothing new and keeps its state. GPUs new since the last scan
    start from what they show now. A missing GPU that names a node beyond `alive_nodes` is a
    bug: it raises ValueError (after the others are scanned)."""
    n = present.shape[0]
    if any(a.shape != (n,) for a in (node, xid_count, thermal, samples)):
        raise ValueError(f"every GPU array must have shape ({n},)")
    known = baseline.was_gone.shape[0]
    if known != n:
        keep = slice(0, min(known, n))
        fresh = slice(min(known, n), n)
        if n > known and not ((node[fresh] >= 0) & (node[fresh] < alive_nodes.size)).all():
            raise ValueError(_STRAY)
        baseline.was_gone = np.concatenate(
            [baseline.was_gone[keep], ~present[fresh] & alive_nodes[node[fresh]]]
        )
        baseline.last_xid = np.concatenate([baseline.last_xid[keep], xid_count[fresh]])
        baseline.last_thermal = np.concatenate([baseline.last_thermal[keep], thermal[fresh]])
        baseline.was_throttling = np.concatenate(
            [baseline.was_throttling[keep], np.zeros(n - keep.stop, np.bool_)]
        )
        baseline.last_samples = np.concatenate([baseline.last_samples[keep], samples[fresh]])
    rows = np.empty(n, np.intp)
    found = np.empty(n, np.uint8)
    kernel_args = [present, node, alive_nodes, xid_count, thermal, samples]
    kernel_args += [*baseline.arrays(), rows, found]
    count = _scan_gpus(*kernel_args)
    if count < 0:
        raise ValueError(_STRAY)
    return rows[:count], found[:count]


def grew(values: npt.NDArray[np.generic], last: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """Where `values` exceed `last`; `last` becomes `values` (one pass, for a million devices)."""
    if values.shape != last.shape or values.dtype != last.dtype or values.ndim != 1:
        raise ValueError("values and last must be 1-D arrays of one shape and dtype")
    out = np.empty(values.shape[0], np.bool_)
    kernel_args: list[npt.NDArray[Any]] = [values, last, out]
    _grew(*kernel_args)
    return out


class HealthPolicy:
    """Compares each tick's telemetry with the last and turns changes into findings."""

    def __init__(self, fleet: FleetState) -> None:
        self.fleet = fleet
        self._last: dict[str, npt.NDArray[np.generic]] = {}
        self._remaps: dict[int, int] = {}
        self._gpu_baseline = GpuBaseline()

    def _grew(self, key: str, values: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
        """Which devices' value rose since the last check (new devices start from now)."""
        last = self._last.get(key)
        if last is None or last.shape[0] > values.shape[0]:
            last = values.copy()
        elif last.shape[0] < values.shape[0]:
            last = np.concatenate([last, values[last.shape[0] :]])
        self._last[key] = last
        return grew(values, last)

    def check(self, alive_nodes: npt.NDArray[np.bool_]) -> list[Finding]:
        """Findings since the last check; `alive_nodes` marks nodes whose agent reports."""
        findings = self._gpus(alive_nodes)
        findings += self._nics()
        return findings

    def _gpu_name(self, row: int) -> tuple[str, str]:
        table = self.fleet.devices["gpu"].table
        node = self.fleet.nodes.ids[int(table["node"][row])]
        return node, f"gpu/{node}/{int(table['slot'][row])}"

    def _gpus(self, alive_nodes: npt.NDArray[np.bool_]) -> list[Finding]:
        devices = self.fleet.devices["gpu"]
        table = devices.table
        counters = table["counters"]
        rows, found = scan_gpus(
            table["present"],
            table["node"],
            alive_nodes,
            counters[devices.counters.index("xid_count")],
            counters[devices.counters.index("DCGM_FI_DEV_THERMAL_VIOLATION")],
            table["samples"],
            self._gpu_baseline,
        )
        findings = []
        for row, bits in zip(rows.tolist(), found.tolist(), strict=True):
            node, subject = self._gpu_name(row)
            temp = devices.gauge("DCGM_FI_DEV_GPU_TEMP")[row]  # the last one it reported
            if bits & GONE:
                message = f"{subject} stopped reporting: it fell off the bus"
                findings.append(Finding(node, subject, "xid", "critical", message, True))
            if bits & SHUT_DOWN:
                message = (
                    f"{subject} stopped reporting while throttling at {temp:.0f} C: "
                    "a thermal shutdown"
                )
                findings.append(
                    Finding(node, subject, "thermal-shutdown", "critical", message, True)
                )
            if bits & NEW_XID:
                findings.append(self._xid(row, int(devices.gauge("DCGM_FI_DEV_XID_ERRORS")[row])))
            if bits & THROTTLING:
                message = f"{subject} is thermally throttling at {temp:.0f} C"
                findings.append(Finding(node, subject, "thermal", "warning", message))
        return findings

    def _xid(self, row: int, code: int) -> Finding:
        node, subject = self._gpu_name(row)
        if code in CRITICAL_XIDS:
            return Finding(
                node, subject, "xid", "critical", f"XID {code} on {subject}: draining {node}", True
            )
        if code in REMAPPING_XIDS:
            count = self._remaps[row] = self._remaps.get(row, 0) + 1
            if count >= REMAPPING_LIMIT:
                return Finding(
                    node,
                    subject,
                    "xid",
                    "critical",
                    f"XID {code} on {subject} for the {count}th time: draining {node}",
                    True,
                )
            return Finding(
                node, subject, "xid", "warning", f"XID {code} on {subject}: row remapped"
            )
        if code in APPLICATION_XIDS:
            return Finding(
                node, subject, "xid", "info", f"XID {code} on {subject}: application error"
            )
        return Finding(node, subject, "xid", "warning", f"XID {code} on {subject}")

    def _nics(self) -> list[Finding]:
        devices = self.fleet.devices["nic"]
        table = devices.table
        flaps = self._grew(
            "flaps", table["counters"][devices.counters.index("link_down_events_phy")]
        )
        findings = []
        for row in np.flatnonzero(flaps).tolist():
            node = self.fleet.nodes.ids[int(table["node"][row])]
            subject = f"nic/{node}/{int(table['slot'][row])}"
            findings.append(
                Finding(node, subject, "link-flap", "warning", f"{subject} link went down")
            )
        return findings
