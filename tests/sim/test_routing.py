"""Routing: weighted splits across pools, and each policy inside a pool against its twin."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.routing import (
    BLOCK_TOKENS,
    P2C_DECISIONS_PER_REPLICA,
    POLICIES,
    Policy,
    pools_with_ready,
    route,
    split_by_weights,
)
from tests import naive


def idle(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Waiting and running of `n` idle replicas."""
    return np.zeros(n), np.zeros(n)


def test_a_70_30_route_splits_70_30() -> None:
    rng = np.random.default_rng(0)
    per_pool, unroutable = split_by_weights([1_000_000], [[70.0, 30.0]], rng)
    assert per_pool.sum() == 1_000_000
    assert unroutable.tolist() == [0]
    assert abs(per_pool[0] - 700_000) < 4 * math.sqrt(1_000_000 * 0.7 * 0.3)


def test_splits_follow_the_weights_by_chi_square_over_many_draws() -> None:
    rng = np.random.default_rng(1)
    shares = np.array([50.0, 30.0, 20.0])
    draws, n = 2000, 100
    statistic = 0.0
    for _ in range(draws):
        per_pool, _ = split_by_weights([n], [shares], rng)
        expected = n * shares / 100
        statistic += float(((per_pool - expected) ** 2 / expected).sum())
    dof = draws * (shares.size - 1)
    assert abs(statistic - dof) < 4 * math.sqrt(2 * dof)


def test_models_add_up_in_shared_pools_and_a_model_with_no_route_is_unroutable() -> None:
    weights = [[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 25.0, 75.0]]
    per_pool, unroutable = split_by_weights([40, 7, 400], weights, np.random.default_rng(2))
    assert per_pool[0] == 40
    assert per_pool[1:].sum() == 400
    assert unroutable.tolist() == [0, 7, 0]


def test_bad_weights_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="sum to 100"):
        split_by_weights([5], [[60.0, 30.0]], rng)
    with pytest.raises(ValueError, match="at least 0"):
        split_by_weights([5], [[130.0, -30.0]], rng)
    with pytest.raises(ValueError, match="shape"):
        split_by_weights([5, 5], [[100.0]], rng)
    with pytest.raises(ValueError, match="integers"):
        split_by_weights([5.5], [[100.0]], rng)


def test_least_outstanding_levels_waiting_plus_running_and_skips_replicas_not_ready() -> None:
    rng = np.random.default_rng(3)
    n = 200
    pools = rng.integers(-1, 3, n)
    ready = rng.random(n) > 0.2
    waiting, running = rng.uniform(0, 10, n), rng.uniform(0, 40, n)
    counts = np.array([500, 3, 0])
    arrivals, unroutable = route("least_outstanding", counts, pools, ready, waiting, running, rng)
    assert unroutable.tolist() == [0, 0, 0]
    assert arrivals[~ready | (pools < 0) | (pools == 2)].max() == 0
    load = waiting + running + arrivals
    for p in (0, 1):
        members = ready & (pools == p)
        assert arrivals[members].sum() == pytest.approx(counts[p])
        fed = members & (arrivals > 0)
        level = load[fed].mean()
        np.testing.assert_allclose(load[fed], level, rtol=1e-12)
        assert load[members & ~fed].min() >= level - 1e-9


def test_p2c_prefers_the_less_loaded_replicas() -> None:
    n = 100
    waiting, running = np.zeros(n), np.where(np.arange(n) < 50, 0.0, 50.0)
    arrivals, _ = route(
        "p2c",
        [100],
        np.zeros(n, np.int64),
        np.ones(n, bool),
        waiting,
        running,
        np.random.default_rng(4),
    )
    assert arrivals.sum() == 100
    assert np.array_equal(arrivals, np.round(arrivals))
    # A loaded replica wins only when both choices are loaded: about a quarter of the time.
    assert arrivals[50:].sum() < 35


def test_p2c_between_two_replicas_always_picks_the_less_loaded() -> None:
    arrivals, _ = route(
        "p2c", [4], [0, 0], np.ones(2, bool), [0.0, 0.0], [10.0, 0.0], np.random.default_rng(5)
    )
    assert arrivals.tolist() == [0.0, 4.0]


def test_kv_aware_sends_new_work_where_kv_pressure_is_lower() -> None:
    one_pool, ready = np.zeros(2, np.int64), np.ones(2, bool)
    prompt = np.full(2, 1600.0)
    # Same requests outstanding, but the second replica's sequences hold four times the context.
    waiting, running = np.array([2.0, 2.0]), np.array([50.0, 50.0])
    context = np.array([1000.0, 4000.0])
    rng = np.random.default_rng(6)
    arrivals, _ = route(
        "kv_aware",
        [20],
        one_pool,
        ready,
        waiting,
        running,
        rng,
        prompt_tokens=prompt,
        context_tokens=context,
    )
    assert arrivals.tolist() == [20.0, 0.0]
    least, _ = route("least_outstanding", [20], one_pool, ready, waiting, running, rng)
    assert least.tolist() == [10.0, 10.0]


@pytest.mark.parametrize(("weight", "favoured"), [(4.0, 1), (0.25, 0)])
def test_the_prefill_weight_trades_prefill_against_decode_pressure(
    weight: float, favoured: int
) -> None:
    # Replica 0 has prompts waiting (prefill pressure), replica 1 long decodes; equal blocks.
    waiting, running = np.array([10.0, 0.0]), np.array([0.0, 10.0])
    arrivals, _ = route(
        "kv_aware",
        [1],
        [0, 0],
        np.ones(2, bool),
        waiting,
        running,
        np.random.default_rng(7),
        prompt_tokens=np.full(2, 1000.0),
        context_tokens=np.full(2, 1000.0),
        prefill_weight=weight,
    )
    assert arrivals[favoured] == pytest.approx(1.0)


@pytest.mark.parametrize("policy", POLICIES)
def test_requests_for_a_pool_with_no_ready_replica_are_unroutable(policy: Policy) -> None:
    pools, ready = np.array([0, 0, 1, -1]), np.array([False, False, True, True])
    arrivals, unroutable = route(
        policy,
        [12, 5],
        pools,
        ready,
        *idle(4),
        np.random.default_rng(8),
        prompt_tokens=np.full(4, 100.0),
        context_tokens=np.full(4, 150.0),
    )
    assert unroutable.tolist() == [12, 0]
    assert arrivals.tolist() == [0.0, 0.0, 5.0, 0.0]


@pytest.mark.parametrize("policy", POLICIES)
def test_routing_is_deterministic_from_the_generator(policy: Policy) -> None:
    rng = np.random.default_rng(9)
    n = 500
    inputs = (
        rng.integers(0, 200, 4),
        rng.integers(-1, 4, n),
        rng.random(n) > 0.1,
        rng.uniform(0, 5, n),
        rng.uniform(0, 50, n),
    )
    prompt, context = rng.uniform(100, 4000, n), rng.uniform(0, 8000, n)
    first, again = (
        route(
            policy,
            *inputs,
            np.random.default_rng(10),
            prompt_tokens=prompt,
            context_tokens=context,
        )
        for _ in range(2)
    )
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_bad_routing_input_is_refused() -> None:
    rng = np.random.default_rng(0)
    ok = ([3], [0, 0], np.ones(2, bool), *idle(2), rng)
    with pytest.raises(ValueError, match="policy must be one of"):
        route("random", *ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"pool_of_replica must lie in -1\.\.0"):
        route("p2c", [3], [0, 1], np.ones(2, bool), *idle(2), rng)
    with pytest.raises(ValueError, match="ready must be booleans"):
        route("p2c", [3], [0, 0], np.ones(2), *idle(2), rng)
    with pytest.raises(ValueError, match="waiting must be real numbers of shape"):
        route("p2c", [3], [0, 0], np.ones(2, bool), np.zeros(3), np.zeros(2), rng)
    with pytest.raises(ValueError, match="running must be finite"):
        route("p2c", [3], [0, 0], np.ones(2, bool), np.zeros(2), np.array([0, -1.0]), rng)
    with pytest.raises(ValueError, match="counts_per_pool must lie"):
        route("least_outstanding", [-3], [0, 0], np.ones(2, bool), *idle(2), rng)
    with pytest.raises(ValueError, match="needs prompt_tokens"):
        route("kv_aware", *ok)
    with pytest.raises(ValueError, match="prompt_tokens must be above 0"):
        route("kv_aware", *ok, prompt_tokens=np.zeros(2), context_tokens=np.zeros(2))
    with pytest.raises(ValueError, match="prefill_weight"):
        route(
            "kv_aware",
            *ok,
            prompt_tokens=np.ones(2),
            context_tokens=np.zeros(2),
            prefill_weight=0.0,
        )


def random_fleet(seed: int, n: int, pools: int) -> dict[str, np.ndarray]:
    """Replicas in pools (or none), some not ready, with load; and requests per pool."""
    rng = np.random.default_rng(seed)
    return {
        "counts": rng.integers(0, 8 * n // pools + 2, pools) * (rng.random(pools) > 0.2),
        "pools": rng.integers(-1, pools, n),
        "ready": rng.random(n) > 0.3,
        "waiting": rng.uniform(0, 20, n) * (rng.random(n) > 0.3),
        "running": rng.uniform(0, 100, n),
        "prompt": rng.uniform(10, 8000, n),
        "context": rng.uniform(10, 16000, n),
    }


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 5), st.floats(0.1, 10.0))
def test_water_filling_equals_its_naive_twin(seed: int, n: int, pools: int, weight: float) -> None:
    f = random_fleet(seed, n, pools)
    args = (f["counts"], f["pools"], f["ready"], f["waiting"], f["running"])
    rng = np.random.default_rng(seed)
    least = route("least_outstanding", *args, rng)
    twin = naive.water_fill(*args[:3], f["waiting"] + f["running"], np.ones(n))
    kv = route(
        "kv_aware",
        *args,
        rng,
        prompt_tokens=f["prompt"],
        context_tokens=f["context"],
        prefill_weight=weight,
    )
    cost = (weight * f["waiting"] * f["prompt"] + f["running"] * f["context"]) / BLOCK_TOKENS
    kv_twin = naive.water_fill(*args[:3], cost, weight * f["prompt"] / BLOCK_TOKENS)
    for (arrivals, unroutable), (twin_arrivals, twin_unroutable) in ((least, twin), (kv, kv_twin)):
        np.testing.assert_allclose(arrivals, twin_arrivals, rtol=1e-9, atol=1e-9)
        assert unroutable.tolist() == twin_unroutable
        assert arrivals.sum() + unroutable.sum() == pytest.approx(f["counts"].sum())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 5))
def test_pools_with_ready_equals_its_naive_twin(seed: int, n: int, pools: int) -> None:
    f = random_fleet(seed, n, pools)
    found = pools_with_ready(f["pools"], f["ready"], pools)
    assert found.tolist() == naive.pools_with_ready(f["pools"], f["ready"], pools)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 5))
def test_p2c_equals_its_naive_twin_for_the_same_seed(seed: int, n: int, pools: int) -> None:
    f = random_fleet(seed, n, pools)
    args = (f["counts"], f["pools"], f["ready"])
    arrivals, unroutable = route(
        "p2c", *args, f["waiting"], f["running"], np.random.default_rng(seed)
    )
    numba_seed = int(np.random.default_rng(seed).integers(2**32))
    outstanding = f["waiting"] + f["running"]
    twin = naive.p2c(numba_seed, *args, outstanding, P2C_DECISIONS_PER_REPLICA)
    assert arrivals.tolist() == twin[0]
    assert unroutable.tolist() == twin[1]
    assert arrivals.sum() + unroutable.sum() == f["counts"].sum()
