"""Request routing: each model's requests split across pools by weight, then across replicas."""

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from sim.checks import LARGEST, all_within
from sim.chunks import CHUNKS, add_chunks, chunk, parallel_kernel

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Policy = Literal["least_outstanding", "p2c", "kv_aware"]
POLICIES: tuple[Policy, ...] = get_args(Policy)

BLOCK_TOKENS = 16
"""Tokens per KV cache block (vLLM's default block size)."""
PREFILL_WEIGHT = 1.0
"""w in Dynamo's KV router cost w * prefill_blocks + decode_blocks: above 1 favours a short
time to first token, below 1 a short inter-token latency."""
P2C_DECISIONS_PER_REPLICA = 2
"""Power-of-two choices decides at most this many times per ready replica of a pool per tick;
a pool with more requests than that sends them in equal batches to each decision's winner
(a batch of 1 until then). At 20 requests per replica per tick that is batches of 10, small
against the hundreds of sequences a replica runs, at a tenth of the per-request loop's cost."""


@njit(cache=True)
def _members(
    pool_of_replica: np.ndarray, ready: np.ndarray, pools: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ready replicas of pool p are members[start[p]:start[p + 1]], in replica order."""
    start = np.zeros(pools + 1, np.int64)
    for r in range(pool_of_replica.size):
        if ready[r] and pool_of_replica[r] >= 0:
            start[pool_of_replica[r] + 1] += 1
    for p in range(pools):
        start[p + 1] += start[p]
    members = np.empty(start[pools], np.int64)
    filled = start[:pools].copy()
    for r in range(pool_of_replica.size):
        p = pool_of_replica[r]
        if ready[r] and p >= 0:
            members[filled[p]] = r
            filled[p] += 1
    return start, members


@njit(cache=True)
def _pools_with_ready(pool_of_replica: np.ndarray, ready: np.ndarray, pools: int) -> np.ndarray:
    found = np.zeros(pools, np.bool_)
    left = pools
    for r in range(pool_of_replica.size):
        p = pool_of_replica[r]
        if ready[r] and 0 <= p < pools and not found[p]:
            found[p] = True
            left -= 1
            if left == 0:  # the usual case: a pool's first replicas are ready
                break
    return found


def pools_with_ready(
    pool_of_replica: npt.NDArray[np.integer], ready: npt.NDArray[np.bool_], pools: int
) -> npt.NDArray[np.bool_]:
    """Which of `pools` pools have a ready replica (`pool_of_replica` -1 is in no pool)."""
    if pool_of_replica.shape != ready.shape or ready.dtype != np.bool_:
        raise ValueError("pool_of_replica and ready must be 1-D arrays of one shape")
    found: npt.NDArray[np.bool_] = _pools_with_ready(pool_of_replica, ready, pools)
    return found


@parallel_kernel
def _sums_below(
    pool_of_replica: np.ndarray,
    ready: np.ndarray,
    cost: np.ndarray,
    inverse_slope: np.ndarray,
    below: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pool p, over its ready replicas whose cost is below below[p]: sum 1/slope, sum
    cost/slope, and how many there are."""
    pools = below.size
    inverse_slopes = np.zeros((CHUNKS, pools))
    weighted_costs = np.zeros((CHUNKS, pools))
    counted = np.zeros((CHUNKS, pools), np.int64)
    for c in prange(CHUNKS):
        lo, hi = chunk(pool_of_replica.size, c)
        # A run of one pool's replicas adds up in registers, not through memory.
        p, inverse, weighted, n = -1, 0.0, 0.0, 0
        for r in range(lo, hi):
            q = pool_of_replica[r]
            if not (ready[r] and q >= 0 and cost[r] < below[q]):
                continue
            if q != p:
                if p >= 0:
                    inverse_slopes[c, p] += inverse
                    weighted_costs[c, p] += weighted
                    counted[c, p] += n
                p, inverse, weighted, n = q, 0.0, 0.0, 0
            inverse += inverse_slope[r]
            weighted += cost[r] * inverse_slope[r]
            n += 1
        if p >= 0:
            inverse_slopes[c, p] += inverse
            weighted_costs[c, p] += weighted
            counted[c, p] += n
    sums = np.zeros(pools), np.zeros(pools), np.zeros(pools, np.int64)
    add_chunks(sums[0], inverse_slopes)
    add_chunks(sums[1], weighted_costs)
    add_chunks(sums[2], counted)
    return sums


@parallel_kernel
def _fill_to(
    pool_of_replica: np.ndarray,
    ready: np.ndarray,
    cost: np.ndarray,
    inverse_slope: np.ndarray,
    level: np.ndarray,
    arrivals: np.ndarray,
) -> None:
    for r in prange(pool_of_replica.size):
        p = pool_of_replica[r]
        if ready[r] and p >= 0 and cost[r] < level[p]:
            arrivals[r] = (level[p] - cost[r]) * inverse_slope[r]
        else:
            arrivals[r] = 0.0


@njit(cache=True)
def _water_fill(
    counts: np.ndarray,
    pool_of_replica: np.ndarray,
    ready: np.ndarray,
    cost: np.ndarray,
    inverse_slope: np.ndarray,
    arrivals: np.ndarray,
    unroutable: np.ndarray,
) -> None:
    """Each pool's count spread over its ready replicas so that cost + slope * arrivals is level
    across those that get any and no lower on those that get none (slopes come inverted:
    multiplying is far cheaper than dividing)."""
    # Michelot's iteration, every pool at once (a pass over the replicas levels them all):
    # level each pool, drop the replicas already above its level, and level again; a level
    # only falls, so the replicas left are those below the last level, and a pool is done
    # when that drops none.
    pools = counts.size
    below, level = np.empty(pools), np.empty(pools)
    active = np.empty(pools, np.int64)
    for p in range(pools):
        below[p] = np.inf if counts[p] > 0 else -np.inf
        level[p], active[p], unroutable[p] = -np.inf, -1, 0
    while True:
        inverse_slopes, weighted_costs, size = _sums_below(
            pool_of_replica, ready, cost, inverse_slope, below
        )
        changed = False
        for p in range(pools):
            if counts[p] == 0 or size[p] == active[p]:
                continue
            if size[p] == 0:  # no ready replica (a level is above one, once there is one)
                unroutable[p], below[p], active[p] = counts[p], -np.inf, 0
                continue
            level[p] = (counts[p] + weighted_costs[p]) / inverse_slopes[p]
            below[p], active[p], changed = level[p], size[p], True
        if not changed:
            break
    _fill_to(pool_of_replica, ready, cost, inverse_slope, level, arrivals)


@njit(cache=True)
def _p2c(
    seed: int,
    counts: np.ndarray,
    pool_of_replica: np.ndarray,
    ready: np.ndarray,
    outstanding: np.ndarray,
    decisions_per_replica: int,
    arrivals: np.ndarray,
    unroutable: np.ndarray,
) -> None:
    """Each pool's count sent, a batch per decision, to the less outstanding of two ready
    replicas drawn without replacement; ties go to the first drawn."""
    np.random.seed(seed)
    start, members = _members(pool_of_replica, ready, counts.size)
    arrivals[:] = 0.0
    for p in range(counts.size):
        unroutable[p] = 0
        size = start[p + 1] - start[p]
        if counts[p] == 0:
            continue
        if size == 0:
            unroutable[p] = counts[p]
            continue
        decisions = decisions_per_replica * size
        batch = (counts[p] + decisions - 1) // decisions
        left = counts[p]
        while left > 0:
            i = np.random.randint(0, size)
            chosen = members[start[p] + i]
            if size > 1:
                j = np.random.randint(0, size - 1)
                if j >= i:
                    j += 1
                other = members[start[p] + j]
                if outstanding[other] + arrivals[other] < outstanding[chosen] + arrivals[chosen]:
                    chosen = other
            sent = min(batch, left)
            arrivals[chosen] += sent
            left -= sent


def split_by_weights(
    counts_per_model: npt.ArrayLike, weights: npt.ArrayLike, rng: np.random.Generator
) -> tuple[I64, I64]:
    """Each model's requests split across pools, multinomially by `weights[model, pool]` (in
    percent; a row sums to 100, or is all zeros for a model with no route).

    Returns the requests per pool and, per model, those with no route.
    """
    counts = _integers("counts_per_model", counts_per_model)
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[0] != counts.size or w.dtype.kind not in "iuf":
        raise ValueError(
            f"weights must be real numbers of shape ({counts.size}, pools), got {w.dtype} {w.shape}"
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite percentages of at least 0")
    totals = w.sum(axis=1)
    routed = totals > 0
    if (np.abs(totals[routed] - 100.0) > 1e-6).any():
        raise ValueError("each model's weights must sum to 100 percent, or all be 0")
    per_pool = np.zeros(w.shape[1], np.int64)
    if routed.any():
        shares = rng.multinomial(counts[routed], w[routed] / totals[routed, None])
        per_pool += shares.sum(axis=0)
    return per_pool, np.where(routed, 0, counts)


def route(
    policy: Policy,
    counts_per_pool: npt.ArrayLike,
    pool_of_replica: npt.ArrayLike,
    ready: npt.ArrayLike,
    waiting: npt.ArrayLike,
    running: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    prompt_tokens: npt.ArrayLike | None = None,
    context_tokens: npt.ArrayLike | None = None,
    prefill_weight: float = PREFILL_WEIGHT,
) -> tuple[F64, I64]:
    """Each pool's requests sent to its ready replicas (`pool_of_replica` -1 is in no pool).

    - "least_outstanding" water-fills: the least loaded replicas take requests until their
      waiting + running + arrivals are level (fluid, so arrivals can be fractional).
    - "p2c", power of two choices: each request goes to the less loaded of two distinct
      random ready replicas of its pool, counting what it sent earlier in the tick (batched
      for large pools: see P2C_DECISIONS_PER_REPLICA). Numba's generator is seeded from `rng`.
    - "kv_aware" water-fills Dynamo's cost `prefill_weight * prefill_blocks + decode_blocks`:
      prefill blocks are those of the waiting prompts, each new request's included,
      `prompt_tokens` long on average; decode blocks are those of the running sequences,
      `context_tokens` each (both per replica, used by this policy only).

    Returns the arrivals per replica and, per pool, the requests it has no ready replica for.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    counts = _integers("counts_per_pool", counts_per_pool)
    pools = _integers("pool_of_replica", pool_of_replica, low=-1, high=counts.size - 1)
    n = pools.size
    up = np.asarray(ready)
    if up.dtype != np.bool_ or up.shape != (n,):
        raise ValueError(f"ready must be booleans of shape ({n},), got {up.dtype} {up.shape}")
    queued = _amounts("waiting", waiting, n)
    decoding = _amounts("running", running, n)
    arrivals = np.empty(n)
    unroutable = np.empty(counts.size, np.int64)
    if policy == "least_outstanding":
        _water_fill(counts, pools, up, queued + decoding, np.ones(n), arrivals, unroutable)
    elif policy == "p2c":
        seed = int(rng.integers(2**32))
        outstanding = queued + decoding
        _p2c(seed, counts, pools, up, outstanding, P2C_DECISIONS_PER_REPLICA, arrivals, unroutable)
    else:
        if prompt_tokens is None or context_tokens is None:
            raise ValueError("the kv_aware policy needs prompt_tokens and context_tokens")
        if not (np.isfinite(prefill_weight) and prefill_weight > 0):
            raise ValueError(f"prefill_weight must be above 0, not {prefill_weight}")
        prompt = _amounts("prompt_tokens", prompt_tokens, n)
        if (prompt[up & (pools >= 0)] <= 0).any():
            raise ValueError("prompt_tokens must be above 0 for every ready replica in a pool")
        prefill_blocks = queued * prompt / BLOCK_TOKENS
        decode_blocks = decoding * _amounts("context_tokens", context_tokens, n) / BLOCK_TOKENS
        cost = prefill_weight * prefill_blocks + decode_blocks
        inverse_slope = np.divide(
            BLOCK_TOKENS / prefill_weight, prompt, out=np.zeros(n), where=prompt > 0
        )
        _water_fill(counts, pools, up, cost, inverse_slope, arrivals, unroutable)
    return arrivals, unroutable


def _integers(name: str, values: npt.ArrayLike, low: int = 0, high: int | None = None) -> I64:
    """A 1-D int64 array of values in low..high."""
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D array of integers, got {array.dtype} {array.shape}")
    if array.size and (array.min() < low or (high is not None and array.max() > high)):
        bounds = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must lie in {bounds}, got {array.min()}..{array.max()}")
    return np.ascontiguousarray(array, np.int64)


def _amounts(name: str, values: npt.ArrayLike, n: int) -> F64:
    """A finite, non-negative float64 array of shape (n,)."""
    array = np.asarray(values)
    if array.shape != (n,) or array.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must be real numbers of shape ({n},), got {array.dtype} {array.shape}"
        )
    array = np.ascontiguousarray(array, np.float64)
    if not all_within(array, 0.0, LARGEST):
        raise ValueError(f"{name} must be finite and at least 0")
    return array
