"""Replica serving with continuous batching, as a fluid model stepped once per tick.

Each replica holds a prefill backlog (requests and seconds of prefill work queued) and a
running batch. In a tick of `dt` seconds it spends time on prefill (all of it when nothing
is decoding, `PREFILL_SHARE` of it when sequences are) for the requests the KV cache has room
for, and the rest on decode iterations whose time follows the roofline: a fixed part
(reading the weights, launching), a part per token of context (reading the KV cache), and a
compute floor per sequence. A request's time to first token is the prefill work queued ahead
of it, at the share the replica gives prefill, plus its own prefill; its inter-token latency
is the iteration time stretched by that share. With prefill only and one request at a time,
the backlog is exactly the workload of an M/D/1 queue, sampled every tick.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import prange

from sim.checks import LARGEST, all_above, all_within
from sim.chunks import parallel_kernel

PREFILL_SHARE = 0.5
"""Fraction of a tick chunked prefill takes while sequences are decoding (vLLM interleaves)."""

F64 = npt.NDArray[np.float64]


@dataclass
class ReplicaParams:
    """Constants of the roofline, one array entry per kind of replica (a pool's replicas are
    alike); `serve` is told each replica's kind."""

    prompt_tokens: F64
    """Mean prompt length of the replica's model's traffic."""
    output_tokens: F64
    """Mean output length."""
    prefill_s_per_token: F64
    """Prefill time per prompt token at full clock (compute-bound)."""
    decode_fixed_s: F64
    """Decode iteration time that does not depend on the batch: weights read, launch."""
    decode_s_per_context_token: F64
    """Decode iteration time per token of KV cache read."""
    decode_s_per_sequence: F64
    """Compute floor of a decode iteration per sequence in the batch."""
    kv_capacity_tokens: F64
    max_sequences: F64


@dataclass
class ReplicaState:
    """What changes from tick to tick: the backlog and the running batch."""

    waiting: F64
    """Requests waiting for prefill."""
    backlog_s: F64
    """Seconds of prefill work waiting."""
    running: F64
    """Sequences decoding."""

    @classmethod
    def empty(cls, replicas: int) -> "ReplicaState":
        """Idle replicas."""
        return cls(np.zeros(replicas), np.zeros(replicas), np.zeros(replicas))


@dataclass
class TickResult:
    """What each replica did in a tick, and the latencies its requests saw."""

    admitted: F64
    completed: F64
    tokens: F64
    ttft_s: F64
    itl_s: F64
    e2e_s: F64
    kv_usage: F64

    @classmethod
    def empty(cls, replicas: int) -> "TickResult":
        """Zeros for `replicas` replicas."""
        return cls(*(np.zeros(replicas) for _ in range(7)))


@parallel_kernel
def _serve(
    dt: float,
    arrivals: np.ndarray,
    clock: np.ndarray,
    up: np.ndarray,
    kind: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    prompt_work: np.ndarray,
    per_prompt_work: np.ndarray,
    decode_fixed: np.ndarray,
    decode_ctx: np.ndarray,
    decode_seq: np.ndarray,
    kv_capacity: np.ndarray,
    max_seqs: np.ndarray,
    per_sequence_tokens: np.ndarray,
    per_kv_token: np.ndarray,
    per_output_token: np.ndarray,
    waiting: np.ndarray,
    backlog: np.ndarray,
    running: np.ndarray,
    admitted_out: np.ndarray,
    completed_out: np.ndarray,
    tokens_out: np.ndarray,
    ttft_out: np.ndarray,
    itl_out: np.ndarray,
    e2e_out: np.ndarray,
    kv_out: np.ndarray,
) -> None:
    # Divisions are the slow part: what depends only on the kind comes in as reciprocals.
    for r in prange(arrivals.shape[0]):
        admitted_out[r] = completed_out[r] = tokens_out[r] = 0.0
        ttft_out[r] = itl_out[r] = e2e_out[r] = kv_out[r] = 0.0
        if not up[r]:
            continue
        k = kind[r]
        p, o = prompt[k], output[k]
        slowdown = 1.0 / clock[r]
        work = prompt_work[k] * slowdown
        busy = running[r] >= 1e-9
        share = PREFILL_SHARE if busy else 1.0
        # Queued prefill is priced at today's clock: work queued while the replica was
        # throttled (or its GPUs idled at a low clock) must not linger once it is not.
        backlog[r] = waiting[r] * work
        # Arrivals come at uniform times in the tick: on average half the tick's prefill has
        # been done, and half of the other arrivals are ahead.
        ahead = max(backlog[r] - 0.5 * dt * share, 0.0) + 0.5 * max(arrivals[r] - 1.0, 0.0) * work
        waiting[r] += arrivals[r]
        backlog[r] += arrivals[r] * work
        context = p + 0.5 * o
        room = min(
            max_seqs[k] - running[r],
            (kv_capacity[k] - running[r] * context) * per_sequence_tokens[k],
        )
        admissible = min(waiting[r], max(room, 0.0))
        prefill_time = min(dt * share, admissible * work)
        admitted = prefill_time * clock[r] * per_prompt_work[k] if work > 0.0 else admissible
        waiting[r] = max(waiting[r] - admitted, 0.0)
        backlog[r] = max(backlog[r] - prefill_time, 0.0)
        ttft = (ahead * 2.0 if busy else ahead) + work
        batch = running[r] + admitted
        itl = 0.0
        completed = admitted
        if o > 0.0 and batch > 0.0:
            iteration = decode_fixed[k] + decode_ctx[k] * batch * context
            iteration = max(iteration, decode_seq[k] * batch * slowdown)
            decode_time = dt - prefill_time
            tokens = batch * decode_time / iteration
            completed = min(batch, tokens * per_output_token[k])
            tokens_out[r] = tokens
            itl = iteration * dt / max(decode_time, 1e-9)
            batch -= completed
        elif o > 0.0:
            completed = 0.0
        running[r] = batch if o > 0.0 else 0.0
        admitted_out[r] = admitted
        completed_out[r] = completed
        ttft_out[r] = ttft
        itl_out[r] = itl
        e2e_out[r] = ttft + o * itl
        kv_out[r] = running[r] * context * per_kv_token[k]


def _reciprocal(values: F64) -> F64:
    """1 / values, and 0 where a value is 0 (the kernel never uses those)."""
    out: F64 = np.divide(1.0, values, out=np.zeros(values.shape), where=values > 0)
    return out


def serve(
    dt: float,
    arrivals: F64,
    clock: F64,
    up: npt.NDArray[np.bool_],
    kind: npt.NDArray[np.integer[Any]],
    params: ReplicaParams,
    state: ReplicaState,
    result: TickResult,
) -> None:
    """Step every replica by `dt` seconds: `arrivals` requests each (fractional is fine),
    `clock` the SM clock over its maximum (throttling), `up` whether it serves at all, `kind`
    its row in `params`."""
    if not dt > 0:
        raise ValueError(f"dt must be above 0 seconds, not {dt}")
    n = arrivals.shape[0]
    per_replica = [arrivals, clock, up, kind, *vars(state).values(), *vars(result).values()]
    if any(a.shape != (n,) for a in per_replica):
        raise ValueError(f"every replica array must have shape ({n},)")
    kinds = params.prompt_tokens.shape[0]
    if any(a.shape != (kinds,) for a in vars(params).values()):
        raise ValueError(f"every parameter array must have shape ({kinds},)")
    if not all_within(kind, 0, kinds - 1):
        raise ValueError(f"replica kinds must lie in 0..{kinds - 1}")
    if not (all_above(clock, 0.0) and all_within(arrivals, 0.0, LARGEST)):
        raise ValueError("clock factors must be above 0 and arrivals at least 0, all finite")
    p = params
    prompt_work = p.prompt_tokens * p.prefill_s_per_token
    capacity = p.kv_capacity_tokens
    kernel_args: list[npt.NDArray[Any]] = [
        arrivals,
        clock,
        up,
        np.ascontiguousarray(kind),
        p.prompt_tokens,
        p.output_tokens,
        prompt_work,
        _reciprocal(prompt_work),
        p.decode_fixed_s,
        p.decode_s_per_context_token,
        p.decode_s_per_sequence,
        capacity,
        p.max_sequences,
        1.0 / (p.prompt_tokens + p.output_tokens),
        _reciprocal(capacity),
        _reciprocal(p.output_tokens),
        *vars(state).values(),
        *vars(result).values(),
    ]
    _serve(dt, *kernel_args)
