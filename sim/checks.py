"""One-pass checks of the arrays handed to kernels, cheap enough to run on every tick: no
temporaries, no branches in the loop (so they vectorise; NaN fails every comparison)."""

import numpy as np
from numba import njit

LARGEST = float(np.finfo(np.float64).max)
"""The largest finite float: `all_within(values, 0.0, LARGEST)` means finite and at least 0."""


@njit(cache=True)
def all_within(values: np.ndarray, low: float, high: float) -> bool:
    """Whether every value lies in low..high (both included; NaN does not)."""
    ok = True
    for i in range(values.size):
        ok &= (values[i] >= low) & (values[i] <= high)
    return ok


@njit(cache=True)
def all_above(values: np.ndarray, low: float) -> bool:
    """Whether every value is finite and above `low` (NaN is not)."""
    ok = True
    for i in range(values.size):
        ok &= (values[i] > low) & (values[i] < np.inf)
    return ok
