"""Rack and pool aggregates: the kernel against its twin, and input checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.aggregate import MEASURED, merge_rack_totals, pool_totals, rack_totals
from tests import naive


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(0, 300), st.integers(0, 2**31))
def test_the_kernel_equals_its_naive_twin(racks: int, devices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    silent = rng.random(devices) > 0.9
    utilization, temperature, power = (
        np.where(silent, np.nan, rng.uniform(low, high, devices)).astype(np.float32)
        for low, high in ((0, 100), (20, 95), (50, 1200))
    )
    args = (
        rng.integers(0, racks, devices),
        rng.random(devices) > 0.2,
        rng.random(devices) > 0.8,
        silent,
        utilization,
        temperature,
        power,
    )
    fast = rack_totals(racks, *args)
    slow = naive.rack_totals(racks, *args)
    for name, values in slow.items():
        np.testing.assert_allclose(fast[name], values, rtol=1e-6)


def random_devices(rng: np.random.Generator, racks: int, devices: int) -> tuple[np.ndarray, ...]:
    return (
        rng.integers(0, racks, devices),
        rng.random(devices) > 0.2,
        rng.random(devices) > 0.8,
        rng.random(devices) > 0.9,
        rng.uniform(0, 100, devices),
        rng.uniform(20, 95, devices),
        rng.uniform(50, 1200, devices),
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(0, 40), st.integers(0, 40), st.integers(0, 2**31))
def test_merged_kinds_total_as_one_kind(racks: int, gpus: int, chips: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = random_devices(rng, racks, gpus), random_devices(rng, racks, chips)
    merged = merge_rack_totals(rack_totals(racks, *a), rack_totals(racks, *b))
    whole = rack_totals(racks, *(np.concatenate(pair) for pair in zip(a, b, strict=True)))
    read = whole["reporting"] > 0
    for name, values in whole.items():
        some = read if name in MEASURED else whole["devices"] > 0
        np.testing.assert_allclose(merged[name][some], values[some], rtol=1e-12, err_msg=name)
    assert np.isnan(merged["temperature_c"][~read]).all(), "no device reports: nothing measured"
    assert np.isnan(merged["power_w"][~read]).all()


def test_a_kind_that_measures_no_temperature_or_power_leaves_them_to_the_others() -> None:
    yes, no = np.ones(2, bool), np.zeros(2, bool)
    rack, values = np.array([0, 1]), np.array([10.0, 30.0])
    gpu = rack_totals(
        2, rack[:1], yes[:1], no[:1], no[:1], 50 + values[:1], 60 + values[:1], values[:1]
    )
    switch = rack_totals(2, rack, yes, no, no, values, values, values)
    switch["temperature_c"] = switch["power_w"] = np.full(2, np.nan)
    merged = merge_rack_totals(gpu, switch)
    assert merged["devices"].tolist() == [2, 1]
    assert merged["utilization"].tolist() == [35, 30]
    assert merged["temperature_c"][0] == 70
    assert np.isnan(merged["temperature_c"][1])
    assert merged["power_w"][0] == 10
    assert np.isnan(merged["power_w"][1])


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
