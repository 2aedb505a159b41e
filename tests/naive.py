"""Slow, obvious twins of the numba kernels in sim/: each kernel's test compares the two."""

import math
from collections.abc import Iterable, Sequence

import numpy as np

from sim.assignments import ABSOLUTE_CHANGE, RELATIVE_CHANGE
from sim.serving import ReplicaParams, ReplicaState, TickResult

# sim/fleet_state.py


def scatter(rows: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """out[:, rows] = values, one element at a time."""
    for j, row in enumerate(rows):
        for lane in range(values.shape[0]):
            out[lane][row] = values[lane][j]


# sim/assignments.py


def mark_moved(flags: np.ndarray, rows: np.ndarray, new: np.ndarray, last: np.ndarray) -> None:
    """Flag the rows whose float32 load moved past the threshold from what was last sent, or
    that were never sent."""
    for j, row in enumerate(rows):
        old = float(last[row])
        value = float(np.float32(new[row]))
        if math.isnan(old) or abs(value - old) > ABSOLUTE_CHANGE + RELATIVE_CHANGE * abs(old):
            flags[j] = True


# sim/roofline.py


def weight_read_bytes(
    dense_bytes: float, expert_bytes: float, expert_fraction: float, tokens: int
) -> float:
    """The dense weights, and each routed expert's share of the expert bytes if any of `tokens`
    tokens uses it, every token using each expert with chance expert_fraction."""
    unused = 1.0
    for _ in range(tokens):
        unused *= 1.0 - expert_fraction
    return dense_bytes + expert_bytes * (1.0 - unused)


def kv_capacity_tokens(
    memory_bytes: float,
    devices: int,
    memory_utilisation: float,
    weight_bytes: float,
    kv_bytes_per_token: float,
) -> int:
    """Whole tokens of KV cache in what the devices' usable memory leaves beside the weights,
    rounded down, so a negative count when the weights do not fit."""
    usable = memory_bytes * devices * memory_utilisation
    return math.floor((usable - weight_bytes) / kv_bytes_per_token)


def decode_iteration_time(
    batch: int,
    context_tokens: int,
    flops_per_token: float,
    effective_flops: float,
    dense_weight_bytes: float,
    expert_weight_bytes: float,
    expert_fraction: float,
    kv_bytes_per_token: float,
    effective_bandwidth: float,
    comm_latency_s: float,
    comm_s_per_token: float,
    overhead_s: float,
    clock_factor: float,
) -> float:
    """A step computing a token for each of `batch` sequences: the longer of the compute time
    at the throttled clock and the time to read the weights the batch routes to and
    `context_tokens` tokens of KV cache, plus an all-reduce latency, an all-reduce transfer
    per token and the host overhead; an empty step takes no time."""
    if batch <= 0:
        return 0.0
    compute_s = batch * flops_per_token / effective_flops / clock_factor
    weights = weight_read_bytes(dense_weight_bytes, expert_weight_bytes, expert_fraction, batch)
    memory_s = (weights + context_tokens * kv_bytes_per_token) / effective_bandwidth
    return max(compute_s, memory_s) + comm_latency_s + batch * comm_s_per_token + overhead_s


def prefill_time(tokens: int, *replica: float) -> float:
    """A prefill step of `tokens` prompt tokens costs what a decode step of as many sequences
    moving one token of KV cache each would: the roofline counts FLOPs and bytes, not phases."""
    return decode_iteration_time(tokens, tokens, *replica)


# sim/serving.py


def serve(
    dt: float,
    arrivals: np.ndarray,
    clock: np.ndarray,
    up: np.ndarray,
    kind: np.ndarray,
    params: ReplicaParams,
    state: ReplicaState,
    result: TickResult,
) -> None:
    """The fluid replica model, one replica at a time, spelled out; replica r has the
    parameters in row kind[r]."""
    share_busy = 0.5
    for r in range(len(arrivals)):
        out = {
            "admitted": 0.0,
            "completed": 0.0,
            "tokens": 0.0,
            "ttft_s": 0.0,
            "itl_s": 0.0,
            "e2e_s": 0.0,
            "kv_usage": 0.0,
        }
        if up[r]:
            k = kind[r]
            prompt, output = params.prompt_tokens[k], params.output_tokens[k]
            work = prompt * params.prefill_s_per_token[k] / clock[r]
            share = 1.0 if state.running[r] < 1e-9 else share_busy
            state.backlog_s[r] = state.waiting[r] * work  # priced at the current clock
            served_before = min(state.backlog_s[r], dt * share / 2)
            ahead = state.backlog_s[r] - served_before + max(arrivals[r] - 1, 0) * work / 2
            state.waiting[r] += arrivals[r]
            state.backlog_s[r] += arrivals[r] * work
            context = prompt + output / 2
            free_kv = params.kv_capacity_tokens[k] - state.running[r] * context
            room = min(params.max_sequences[k] - state.running[r], free_kv / (prompt + output))
            room = max(room, 0.0)
            prefill_time = min(dt * share, min(state.waiting[r], room) * work)
            admitted = prefill_time / work if work > 0 else min(state.waiting[r], room)
            state.waiting[r] = max(state.waiting[r] - admitted, 0.0)
            state.backlog_s[r] = max(state.backlog_s[r] - prefill_time, 0.0)
            batch = state.running[r] + admitted
            out["admitted"] = admitted
            out["ttft_s"] = ahead / share + work
            if output <= 0:
                out["completed"] = admitted
                state.running[r] = 0.0
            elif batch > 0:
                per_context = params.decode_s_per_context_token[k]
                iteration = params.decode_fixed_s[k] + per_context * batch * context
                iteration = max(iteration, params.decode_s_per_sequence[k] * batch / clock[r])
                decode_time = dt - prefill_time
                tokens = batch * decode_time / iteration
                out["completed"] = min(batch, tokens / output)
                out["tokens"] = tokens
                out["itl_s"] = iteration * dt / max(decode_time, 1e-9)
                state.running[r] = batch - out["completed"]
            out["e2e_s"] = out["ttft_s"] + output * out["itl_s"]
            capacity = params.kv_capacity_tokens[k]
            out["kv_usage"] = state.running[r] * context / capacity if capacity > 0 else 0.0
        for name, value in out.items():
            getattr(result, name)[r] = value


# sim/histogram.py


def histogram_add(
    counts: np.ndarray,
    sum_s: np.ndarray,
    edges: np.ndarray,
    entity: Iterable[int],
    value_s: Iterable[float],
    weight: Iterable[float],
) -> None:
    """counts[entity[i], bin of value_s[i]] += weight[i], the bin found by walking the edges;
    values outside the edges count in the first or last bin."""
    last = len(edges) - 2
    for row, value, w in zip(entity, value_s, weight, strict=True):
        b = 0
        while b < last and value >= edges[b + 1]:
            b += 1
        counts[row][b] += w
        sum_s[row] += w * value


def histogram_groupby_sum(
    counts: np.ndarray, sum_s: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[list[list[float]], list[float]]:
    """Rows of counts and sums added up by group, as lists; a negative group is no group."""
    group_counts = [[0.0] * len(counts[0]) for _ in range(n_groups)]
    group_sum_s = [0.0] * n_groups
    for row, g in enumerate(group):
        if g >= 0:
            for b in range(len(counts[row])):
                group_counts[g][b] += counts[row][b]
            group_sum_s[g] += sum_s[row]
    return group_counts, group_sum_s


def histogram_percentiles(
    counts: np.ndarray, edges: np.ndarray, qs: Sequence[float]
) -> list[list[float]]:
    """For each row and quantile q, walk the bins until q of the row's total is reached and
    interpolate log-linearly inside that bin; NaN for an empty row."""
    out = []
    for row in counts:
        total = 0.0
        for c in row:
            total += c
        values = []
        for q in qs:
            value = float("nan")
            if total > 0:
                target = q * total
                below = 0.0
                for b, c in enumerate(row):
                    if c > 0 and below + c >= target:
                        fraction = min(max((target - below) / c, 0.0), 1.0)
                        value = edges[b] * (edges[b + 1] / edges[b]) ** fraction
                        break
                    below += c
            values.append(value)
        out.append(values)
    return out


# sim/routing.py


def _ready_members(pool: int, pool_of_replica: np.ndarray, ready: np.ndarray) -> list[int]:
    """The ready replicas of one pool."""
    return [r for r in range(len(pool_of_replica)) if ready[r] and pool_of_replica[r] == pool]


def pools_with_ready(pool_of_replica: np.ndarray, ready: np.ndarray, pools: int) -> list[bool]:
    """Pool by pool, whether any of its replicas is ready."""
    return [bool(_ready_members(p, pool_of_replica, ready)) for p in range(pools)]


def water_fill(
    counts: np.ndarray,
    pool_of_replica: np.ndarray,
    ready: np.ndarray,
    cost: np.ndarray,
    slope: np.ndarray,
) -> tuple[list[float], list[int]]:
    """Each pool's count spread over its ready replicas so that cost + slope * arrivals is one
    level for those that get any, the level found by bisection; returns (arrivals, unroutable)."""
    arrivals = [0.0] * len(pool_of_replica)
    unroutable = [0] * len(counts)
    for p, count in enumerate(counts):
        pool = _ready_members(p, pool_of_replica, ready)
        if count == 0:
            continue
        if not pool:
            unroutable[p] = count
            continue
        low = min(cost[r] for r in pool)
        high = max(cost[r] for r in pool) + count * max(slope[r] for r in pool)
        for _ in range(200):
            middle = (low + high) / 2
            if sum(max(middle - cost[r], 0.0) / slope[r] for r in pool) < count:
                low = middle
            else:
                high = middle
        for r in pool:
            arrivals[r] = max(low - cost[r], 0.0) / slope[r]
    return arrivals, unroutable


def p2c(
    seed: int,
    counts: np.ndarray,
    pool_of_replica: np.ndarray,
    ready: np.ndarray,
    outstanding: np.ndarray,
    decisions_per_replica: int,
) -> tuple[list[float], list[int]]:
    """Power of two choices, one decision at a time, drawing from NumPy's legacy Mersenne
    Twister as numba's does; returns (arrivals, unroutable)."""
    draw = np.random.RandomState(seed)
    arrivals = [0.0] * len(pool_of_replica)
    unroutable = [0] * len(counts)
    for p, count in enumerate(counts):
        pool = _ready_members(p, pool_of_replica, ready)
        if count == 0:
            continue
        if not pool:
            unroutable[p] = count
            continue
        decisions = decisions_per_replica * len(pool)
        batch = -(-count // decisions)
        left = count
        while left > 0:
            i = draw.randint(0, len(pool))
            chosen = pool[i]
            if len(pool) > 1:
                others = pool[:i] + pool[i + 1 :]
                other = others[draw.randint(0, len(others))]
                if outstanding[other] + arrivals[other] < outstanding[chosen] + arrivals[chosen]:
                    chosen = other
            sent = min(batch, left)
            arrivals[chosen] += sent
            left -= sent
    return arrivals, unroutable


# sim/aggregate.py


def rack_totals(
    racks: int,
    rack: np.ndarray,
    healthy: np.ndarray,
    cordoned: np.ndarray,
    lost: np.ndarray,
    utilization: np.ndarray,
    temperature: np.ndarray,
    power: np.ndarray,
) -> dict[str, list[float]]:
    """Per-rack sums, means and maxima, one device at a time, lost devices' and NaN readings
    left out."""
    names = ("devices", "healthy", "cordoned", "lost", "reporting")
    out = {name: [0.0] * racks for name in names}
    sums, hottest, watts = [0.0] * racks, [0.0] * racks, [0.0] * racks
    for i, r in enumerate(rack):
        out["devices"][r] += 1
        out["healthy"][r] += float(healthy[i])
        out["cordoned"][r] += float(cordoned[i])
        out["lost"][r] += float(lost[i])
        if lost[i]:
            continue
        if not math.isnan(utilization[i]):
            sums[r] += float(utilization[i])
            out["reporting"][r] += 1
        if not math.isnan(temperature[i]):
            hottest[r] = max(hottest[r], float(temperature[i]))
        if not math.isnan(power[i]):
            watts[r] += float(power[i])
    out["utilization"] = [s / max(d, 1) for s, d in zip(sums, out["reporting"], strict=True)]
    out["temperature_c"] = hottest
    out["power_w"] = watts
    return out


# sim/world.py


def replica_gpus(
    devices: np.ndarray,
    clocks: np.ndarray,
    present: np.ndarray,
    kind: np.ndarray,
    max_clock: np.ndarray,
) -> tuple[list[float], list[bool]]:
    """Replica by replica: its slowest present clock over its kind's maximum, kept within
    0.05..1 (1 if no GPU reports a clock), and whether any GPU is missing."""
    factor, missing = [], []
    for row, k in zip(devices, kind, strict=True):
        gpus = [d for d in row if d >= 0]
        clocks_seen = [clocks[d] for d in gpus if present[d] and clocks[d] > 0]
        if clocks_seen:
            factor.append(min(max(min(clocks_seen) / max_clock[k], 0.05), 1.0))
        else:
            factor.append(1.0)
        missing.append(any(not present[d] for d in gpus))
    return factor, missing


def pool_totals(
    pools: int,
    pool: np.ndarray,
    ttft_slo: np.ndarray,
    itl_slo: np.ndarray,
    summed: dict[str, np.ndarray],
    ttft: np.ndarray,
    itl: np.ndarray,
) -> dict[str, list[float]]:
    """Replica by replica: counts, sums, and the last summed array over replicas within SLO."""
    out = {name: [0.0] * pools for name in ("replicas", *summed, "good")}
    last = list(summed)[-1]
    for r, g in enumerate(pool):
        if g < 0:
            continue
        out["replicas"][g] += 1
        for name, values in summed.items():
            out[name][g] += values[r]
        if ttft[r] <= ttft_slo[g] and itl[r] <= itl_slo[g]:
            out["good"][g] += summed[last][r]
    return out


# sim/health.py


def grew(values: np.ndarray, last: np.ndarray) -> list[bool]:
    """Where values rose above last, one device at a time; last takes the new values."""
    out = []
    for i in range(len(values)):
        out.append(bool(values[i] > last[i]))
        last[i] = values[i]
    return out


def scan_gpus(
    present: np.ndarray,
    node: np.ndarray,
    alive_nodes: np.ndarray,
    xid_count: np.ndarray,
    thermal: np.ndarray,
    samples: np.ndarray,
    last: dict[str, list[object]],
) -> tuple[list[int], list[int]]:
    """GPU by GPU: gone (1) when it stops reporting on a live node, shut down (8) instead when it
    was throttling, new XID (2) when the XID count rose, throttling (4) when the thermal
    counter starts rising in a new sample (without one, a GPU keeps its state); `last` is a
    dict of lists of what was seen before, updated."""
    rows, found = [], []
    for i in range(len(present)):
        gone = (not present[i]) and bool(alive_nodes[node[i]])
        if samples[i] != last["samples"][i]:
            throttling = thermal[i] > last["thermal"][i]
        else:
            throttling = last["throttling"][i]
        bits = 0
        if gone and not last["gone"][i]:
            bits += 8 if last["throttling"][i] else 1
        if xid_count[i] > last["xid"][i]:
            bits += 2
        if throttling and not last["throttling"][i]:
            bits += 4
        last["gone"][i], last["xid"][i] = gone, xid_count[i]
        last["thermal"][i], last["throttling"][i] = thermal[i], throttling
        last["samples"][i] = samples[i]
        if bits:
            rows.append(i)
            found.append(bits)
    return rows, found


# sim/liveness.py


def mark_lost_and_failed(
    states: np.ndarray,
    nodes: tuple[np.ndarray, np.ndarray, np.ndarray],
    gpus: tuple[np.ndarray, np.ndarray],
    silent_after: float,
    now: float,
    lost: int,
    failed: int,
) -> list[int]:
    """Node by node (`nodes` is alive, seen, interval), lost when its agent is gone or silent;
    then GPU by GPU (`gpus` is node, present), failed when it is missing from a node that is
    not lost; returns the states as a list."""
    alive, seen, interval = nodes
    gpu_node, gpu_present = gpus
    out = list(states)
    for n in range(len(out)):
        if not alive[n] or now - seen[n] > silent_after * interval[n]:
            out[n] = lost
    for g in range(len(gpu_node)):
        if not gpu_present[g] and out[gpu_node[g]] != lost:
            out[gpu_node[g]] = failed
    return out


# sim/pools.py


def promote_and_count(
    pool: np.ndarray, state: np.ndarray, ready_at: np.ndarray, now: float, pools: int
) -> tuple[list[int], list[int]]:
    """Replica by replica: a warming one whose time has come becomes ready (1); then counts of
    warming (0) and ready replicas per pool; returns (states, counts) as lists."""
    states = list(state)
    counts = [0] * pools
    for r in range(len(states)):
        if states[r] == 0 and ready_at[r] <= now:
            states[r] = 1
        if states[r] in (0, 1) and 0 <= pool[r] < pools:
            counts[pool[r]] += 1
    return states, counts
