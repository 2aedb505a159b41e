"""Health policy: what telemetry says about a device, and what the control plane does about it.

XID severity follows NVIDIA's guidance: 13, 31, 43, 45 and 68 are application errors (the
node stays healthy); 48, 79, 94, 95, 119 and 120 are critical, as are 63/64 seen again and
again; critical findings cordon and drain the node. A GPU that stops reporting while its agent
is alive has fallen off the bus (XID 79 takes its row out of the telemetry).
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numba import njit

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
        findings = []
        gone = (~table["present"] & alive_nodes[table["node"]]).view(np.uint8)
        for row in np.flatnonzero(self._grew("gone", gone)).tolist():
            node, subject = self._gpu_name(row)
            findings.append(
                Finding(
                    node,
                    subject,
                    "xid",
                    "critical",
                    f"{subject} stopped reporting: it fell off the bus",
                    True,
                )
            )
        new_xids = self._grew("xid", table["counters"][devices.counters.index("xid_count")])
        last_xid = devices.gauge("DCGM_FI_DEV_XID_ERRORS")
        for row in np.flatnonzero(new_xids).tolist():
            findings.append(self._xid(row, int(last_xid[row])))
        violation = table["counters"][devices.counters.index("DCGM_FI_DEV_THERMAL_VIOLATION")]
        throttling = self._grew("thermal", violation).view(np.uint8)
        for row in np.flatnonzero(self._grew("throttling", throttling)).tolist():
            node, subject = self._gpu_name(row)
            temp = devices.gauge("DCGM_FI_DEV_GPU_TEMP")[row]
            findings.append(
                Finding(
                    node,
                    subject,
                    "thermal",
                    "warning",
                    f"{subject} is thermally throttling at {temp:.0f} C",
                )
            )
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
