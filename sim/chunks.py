"""Fixed chunks for parallel kernels: each chunk's partial result is combined in chunk order,
so a kernel's floating-point sums do not depend on how many threads ran it."""

from numba import njit

CHUNKS = 16
"""Chunks per parallel pass: a few per core on the machines aidc runs on, so the threads stay
busy when one is slowed, and few enough that a chunk's startup cost is noise."""


@njit(cache=True)
def chunk(n: int, c: int) -> tuple[int, int]:
    """Items lo..hi (hi excluded) of chunk c when `n` items are cut into CHUNKS chunks."""
    return n * c // CHUNKS, n * (c + 1) // CHUNKS
