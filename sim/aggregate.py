"""Per-rack aggregates of device telemetry for dashboards: one pass over every GPU."""

import numpy as np
import numpy.typing as npt
from numba import njit

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
        out[r, 4] += utilization[i]
        if temperature[i] > out[r, 5]:
            out[r, 5] = temperature[i]
        out[r, 6] += power[i]


COLUMNS = ("devices", "healthy", "cordoned", "lost", "utilization", "temperature_c", "power_w")


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
    """Per rack: devices, healthy, cordoned, lost, mean utilisation, hottest temperature and
    total power, from one value per device."""
    n = rack.shape[0]
    arrays = (healthy, cordoned, lost, utilization, temperature, power)
    if any(a.shape != (n,) for a in arrays):
        raise ValueError(f"every device array must have shape ({n},)")
    if n and (rack.min() < 0 or rack.max() >= racks):
        raise ValueError(f"rack indices must lie in 0..{racks - 1}")
    out = np.zeros((racks, len(COLUMNS)))
    kernel_args = [rack.astype(np.int64), *(a.astype(np.float64) for a in arrays), out]
    _rack_totals(*kernel_args)
    totals = {name: out[:, i] for i, name in enumerate(COLUMNS)}
    totals["utilization"] = totals["utilization"] / np.maximum(totals["devices"], 1.0)
    return totals
