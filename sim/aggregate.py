"""Per-rack aggregates of device telemetry for dashboards (one pass over each kind of device)
and per-pool totals of the replicas."""

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from sim.chunks import CHUNKS, add_chunks, chunk, parallel_kernel

F64 = npt.NDArray[np.float64]


@njit(cache=True)
def _rack_totals(
    rack: np.ndarray,
    healthy: np.ndarray,
    cordoned: np.ndarray,
    lost: np.ndarray,
    utilization: np.ndarray,
    temperature: np.ndarray,
    power: np.ndarray,
    out: np.ndarray,
) -> None:
    for i in range(rack.shape[0]):
        r = rack[i]
        out[r, 0] += 1.0
        out[r, 1] += healthy[i]
        out[r, 2] += cordoned[i]
        out[r, 3] += lost[i]
        if lost[i]:  # what it last said is not a reading
            continue
        if not np.isnan(utilization[i]):  # NaN: no reading
            out[r, 4] += utilization[i]
            out[r, 7] += 1.0
        if temperature[i] > out[r, 5]:  # never for a NaN
            out[r, 5] = temperature[i]
        if not np.isnan(power[i]):
            out[r, 6] += power[i]


COLUMNS = (
    "devices",
    "healthy",
    "cordoned",
    "lost",
    "utilization",
    "temperature_c",
    "power_w",
    "reporting",
)


def rack_totals(
    racks: int,
    rack: npt.NDArray[np.integer],
    healthy: npt.NDArray[np.bool_],
    cordoned: npt.NDArray[np.bool_],
    lost: npt.NDArray[np.bool_],
    utilization: npt.NDArray[np.floating],
    temperature: npt.NDArray[np.floating],
    power: npt.NDArray[np.floating],
) -> dict[str, F64]:
    """Per rack: devices, healthy, cordoned, lost, mean utilisation, hottest temperature, total
    power and the devices with a utilisation reading, from one value per device; the readings
    of a lost device, and NaN readings, are left out of their figures. The arrays go to the
    kernel as they are (no float64 copies: at 1M GPUs those cost more than the pass)."""
    n = rack.shape[0]
    arrays = (healthy, cordoned, lost, utilization, temperature, power)
    if any(a.shape != (n,) for a in arrays):
        raise ValueError(f"every device array must have shape ({n},)")
    if n and (rack.min() < 0 or rack.max() >= racks):
        raise ValueError(f"rack indices must lie in 0..{racks - 1}")
    out = np.zeros((racks, len(COLUMNS)))
    kernel_args = [np.ascontiguousarray(rack), *(np.ascontiguousarray(a) for a in arrays), out]
    _rack_totals(*kernel_args)
    totals = {name: out[:, i] for i, name in enumerate(COLUMNS)}
    totals["utilization"] = totals["utilization"] / np.maximum(totals["reporting"], 1.0)
    return totals


COUNTS = ("devices", "healthy", "cordoned", "lost", "reporting")
MEASURED = ("temperature_c", "power_w")
"""The rack_totals columns that only some device kinds measure."""


def merge_rack_totals(*kinds: dict[str, F64]) -> dict[str, F64]:
    """The rack_totals of several device kinds as one: counts and power add up, utilisation is
    the mean over every device that reports, temperature the hottest. A rack's temperature
    and power are NaN where none of its devices measures them (a kind with no device that
    reports there, or whose totals hold NaN)."""
    merged = {name: np.sum([k[name] for k in kinds], axis=0) for name in COUNTS}
    busy = np.sum([k["utilization"] * k["reporting"] for k in kinds], axis=0)
    merged["utilization"] = busy / np.maximum(merged["reporting"], 1.0)
    for name in MEASURED:
        values = np.stack([np.where(k["reporting"] > 0, k[name], np.nan) for k in kinds])
        unmeasured = np.isnan(values).all(axis=0)
        total = np.fmax.reduce(values) if name == "temperature_c" else np.nansum(values, axis=0)
        merged[name] = np.where(unmeasured, np.nan, total)
    return merged


@parallel_kernel
def _pool_totals(
    pool: np.ndarray,
    ttft_slo: np.ndarray,
    itl_slo: np.ndarray,
    per_replica: tuple[np.ndarray, ...],
    ttft: np.ndarray,
    itl: np.ndarray,
    out: np.ndarray,
) -> None:
    summed = len(per_replica)
    partial = np.zeros((CHUNKS, out.shape[0], out.shape[1]))
    for c in prange(CHUNKS):
        lo, hi = chunk(pool.shape[0], c)
        mine = partial[c]
        for r in range(lo, hi):
            g = pool[r]
            if g < 0:
                continue
            mine[g, 0] += 1.0
            for k in range(summed):
                mine[g, 1 + k] += per_replica[k][r]
            if ttft[r] <= ttft_slo[g] and itl[r] <= itl_slo[g]:
                mine[g, 1 + summed] += per_replica[summed - 1][r]
    add_chunks(out, partial)


def pool_totals(
    pools: int,
    pool: npt.NDArray[np.integer],
    ttft_slo_s: F64,
    itl_slo_s: F64,
    summed: dict[str, F64],
    ttft_s: F64,
    itl_s: F64,
) -> dict[str, F64]:
    """Per pool (`pool[r]` is replica r's, negative for none): its replica count, the sum of
    each array in `summed`, and "good", the sum of the last of them over the replicas whose
    TTFT and ITL met their pool's SLOs (goodput, when the last is completions)."""
    n = pool.shape[0]
    if not summed:
        raise ValueError("name at least one array to sum")
    if any(a.shape != (n,) or a.dtype != np.float64 for a in (*summed.values(), ttft_s, itl_s)):
        raise ValueError(f"every replica array must be float64 of shape ({n},)")
    if ttft_slo_s.shape != (pools,) or itl_slo_s.shape != (pools,):
        raise ValueError(f"SLOs must have shape ({pools},)")
    if n and pool.max() >= pools:
        raise ValueError(f"pool indices must lie below {pools}")
    out = np.zeros((pools, 2 + len(summed)))
    per_replica = tuple(summed.values())
    _pool_totals(pool.astype(np.int64), ttft_slo_s, itl_slo_s, per_replica, ttft_s, itl_s, out)
    names = ("replicas", *summed, "good")
    return {name: out[:, i] for i, name in enumerate(names)}
