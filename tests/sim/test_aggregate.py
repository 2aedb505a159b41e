"""Rack and pool aggregates: the kernel against its twin, and input checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.aggregate import pool_totals, rack_totals
from tests import naive


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(0, 300), st.integers(0, 2**31))
def test_the_kernel_equals_its_naive_twin(racks: int, devices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    silent = rng.random(devices) > 0.9
    readings = (
        np.where(silent, np.nan, rng.uniform(low, high, devices)).astype(np.float32)
        for low, high in ((0, 100), (20, 95), (50, 1200))
    )
    args = (
        rng.integers(0, racks, devices),
        rng.random(devices) > 0.2,
        rng.random(devices) > 0.8,
        silent,
        *readings,
    )
    fast = rack_totals(racks, *args)
    slow = naive.rack_totals(racks, *args)
    for name, values in slow.items():
        np.testing.assert_allclose(fast[name], values, rtol=1e-6)


def test_bad_input_is_refused() -> None:
    ok = np.ones(3, bool)
    values = np.ones(3)
    with pytest.raises(ValueError, match="rack indices"):
        rack_totals(2, np.array([0, 1, 2]), ok, ok, ok, values, values, values)
    with pytest.raises(ValueError, match="shape"):
        rack_totals(2, np.array([0, 1, 1]), ok[:2], ok, ok, values, values, values)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(0, 200), st.integers(0, 2**31))
def test_pool_totals_equal_the_naive_twin(pools: int, replicas: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool = rng.integers(-1, pools, replicas)
    slos = rng.uniform(0.1, 1.0, pools), rng.uniform(0.01, 0.1, pools)
    summed = {"arrivals": rng.uniform(0, 5, replicas), "completed": rng.uniform(0, 5, replicas)}
    ttft, itl = rng.uniform(0.0, 1.0, replicas), rng.uniform(0.0, 0.1, replicas)
    fast = pool_totals(pools, pool, *slos, summed, ttft, itl)
    slow = naive.pool_totals(pools, pool, *slos, summed, ttft, itl)
    assert set(fast) == set(slow) == {"replicas", "arrivals", "completed", "good"}
    for name, values in slow.items():
        np.testing.assert_allclose(fast[name], values, rtol=1e-12)


def test_pool_totals_refuse_bad_input() -> None:
    one = np.ones(2)
    with pytest.raises(ValueError, match="pool indices"):
        pool_totals(1, np.array([0, 1]), one[:1], one[:1], {"x": one}, one, one)
    with pytest.raises(ValueError, match="float64 of shape"):
        pool_totals(1, np.array([0, 0]), one[:1], one[:1], {"x": one[:1]}, one, one)
    with pytest.raises(ValueError, match="at least one"):
        pool_totals(1, np.array([0, 0]), one[:1], one[:1], {}, one, one)
