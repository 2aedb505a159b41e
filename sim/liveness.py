"""Which nodes telemetry shows lost (their agent is gone or has gone quiet) or failed (one of
their GPUs stopped reporting), in two passes: one over the nodes, one over the GPUs."""

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import prange

from sim.chunks import parallel_kernel
from sim.tables import Table

STALE_INTERVALS = 3.0
"""A node is lost once its agent has been silent this many reporting intervals."""


@parallel_kernel
def _mark(
    states: np.ndarray,
    alive: np.ndarray,
    seen: np.ndarray,
    interval: np.ndarray,
    silent_after: float,
    now: float,
    gpu_node: np.ndarray,
    gpu_present: np.ndarray,
    lost: int,
    failed: int,
) -> int:
    for n in prange(states.size):
        if not alive[n] or now - seen[n] > silent_after * interval[n]:
            states[n] = lost
    strays = 0
    for g in prange(gpu_node.size):
        if gpu_present[g]:
            continue
        node = gpu_node[g]
        if not 0 <= node < states.size:
            strays += 1
        elif states[node] != lost:
            states[node] = failed  # threads may write it at once, always the same value
    return strays


def mark_lost_and_failed(
    states: npt.NDArray[np.uint8],
    nodes: Table,
    gpus: Table,
    now: float,
    speed: float,
    lost: int,
    failed: int,
) -> None:
    """Set `states[node]` (by node row) to `lost` where the node's agent is not alive or has
    not been seen for STALE_INTERVALS of its interval (in simulated seconds, `speed` times
    real ones), else to `failed` where one of its GPUs is not present."""
    arrays = (nodes["alive"], nodes["seen"], nodes["interval"])
    if any(a.shape != states.shape for a in arrays):
        raise ValueError("every node array must have the shape of states")
    if gpus["node"].shape != gpus["present"].shape:
        raise ValueError("the GPUs' node and present arrays must have one shape")
    silent_after = STALE_INTERVALS * speed
    kernel_args: list[Any] = [states, *arrays, silent_after, now]
    kernel_args += [gpus["node"], gpus["present"], lost, failed]
    if _mark(*kernel_args):
        raise ValueError("a GPU names a node beyond the node table")
