"""Latency histograms: kernels against their naive twins, percentile accuracy, edge cases."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.histogram import BIN_COUNT, HIGH_S, LOW_S, RELATIVE_WIDTH, Histograms, bin_edges
from tests import naive

EDGES = bin_edges()
QS = (0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0)

latencies = st.one_of(
    st.floats(0.0, 2 * HIGH_S),
    st.floats(0.0, 2 * LOW_S),
    st.sampled_from(EDGES.tolist()),
)


def observations(
    entities: int, size: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Entity indices, log-uniform latencies spilling over both ends of the range, weights."""
    rng = np.random.default_rng(seed)
    entity = rng.integers(0, entities, size)
    value_s = np.exp(rng.uniform(np.log(LOW_S / 10), np.log(HIGH_S * 10), size))
    weight = rng.uniform(0.0, 3.0, size)
    return entity, value_s, weight


def naive_add(
    entities: int, entity: np.ndarray, value_s: np.ndarray, weight: np.ndarray
) -> Histograms:
    slow = Histograms(entities)
    naive.histogram_add(slow.counts, slow.sum_s, EDGES, entity, value_s, weight)
    return slow


def test_the_bins_span_the_range_in_equal_ratios() -> None:
    assert EDGES.shape == (BIN_COUNT + 1,)
    assert EDGES[0] == LOW_S
    assert EDGES[-1] == HIGH_S
    np.testing.assert_allclose(EDGES[1:] / EDGES[:-1], 1 + RELATIVE_WIDTH, rtol=1e-12)
    assert 200 <= BIN_COUNT <= 400
    assert 0.04 < RELATIVE_WIDTH <= 0.05


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.tuples(st.integers(0, 7), latencies, st.floats(0.0, 5.0)), max_size=60),
)
def test_add_equals_its_naive_twin(entities: int, rows: list[tuple[int, float, float]]) -> None:
    entity = np.array([e % entities for e, _, _ in rows], np.int64)
    value_s = np.array([v for _, v, _ in rows])
    weight = np.array([w for _, _, w in rows])
    fast = Histograms(entities)
    fast.add(entity, value_s, weight)
    slow = naive_add(entities, entity, value_s, weight)
    np.testing.assert_allclose(fast.counts, slow.counts, rtol=1e-12)
    np.testing.assert_allclose(fast.sum_s, slow.sum_s, rtol=1e-12)


def test_every_edge_and_its_neighbours_land_in_the_twins_bin() -> None:
    """The kernel finds bins from the float's bits; right at the edges it must still agree."""
    value_s = np.concatenate([EDGES, np.nextafter(EDGES, 0.0), np.nextafter(EDGES, np.inf)])
    entity = np.arange(value_s.size) % 2
    fast = Histograms(2)
    fast.add(entity, value_s)
    slow = naive_add(2, entity, value_s, np.ones(value_s.size))
    np.testing.assert_allclose(fast.counts, slow.counts, rtol=1e-12)


@pytest.mark.parametrize(("entities", "size", "seed"), [(1, 1, 0), (3, 500, 1), (50, 5_000, 2)])
def test_add_per_entity_and_scalar_weights_equal_the_naive_twin(
    entities: int, size: int, seed: int
) -> None:
    entity, value_s, weight = observations(entities, size, seed)
    fast = Histograms(entities)
    fast.add(entity, value_s)
    fast.add_per_entity(value_s[:entities], weight[:entities])
    slow = naive_add(entities, entity, value_s, np.ones(size))
    naive.histogram_add(
        slow.counts, slow.sum_s, EDGES, range(entities), value_s[:entities], weight[:entities]
    )
    np.testing.assert_allclose(fast.counts, slow.counts, rtol=1e-12)
    np.testing.assert_allclose(fast.sum_s, slow.sum_s, rtol=1e-12)


@pytest.mark.parametrize(
    ("entities", "groups", "seed"), [(1, 1, 0), (10, 3, 1), (200, 17, 2), (40, 60, 3)]
)
def test_groupby_sum_equals_its_naive_twin(entities: int, groups: int, seed: int) -> None:
    hist = Histograms(entities)
    hist.add(*observations(entities, 20 * entities, seed))
    group = np.random.default_rng(seed).integers(-1, groups, entities)
    grouped = hist.groupby_sum(group, groups)
    counts, sum_s = naive.histogram_groupby_sum(hist.counts, hist.sum_s, group, groups)
    np.testing.assert_array_equal(grouped.counts, counts)
    np.testing.assert_array_equal(grouped.sum_s, sum_s)
    assert len(grouped) == groups


def test_groupby_sum_adds_up_pools_and_leaves_out_the_unassigned() -> None:
    replicas = Histograms(4)
    replicas.add([0, 1, 2, 3, 3], [0.01, 0.1, 1.0, 10.0, 10.0])
    pools = replicas.groupby_sum([1, 1, -1, 0], 3)
    np.testing.assert_array_equal(pools.total(), [2.0, 2.0, 0.0])
    np.testing.assert_allclose(pools.mean_s(), [10.0, 0.055, np.nan])
    np.testing.assert_array_equal(pools.counts[1], replicas.counts[0] + replicas.counts[1])
    fleet = pools.groupby_sum(np.zeros(3, np.int64), 1)
    assert fleet.total().tolist() == [4.0]


sparse_rows = st.dictionaries(st.integers(0, BIN_COUNT - 1), st.floats(0.0, 1e6), max_size=12)


@settings(max_examples=80, deadline=None)
@given(st.lists(sparse_rows, min_size=1, max_size=6), st.lists(st.floats(0.0, 1.0), max_size=6))
def test_percentiles_equal_their_naive_twin(rows: list[dict[int, float]], qs: list[float]) -> None:
    hist = Histograms(len(rows))
    for row, bins in enumerate(rows):
        for b, count in bins.items():
            hist.counts[row, b] = count
    fast = hist.percentiles(qs)
    slow = naive.histogram_percentiles(hist.counts, EDGES, qs)
    assert fast.shape == (len(rows), len(qs))
    np.testing.assert_allclose(fast, np.array(slow).reshape(fast.shape), rtol=1e-12)


@pytest.mark.parametrize(("entities", "seed"), [(1, 0), (7, 1), (300, 2)])
def test_percentiles_of_sparse_random_rows_equal_the_naive_twin(entities: int, seed: int) -> None:
    hist = Histograms(entities)
    hist.add(*observations(entities, 30 * entities, seed))
    hist.counts[::5] = 0.0
    np.testing.assert_allclose(
        hist.percentiles(QS), naive.histogram_percentiles(hist.counts, EDGES, QS), rtol=1e-12
    )


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.exponential(0.2, 100_000),
        lambda rng: rng.lognormal(np.log(0.5), 1.0, 100_000),
        lambda rng: rng.lognormal(np.log(0.02), 0.3, 100_000),
    ],
    ids=["exponential", "lognormal", "narrow-lognormal"],
)
def test_percentiles_are_within_a_bin_width_of_the_exact_ones(
    draw: Callable[[np.random.Generator], npt.NDArray[np.float64]],
) -> None:
    samples = draw(np.random.default_rng(42))
    hist = Histograms(1)
    hist.add(np.zeros(samples.size, np.int64), samples)
    estimate = hist.percentiles((0.5, 0.9, 0.99))[0]
    exact = np.percentile(samples, [50, 90, 99])
    np.testing.assert_allclose(estimate, exact, rtol=RELATIVE_WIDTH)
    assert hist.mean_s()[0] == pytest.approx(samples.mean(), rel=1e-12)


def test_an_empty_histogram_has_nan_percentiles_and_mean() -> None:
    hist = Histograms(3)
    hist.add([1], [0.25])
    assert np.isnan(hist.percentiles()[[0, 2]]).all()
    assert np.isfinite(hist.percentiles()[1]).all()
    assert np.isnan(hist.mean_s()[[0, 2]]).all()
    assert hist.total().tolist() == [0.0, 1.0, 0.0]
    assert Histograms(0).percentiles().shape == (0, 3)


def test_a_single_value_stays_inside_its_bin() -> None:
    hist = Histograms(1)
    hist.add([0, 0, 0], [0.25, 0.25, 0.25])
    b = np.searchsorted(EDGES, 0.25, side="right") - 1
    p = hist.percentiles(QS)[0]
    assert (p >= EDGES[b]).all()
    assert (p <= EDGES[b + 1]).all()
    assert p[0] == EDGES[b]
    assert p[-1] == EDGES[b + 1]
    assert hist.mean_s()[0] == pytest.approx(0.25)


def test_values_outside_the_range_count_in_the_end_bins_and_keep_their_mean() -> None:
    hist = Histograms(2)
    hist.add([0, 0, 1, 1], [0.0, LOW_S / 100, HIGH_S, 1e6])
    assert hist.counts[0, 0] == 2.0
    assert hist.counts[1, -1] == 2.0
    assert hist.total().tolist() == [2.0, 2.0]
    p = hist.percentiles((0.0, 0.5, 1.0))
    assert (p[0] >= LOW_S).all()
    assert (p[1] <= HIGH_S).all()
    assert p[1, -1] == HIGH_S
    assert hist.mean_s().tolist() == pytest.approx([LOW_S / 200, (HIGH_S + 1e6) / 2])


def test_add_per_entity_counts_a_fluid_tick() -> None:
    hist = Histograms(3)
    hist.add_per_entity([0.1, 2.0, 30.0], [10.0, 0.0, 2.5])
    assert hist.total().tolist() == [10.0, 0.0, 2.5]
    assert hist.mean_s()[0] == pytest.approx(0.1)
    assert np.isnan(hist.mean_s()[1])
    hist.add_per_entity(0.5, 1)
    assert hist.total().tolist() == [11.0, 1.0, 3.5]


def test_decay_is_an_exponential_window_and_clear_forgets() -> None:
    hist = Histograms(2)
    hist.add([0, 1], [0.1, 1.0], [4.0, 8.0])
    before = hist.percentiles()
    hist.decay(0.5)
    assert hist.total().tolist() == [2.0, 4.0]
    np.testing.assert_array_equal(hist.percentiles(), before)
    np.testing.assert_allclose(hist.mean_s(), [0.1, 1.0])
    hist.clear()
    assert hist.total().tolist() == [0.0, 0.0]
    assert np.isnan(hist.percentiles()).all()


def test_a_recent_slowdown_dominates_a_decayed_window() -> None:
    hist = Histograms(1)
    for _ in range(100):
        hist.decay(0.9)
        hist.add_per_entity(0.05, 100.0)
    for _ in range(30):
        hist.decay(0.9)
        hist.add_per_entity(2.0, 100.0)
    assert hist.percentiles((0.5,))[0, 0] == pytest.approx(2.0, rel=RELATIVE_WIDTH)


def test_resize_keeps_the_data_of_the_entities_it_keeps() -> None:
    hist = Histograms(2)
    hist.add([0, 1], [0.1, 1.0])
    hist.resize(5)
    assert hist.counts.shape == (5, BIN_COUNT)
    assert hist.total().tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    hist.add([4], [3.0])
    hist.resize(1)
    assert hist.total().tolist() == [1.0]
    assert hist.mean_s().tolist() == pytest.approx([0.1])
    hist.resize(3)
    assert hist.total().tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.add([0, 3], [0.1, 0.1]), "entity must lie in 0..2"),
        (lambda h: h.add([-1], [0.1]), "entity must lie in 0..2"),
        (lambda h: h.add([0.0], [0.1]), "entity must hold integers"),
        (lambda h: h.add([[0]], [0.1]), "entity must be a 1-D array"),
        (lambda h: h.add([0, 1], [0.1]), r"value_s must be a scalar or have shape \(2,\)"),
        (lambda h: h.add([0], [np.nan]), "value_s must be finite and non-negative"),
        (lambda h: h.add([0], [-0.1]), "value_s must be finite and non-negative"),
        (lambda h: h.add([0], ["fast"]), "value_s must hold real numbers"),
        (lambda h: h.add([0], [0.1], [-1.0]), "weight must be finite and non-negative"),
        (lambda h: h.add([0], [0.1], [np.inf]), "weight must be finite and non-negative"),
        (lambda h: h.add_per_entity([0.1], 1.0), r"value_s must be a scalar or have shape \(3,\)"),
        (lambda h: h.groupby_sum([0, 1], 2), "must name a group for each of the 3 entities"),
        (lambda h: h.groupby_sum([0, 1, 2], 2), "group_of_entity must lie in 0..1"),
        (lambda h: h.groupby_sum([0, 1, 1], -1), "n_groups must be a non-negative integer"),
        (lambda h: h.percentiles((50, 90)), "quantiles in 0..1"),
        (lambda h: h.percentiles((np.nan,)), "quantiles in 0..1"),
        (lambda h: h.decay(1.5), "decay factor must lie in 0..1"),
        (lambda h: h.resize(2.5), "n must be a non-negative integer"),
        (lambda h: Histograms(-1), "n must be a non-negative integer"),
    ],
)
def test_bad_inputs_are_refused_with_a_sentence(
    call: Callable[[Histograms], object], message: str
) -> None:
    hist = Histograms(3)
    with pytest.raises(ValueError, match=message):
        call(hist)
    assert hist.total().sum() == 0.0, "a refused call must change nothing"


def test_empty_adds_are_allowed() -> None:
    hist = Histograms(2)
    hist.add([], [])
    hist.add(np.empty(0, np.int64), np.empty(0), 2.0)
    assert hist.total().tolist() == [0.0, 0.0]
