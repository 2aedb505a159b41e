"""Fixed-bin latency histograms per entity (replica, pool or model) and their percentiles."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from sim.checks import LARGEST, all_within
from sim.chunks import CHUNKS, add_chunks, chunk, parallel_kernel

F64 = npt.NDArray[np.float64]
Index = npt.NDArray[np.integer[Any]]

LOW_S = 1e-3
HIGH_S = 600.0
"""The range the bins cover, 1 ms to 10 minutes: a value below it counts in the first bin, one
above it in the last, and percentiles stay within it."""
TARGET_WIDTH = 0.05
BIN_COUNT = math.ceil(math.log(HIGH_S / LOW_S) / math.log1p(TARGET_WIDTH))
"""273 log-spaced bins: the fewest whose upper edges are at most 1 + TARGET_WIDTH times their
lower ones."""
_EDGES = np.geomspace(LOW_S, HIGH_S, BIN_COUNT + 1)
RELATIVE_WIDTH = float(_EDGES[1] / _EDGES[0] - 1.0)
"""Every bin's upper edge is 1 + RELATIVE_WIDTH (about 1.0499) times its lower edge, which
bounds a percentile's error relative to the exact value."""


def bin_edges() -> F64:
    """The BIN_COUNT + 1 edges in seconds; bin b holds values in [edges[b], edges[b + 1])."""
    return _EDGES.copy()


_CELL_BITS = 10
"""A value's bin is looked up by its float64 exponent and top _CELL_BITS mantissa bits: a
cell at most 2**-10 wide relative to its values, far narrower than a bin, so a cell's values
fall in the bin of its lowest one or the next."""
_LOW_EXPONENT = math.frexp(LOW_S)[1] - 1
_HIGH_EXPONENT = math.frexp(HIGH_S)[1]
_CELL_BASE = (1023 + _LOW_EXPONENT) << _CELL_BITS
_CELL_FLOORS = np.ldexp(
    1.0 + np.arange(1 << _CELL_BITS) / (1 << _CELL_BITS),
    np.arange(_LOW_EXPONENT, _HIGH_EXPONENT)[:, None],
).ravel()
_CELL_BINS = np.clip(np.searchsorted(_EDGES, _CELL_FLOORS, side="right") - 1, 0, BIN_COUNT - 1)
_CELL_BINS = _CELL_BINS.astype(np.int16)
"""_CELL_BINS[cell]: the bin of the lowest value of each cell from 2**_LOW_EXPONENT up."""

BAD_ENTITY, BAD_VALUE, BAD_WEIGHT = 1, 2, 3
PARALLEL_CELLS = 100_000
"""Histograms of at most this many cells in all (a few hundred entities) are added to in
parallel, each chunk of observations into its own copy; larger ones in one pass."""


@njit(cache=True)
def _bin_of(edges: np.ndarray, cell_bins: np.ndarray, value: float, bits: int) -> int:
    last = edges.size - 2
    if value < edges[1]:
        return 0
    if value >= edges[last]:
        return last
    b = int(cell_bins[(bits >> (52 - _CELL_BITS)) - _CELL_BASE])
    # The cell's lowest value is in bin b; the edges decide for the rest of the cell.
    if value >= edges[b + 1]:
        return b + 1
    return b


@njit(cache=True)
def _problem(rows: int, entity: np.ndarray, value_s: np.ndarray, weight: np.ndarray) -> int:
    """0 if every observation is fit to count, else the first kind of problem found."""
    fit = all_within(entity, 0, rows - 1) and all_within(value_s, 0.0, LARGEST)
    if fit and all_within(weight, 0.0, LARGEST):
        return 0
    for i in range(entity.size):
        if not 0 <= entity[i] < rows:
            return BAD_ENTITY
        if not 0.0 <= value_s[i] < np.inf:
            return BAD_VALUE
    return BAD_WEIGHT


@njit(cache=True)
def _accumulate(
    counts: np.ndarray,
    sum_s: np.ndarray,
    edges: np.ndarray,
    cell_bins: np.ndarray,
    entity: np.ndarray,
    value_s: np.ndarray,
    value_bits: np.ndarray,
    weight: np.ndarray,
    part: int,
    lo: int,
    hi: int,
) -> None:
    """Count observations lo..hi (checked) into `counts[part]` and `sum_s[part]`."""
    # Runs of one entity and one bin (a pool's replicas, alike) add up in registers: adding
    # to the same memory cell each time would chain every addition on the one before.
    row, b, run_weight, run_sum = -1, 0, 0.0, 0.0
    for i in range(lo, hi):
        w = weight[i]
        if w == 0.0:
            continue
        bin_i = _bin_of(edges, cell_bins, value_s[i], value_bits[i])
        if entity[i] != row or bin_i != b:
            if row >= 0:
                counts[part, row, b] += run_weight
                sum_s[part, row] += run_sum
            row, b, run_weight, run_sum = entity[i], bin_i, 0.0, 0.0
        run_weight += w
        run_sum += w * value_s[i]
    if row >= 0:
        counts[part, row, b] += run_weight
        sum_s[part, row] += run_sum


@parallel_kernel
def _add(
    counts: np.ndarray,
    sum_s: np.ndarray,
    edges: np.ndarray,
    cell_bins: np.ndarray,
    entity: np.ndarray,
    value_s: np.ndarray,
    value_bits: np.ndarray,
    weight: np.ndarray,
) -> int:
    # Checked first, so a refused call changes nothing.
    problem = _problem(counts.shape[0], entity, value_s, weight)
    if problem:
        return problem
    observations = (entity, value_s, value_bits, weight)
    if counts.size > PARALLEL_CELLS:
        whole = (counts.reshape((1, *counts.shape)), sum_s.reshape((1, sum_s.size)))
        _accumulate(*whole, edges, cell_bins, *observations, 0, 0, entity.size)
        return 0
    # Few histograms (pools, models): each chunk counts into its own copy, then they are summed.
    partial_counts = np.zeros((CHUNKS, counts.shape[0], counts.shape[1]))
    partial_sums = np.zeros((CHUNKS, sum_s.size))
    for c in prange(CHUNKS):
        lo, hi = chunk(entity.size, c)
        _accumulate(partial_counts, partial_sums, edges, cell_bins, *observations, c, lo, hi)
    add_chunks(counts, partial_counts)
    add_chunks(sum_s, partial_sums)
    return 0


@njit(cache=True)
def _groupby_sum(
    counts: np.ndarray, sum_s: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    group_counts = np.zeros((n_groups, counts.shape[1]))
    group_sum_s = np.zeros(n_groups)
    for row in range(group.size):
        g = group[row]
        if g < 0:
            continue
        for b in range(counts.shape[1]):
            group_counts[g, b] += counts[row, b]
        group_sum_s[g] += sum_s[row]
    return group_counts, group_sum_s


@njit(cache=True)
def _percentiles(counts: np.ndarray, edges: np.ndarray, qs: np.ndarray) -> np.ndarray:
    rows, bins = counts.shape
    out = np.empty((rows, qs.size))
    cumulative = np.empty(bins)
    for row in range(rows):
        running = 0.0
        for b in range(bins):
            running += counts[row, b]
            cumulative[b] = running
        if running <= 0.0:
            out[row, :] = np.nan
            continue
        for j in range(qs.size):
            target = qs[j] * running
            b = np.searchsorted(cumulative, target)
            # Only a target of 0 can land on an empty bin: the leading ones.
            while counts[row, b] <= 0.0:
                b += 1
            below = cumulative[b - 1] if b > 0 else 0.0
            fraction = min(max((target - below) / counts[row, b], 0.0), 1.0)
            out[row, j] = edges[b] * (edges[b + 1] / edges[b]) ** fraction
    return out


def _indices(
    name: str, values: npt.ArrayLike, count: int | None = None, *, negative_is_none: bool = False
) -> Index:
    """A 1-D integer array of indices below `count` (and at least 0 unless negative means none);
    without a `count`, the range is left to the caller."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}")
    if array.size == 0:
        return np.empty(0, np.intp)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got {array.dtype}")
    if count is not None and ((array.min() < 0 and not negative_is_none) or array.max() >= count):
        or_none = " (or be negative for none)" if negative_is_none else ""
        raise ValueError(
            f"{name} must lie in 0..{count - 1}{or_none}, "
            f"got values from {array.min()} to {array.max()}"
        )
    return np.ascontiguousarray(array)


def _amounts(name: str, values: npt.ArrayLike, length: int) -> F64:
    """A float64 array of `length`, or a scalar repeated to it (the kernel checks that it is
    finite and non-negative)."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got {array.dtype}")
    if array.ndim == 0:
        array = np.full(length, array, np.float64)
    if array.shape != (length,):
        raise ValueError(f"{name} must be a scalar or have shape ({length},), got {array.shape}")
    array = np.ascontiguousarray(array, np.float64)
    return array


def _size(name: str, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    return int(n)


class Histograms:
    """Latency histograms of `n` entities over the module's bins, with the weighted sum of the
    values seen (so means are exact, not read from bins).

    Counts are float64: a fluid model adds fractional requests and `decay` scales them. Each
    entity costs BIN_COUNT * 8 bytes (2.2 kB; 273 MB for 125,000 replicas). `counts` and
    `sum_s` are replaced by `resize`, so look them up again after it.
    """

    def __init__(self, n: int, *, since_start: bool = False) -> None:
        n = _size("n", n)
        self.counts: F64 = np.zeros((n, BIN_COUNT))
        """counts[entity, bin]: the (weighted, decayed) requests seen in each bin."""
        self.sum_s: F64 = np.zeros(n)
        """sum_s[entity]: the weighted sum of the latencies counted, in seconds."""
        self.since_start = Histograms(n) if since_start else None
        """With `since_start`, everything `add` counted, never decayed nor cleared: the
        cumulative counts a Prometheus histogram exposes (for twice the memory, and a copy of
        the counts every add: meant for a few entities, such as pools)."""

    def __len__(self) -> int:
        return len(self.counts)

    def resize(self, n: int) -> None:
        """Hold `n` entities: the first min(n, len) keep their data, new ones start empty."""
        n = _size("n", n)
        kept = min(n, len(self))
        counts, sum_s = np.zeros((n, BIN_COUNT)), np.zeros(n)
        counts[:kept], sum_s[:kept] = self.counts[:kept], self.sum_s[:kept]
        self.counts, self.sum_s = counts, sum_s
        if self.since_start is not None:
            self.since_start.resize(n)

    def add(
        self, entity: npt.ArrayLike, value_s: npt.ArrayLike, weight: npt.ArrayLike = 1.0
    ) -> None:
        """Count observation i, of latency value_s[i] and weight weight[i] (a scalar weight
        applies to all), in the histogram of entity[i]."""
        rows = _indices("entity", entity)
        self._add(rows, _amounts("value_s", value_s, rows.size), weight, "weight")

    def add_per_entity(self, value_s: npt.ArrayLike, count: npt.ArrayLike) -> None:
        """Count, for every entity i, count[i] requests that all took value_s[i] seconds (as a
        fluid model serves them in a tick); a scalar applies to every entity."""
        rows = np.arange(len(self))
        self._add(rows, _amounts("value_s", value_s, rows.size), count, "count")

    def _add(self, rows: Index, values: F64, weight: npt.ArrayLike, weight_name: str) -> None:
        weights = _amounts(weight_name, weight, rows.size)
        bits = values.view(np.int64)
        if self.since_start is not None:  # what this add counts is the change it makes
            before, before_sum_s = self.counts.copy(), self.sum_s.copy()
        kernel_args = [self.counts, self.sum_s, _EDGES, _CELL_BINS, rows, values, bits, weights]
        problem = _add(*kernel_args)
        if problem == BAD_ENTITY:
            raise ValueError(f"entity must lie in 0..{len(self) - 1}")
        if problem:
            name = "value_s" if problem == BAD_VALUE else weight_name
            raise ValueError(f"{name} must be finite and non-negative")
        if self.since_start is not None:
            # Rounding is monotonic, so a bin that grew gives a difference >= 0: the counts
            # since the start never go down.
            self.since_start.counts += self.counts - before
            self.since_start.sum_s += self.sum_s - before_sum_s

    def groupby_sum(self, group_of_entity: npt.ArrayLike, n_groups: int) -> "Histograms":
        """Histograms of `n_groups` groups (replicas into pools, pools into models), each the sum
        of its entities'; an entity whose group is negative belongs to none."""
        n_groups = _size("n_groups", n_groups)
        groups = _indices("group_of_entity", group_of_entity, n_groups, negative_is_none=True)
        if groups.size != len(self):
            raise ValueError(
                f"group_of_entity must name a group for each of the {len(self)} entities, "
                f"got {groups.size}"
            )
        grouped = Histograms(0)
        grouped.counts, grouped.sum_s = _groupby_sum(self.counts, self.sum_s, groups, n_groups)
        return grouped

    def percentiles(self, qs: Sequence[float] = (0.5, 0.9, 0.99)) -> F64:
        """Latency in seconds at each quantile in `qs` (0..1, 0.99 for p99) of every entity, as
        an (entities, len(qs)) array, interpolated log-linearly inside the bin that holds the
        quantile: off the exact value by about a bin's width (RELATIVE_WIDTH) at most. NaN for
        an entity with no counts (0 would read as a perfect latency)."""
        quantiles = np.ascontiguousarray(qs, np.float64)
        if quantiles.ndim != 1 or not ((quantiles >= 0.0) & (quantiles <= 1.0)).all():
            raise ValueError(f"qs must be a sequence of quantiles in 0..1 (0.99 for p99), got {qs}")
        out: F64 = _percentiles(self.counts, _EDGES, quantiles)
        return out

    def decay(self, factor: float) -> None:
        """Multiply every count and sum by `factor` (0..1): called every tick, an exponential
        window whose mean age is 1 / (1 - factor) ticks."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"decay factor must lie in 0..1, got {factor}")
        self.counts *= factor
        self.sum_s *= factor

    def clear(self) -> None:
        """Forget every observation (a tumbling window)."""
        self.counts.fill(0.0)
        self.sum_s.fill(0.0)

    def total(self) -> F64:
        """Requests counted per entity."""
        total: F64 = self.counts.sum(axis=1)
        return total

    def mean_s(self) -> F64:
        """Mean latency per entity in seconds, NaN for an entity with no counts."""
        total = self.total()
        mean: F64 = np.divide(self.sum_s, total, out=np.full(len(self), np.nan), where=total > 0.0)
        return mean
