"""Fixed chunks for parallel kernels: each chunk's partial result is combined in chunk order,
so a kernel's floating-point sums do not depend on how many threads ran it."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

_Function = TypeVar("_Function", bound=Callable[..., Any])

CHUNKS = 16
"""Chunks per parallel pass: a few per core on the machines aidc runs on, so the threads stay
busy when one is slowed, and few enough that a chunk's startup cost is noise."""


@njit(cache=True)
def chunk(n: int, c: int) -> tuple[int, int]:
    """Items lo..hi (hi excluded) of chunk c when `n` items are cut into CHUNKS chunks."""
    return n * c // CHUNKS, n * (c + 1) // CHUNKS


@njit(cache=True)
def add_chunks(out: np.ndarray, partials: np.ndarray) -> None:
    """`out += partials[c]` for every chunk c, in chunk order, as plain loops (`partials` is
    CHUNKS copies of `out`'s shape, both C-contiguous)."""
    flat_out = out.reshape(out.size)
    flat = partials.reshape((partials.shape[0], out.size))
    for c in range(flat.shape[0]):
        for i in range(out.size):
            flat_out[i] += flat[c, i]


def parallel_kernel(function: _Function) -> "Dispatcher[_Function]":
    """`njit(cache=True)` with only the `prange` loops on numba's threads: whole-array
    expressions (a chunk's sums added up, an array zeroed) stay plain loops, where each would
    otherwise be a parallel region of its own, costing a thread launch per call and seconds of
    compile time."""
    options = ("comprehension", "reduction", "inplace_binop", "setitem", "numpy", "stencil")
    # A dict is a documented value of `parallel`, which numba's type hints leave out.
    parallel: Any = {name: False for name in options} | {"fusion": False, "prange": True}
    return njit(cache=True, parallel=parallel)(function)
