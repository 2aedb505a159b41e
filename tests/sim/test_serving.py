"""The fluid serving model: its kernel against its twin, and queueing it must get right."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.serving import ReplicaParams, ReplicaState, TickResult, serve
from tests import naive


def params(n: int, **values: float) -> ReplicaParams:
    """Replicas of a 70B-class model on 8 GPUs, or whatever `values` says instead."""
    defaults = {
        "prompt_tokens": 1000.0,
        "output_tokens": 200.0,
        "prefill_s_per_token": 2e-5,
        "decode_fixed_s": 0.012,
        "decode_s_per_context_token": 3e-8,
        "decode_s_per_sequence": 1e-4,
        "kv_capacity_tokens": 500_000.0,
        "max_sequences": 256.0,
    }
    defaults.update(values)
    return ReplicaParams(**{k: np.full(n, v) for k, v in defaults.items()})


def run(p: ReplicaParams, rate: float, dt: float, ticks: int, seed: int = 0, warmup: int = 0):  # type: ignore[no-untyped-def]
    """Poisson arrivals at `rate` per second into every replica; per-tick results kept."""
    n = len(p.prompt_tokens)
    rng = np.random.default_rng(seed)
    state, result = ReplicaState.empty(n), TickResult.empty(n)
    up, clock = np.ones(n, bool), np.ones(n)
    kept = []
    for tick in range(ticks):
        arrivals = rng.poisson(rate * dt, n).astype(np.float64)
        serve(dt, arrivals, clock, up, np.arange(n), p, state, result)
        if tick >= warmup:
            kept.append((arrivals, *(getattr(result, f).copy() for f in vars(result))))
    return [np.array(column) for column in zip(*kept, strict=True)]


@pytest.mark.slow
@pytest.mark.needs_jit
@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_one_request_at_a_time_with_fixed_service_waits_as_md1(rho: float) -> None:
    service_s = 0.1
    p = params(400, prompt_tokens=100.0, output_tokens=0.0, prefill_s_per_token=service_s / 100)
    rate = rho / service_s
    arrivals, *_, ttft, _itl, _e2e, _kv = run(p, rate, dt=service_s / 20, ticks=20_000, warmup=2000)
    mean_wait = float((arrivals * (ttft - service_s)).sum() / arrivals.sum())
    md1 = rho * service_s / (2 * (1 - rho))
    assert mean_wait == pytest.approx(md1, rel=0.10)


def test_throughput_follows_load_then_saturates_and_latency_rises() -> None:
    p = params(20)
    throughput, ttft_p50 = [], []
    for rate in (2.0, 8.0, 16.0, 30.0, 60.0, 120.0):
        _arrivals, _adm, completed, *_rest, ttft, _itl, _e2e, _kv = run(
            p, rate, 0.05, 4000, warmup=2000
        )
        throughput.append(completed.sum() / (2000 * 0.05 * 20))
        ttft_p50.append(float(np.median(ttft)))
    assert throughput[0] == pytest.approx(2.0, rel=0.05)
    assert all(b >= a * 0.98 for a, b in itertools.pairwise(throughput))
    assert throughput[-1] == pytest.approx(throughput[-2], rel=0.05), "no plateau at capacity"
    assert throughput[-1] < 60.0
    assert all(b >= a for a, b in itertools.pairwise(ttft_p50))
    assert ttft_p50[-1] > 10 * ttft_p50[0]


def test_the_kv_cache_bounds_the_batch() -> None:
    p = params(5, kv_capacity_tokens=20_000.0)
    *_, kv = run(p, 200.0, 0.05, 400)
    assert kv.max() <= 1.0 + 1e-9
    assert kv.max() > 0.9


def test_a_throttled_replica_serves_less_and_slower() -> None:
    p = params(2, decode_s_per_sequence=5e-4)
    state, result = ReplicaState.empty(2), TickResult.empty(2)
    for _ in range(400):
        serve(
            0.05,
            np.array([20.0 * 0.05] * 2),
            np.array([1.0, 0.5]),
            np.ones(2, bool),
            np.arange(2),
            p,
            state,
            result,
        )
    assert result.itl_s[1] > result.itl_s[0]
    assert result.ttft_s[1] > result.ttft_s[0]


def test_a_replica_that_is_down_does_nothing() -> None:
    p = params(2)
    state, result = ReplicaState.empty(2), TickResult.empty(2)
    serve(
        1.0,
        np.array([5.0, 5.0]),
        np.ones(2),
        np.array([True, False]),
        np.arange(2),
        p,
        state,
        result,
    )
    assert result.admitted[0] > 0
    assert result.admitted[1] == 0
    assert state.waiting[1] == 0


def test_bad_input_is_refused() -> None:
    p = params(2)
    state, result = ReplicaState.empty(2), TickResult.empty(2)
    with pytest.raises(ValueError, match="dt must be above 0"):
        serve(0.0, np.zeros(2), np.ones(2), np.ones(2, bool), np.arange(2), p, state, result)
    with pytest.raises(ValueError, match="shape"):
        serve(1.0, np.zeros(3), np.ones(2), np.ones(2, bool), np.arange(2), p, state, result)
    with pytest.raises(ValueError, match="clock factors"):
        serve(1.0, np.zeros(2), np.zeros(2), np.ones(2, bool), np.arange(2), p, state, result)
    with pytest.raises(ValueError, match=r"kinds must lie in 0\.\.1"):
        serve(1.0, np.zeros(2), np.ones(2), np.ones(2, bool), np.array([0, 2]), p, state, result)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**31), st.floats(0.01, 2.0))
def test_the_kernel_equals_its_naive_twin(n: int, seed: int, dt: float) -> None:
    rng = np.random.default_rng(seed)
    kinds = 3
    p = params(kinds)
    p.prompt_tokens[:] = rng.uniform(10, 4000, kinds)
    p.output_tokens[:] = rng.choice([0.0, 50.0, 500.0], kinds)
    p.kv_capacity_tokens[:] = rng.uniform(1e3, 1e6, kinds)
    p.max_sequences[:] = rng.integers(1, 300, kinds)
    kind = rng.integers(0, kinds, n)
    states = [ReplicaState.empty(n), ReplicaState.empty(n)]
    results = [TickResult.empty(n), TickResult.empty(n)]
    up = rng.random(n) > 0.2
    for _ in range(5):
        arrivals = rng.poisson(20 * dt, n).astype(np.float64)
        clock = rng.uniform(0.3, 1.0, n)
        serve(dt, arrivals, clock, up, kind, p, states[0], results[0])
        naive.serve(dt, arrivals, clock, up, kind, p, states[1], results[1])
        for name in vars(results[0]):
            np.testing.assert_allclose(
                getattr(results[0], name), getattr(results[1], name), rtol=1e-9, atol=1e-12
            )
        for name in vars(states[0]):
            np.testing.assert_allclose(
                getattr(states[0], name), getattr(states[1], name), rtol=1e-9, atol=1e-12
            )


def test_a_replica_that_stops_throttling_serves_its_queue_at_full_speed_again() -> None:
    p = params(2)
    state, result = ReplicaState.empty(2), TickResult.empty(2)
    up, kind = np.ones(2, bool), np.arange(2)
    # both queue the same requests; replica 1 does so at a tenth of its clock
    serve(1.0, np.array([50.0, 50.0]), np.array([1.0, 0.1]), up, kind, p, state, result)
    for _ in range(3):  # then both run at full clock
        serve(1.0, np.zeros(2), np.ones(2), up, kind, p, state, result)
    np.testing.assert_allclose(state.backlog_s, state.waiting * 1000.0 * 2e-5)
    assert result.ttft_s[1] < 2 * result.ttft_s[0] + 0.1, "no slow work left over"
