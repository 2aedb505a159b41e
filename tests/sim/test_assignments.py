"""The assigner's change detection: its kernel against a slow twin."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.assignments import ABSOLUTE_CHANGE, mark_moved
from tests import naive


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**31))
def test_the_moved_kernel_equals_its_naive_twin(devices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    last = rng.random(devices).astype(np.float32)
    last[rng.random(devices) < 0.1] = np.nan
    new = last.astype(np.float64) + rng.choice([0.0, ABSOLUTE_CHANGE / 2, 0.05, -0.3], devices)
    rows = rng.permutation(devices)[: max(1, devices // 2)].astype(np.intp)
    fast = np.zeros(rows.size, np.bool_)
    slow = np.zeros(rows.size, np.bool_)
    mark_moved(fast, rows, new, last)
    naive.mark_moved(slow, rows, new, last)
    np.testing.assert_array_equal(fast, slow)


def test_a_load_is_flagged_past_the_threshold_or_when_never_sent() -> None:
    last = np.array([0.5, 0.5, np.nan, 0.0], np.float32)
    new = np.array([0.5, 0.6, 0.5, ABSOLUTE_CHANGE / 2])
    flags = np.zeros(4, np.bool_)
    mark_moved(flags, np.arange(4), new, last)
    assert flags.tolist() == [False, True, True, False]
