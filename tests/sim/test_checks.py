"""The one-pass array checks agree with numpy's comparisons, NaN and infinities included."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sim.checks import LARGEST, all_above, all_within

SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -1.0, LARGEST])
VALUES = st.lists(st.floats(allow_nan=True, allow_infinity=True) | SPECIAL, max_size=50)


@given(VALUES, st.floats(-10, 10), st.floats(-10, 10))
def test_all_within_agrees_with_numpy(values: list[float], low: float, high: float) -> None:
    array = np.array(values, np.float64)
    assert all_within(array, low, high) == bool(((array >= low) & (array <= high)).all())


@given(VALUES, st.floats(-10, 10))
def test_all_above_agrees_with_numpy(values: list[float], low: float) -> None:
    array = np.array(values, np.float64)
    assert all_above(array, low) == bool(((array > low) & np.isfinite(array)).all())


def test_finite_and_at_least_zero() -> None:
    assert all_within(np.array([0.0, 1.0, LARGEST]), 0.0, LARGEST)
    for bad in (np.inf, np.nan, -1e-12):
        assert not all_within(np.array([0.0, bad]), 0.0, LARGEST)


def test_integer_bounds() -> None:
    kinds = np.array([0, 3, 2], np.int32)
    assert all_within(kinds, 0, 3)
    assert not all_within(kinds, 0, 2)
