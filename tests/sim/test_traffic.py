"""Traffic: Poisson counts, the daily curve, bursts, token sums, and determinism from the seed."""

import math

import numpy as np
import pytest

from sim.traffic import EXACT_DRAWS_UP_TO, Traffic, TrafficProfile

HOUR_S = 3600.0


def counts_over(traffic: Traffic, ticks: int, dt: float, t0: float = 0.0) -> np.ndarray:
    """Counts per tick and model, ticks in order from t0."""
    return np.array([traffic.arrivals(t0 + k * dt, dt)[0] for k in range(ticks)])


def test_counts_are_poisson_with_the_rate_times_the_tick() -> None:
    traffic = Traffic([TrafficProfile(50.0)], np.random.default_rng(1))
    counts = counts_over(traffic, 20_000, 0.1)[:, 0]
    expected = 5.0
    assert abs(counts.mean() - expected) < 4 * math.sqrt(expected / counts.size)
    # The variance of a sample variance of a Poisson(5) is about (5 + 2 * 25) / n.
    assert abs(counts.var() - expected) < 4 * math.sqrt((expected + 2 * expected**2) / counts.size)


def test_the_daily_curve_peaks_at_the_peak_hour_and_dips_by_the_amplitude_12_hours_later() -> None:
    profile = TrafficProfile(1000.0, diurnal_amplitude=0.6, peak_hour_utc=14.0)
    traffic = Traffic([profile], np.random.default_rng(0))
    day = 3 * 86_400.0
    hours = np.arange(0, 24, 0.25)
    rates = [traffic.rate(0, day + h * HOUR_S) for h in hours]
    assert hours[int(np.argmax(rates))] == 14.0
    assert hours[int(np.argmin(rates))] == 2.0
    assert traffic.rate(0, day + 14 * HOUR_S) == pytest.approx(1000.0)
    assert traffic.rate(0, day + 26 * HOUR_S) == pytest.approx(400.0)
    at_peak = counts_over(traffic, 200, 1.0, day + 14 * HOUR_S).mean()
    at_dip = counts_over(traffic, 200, 1.0, day + 26 * HOUR_S).mean()
    assert at_dip / at_peak == pytest.approx(0.4, rel=0.05)


def test_bursts_raise_the_mean_rate_by_their_factor_times_the_share_of_time_they_cover() -> None:
    per_hour, burst_s, factor = 30.0, 60.0, 3.0
    profile = TrafficProfile(1000.0, bursts_per_hour=per_hour, burst_s=burst_s, burst_factor=factor)
    traffic = Traffic([profile], np.random.default_rng(2))
    dt = 10.0
    rates, counts = [], []
    for k in range(18_000):
        counts.append(traffic.arrivals(k * dt, dt)[0][0])
        rates.append(traffic.rate(0, k * dt))
    covered = 1 - math.exp(-per_hour * burst_s / HOUR_S)
    assert np.mean(counts) / (1000.0 * dt) == pytest.approx(1 + (factor - 1) * covered, rel=0.03)
    assert set(np.round(rates, 6)) == {1000.0, 3000.0}, "overlapping bursts do not compound"


def test_an_injected_burst_multiplies_the_rate_for_its_duration_only() -> None:
    traffic = Traffic([TrafficProfile(1e6), TrafficProfile(1e6)], np.random.default_rng(3))
    traffic.add_burst(1, start_s=10.0, duration_s=5.0, factor=4.0)
    assert traffic.rate(1, 9.9) == pytest.approx(1e6)
    assert traffic.rate(1, 12.0) == pytest.approx(4e6)
    assert traffic.rate(1, 15.0) == pytest.approx(1e6)
    assert traffic.rate(0, 12.0) == pytest.approx(1e6)
    # A tick from 8 s to 18 s holds 5 s of the burst: 1e6 * (10 + 3 * 5) requests expected.
    counts, _, _ = traffic.arrivals(8.0, 10.0)
    assert counts.tolist() == [pytest.approx(1e7, rel=2e-3), pytest.approx(2.5e7, rel=2e-3)]


def test_set_rate_changes_the_peak_and_keeps_the_curve() -> None:
    profile = TrafficProfile(100.0, diurnal_amplitude=0.5, peak_hour_utc=12.0)
    traffic = Traffic([profile], np.random.default_rng(4))
    traffic.set_rate(0, 300.0)
    assert traffic.rate(0, 12 * HOUR_S) == pytest.approx(300.0)
    assert traffic.rate(0, 0.0) == pytest.approx(150.0)
    assert counts_over(traffic, 100, 1.0, 12 * HOUR_S).mean() == pytest.approx(300.0, rel=0.02)
    assert traffic.profiles[0].diurnal_amplitude == 0.5


@pytest.mark.parametrize("rps", [20.0, 20_000.0], ids=["exact draws", "normal approximation"])
def test_token_sums_have_the_mean_and_variance_of_sums_of_lognormal_lengths(rps: float) -> None:
    profile = TrafficProfile(rps, prompt_tokens_mean=800.0, prompt_tokens_sigma=0.8)
    traffic = Traffic([profile], np.random.default_rng(5))
    dt = 1.0
    assert (rps * dt < EXACT_DRAWS_UP_TO) == (rps == 20.0)
    ticks = [traffic.arrivals(k * dt, dt) for k in range(4000)]
    counts = np.array([c[0] for c, _, _ in ticks])
    prompt = np.array([p[0] for _, p, _ in ticks])
    output = np.array([o[0] for _, _, o in ticks])
    variance = 800.0**2 * math.expm1(0.8**2)
    standardised = (prompt - counts * 800.0) / np.sqrt(counts * variance)
    assert abs(standardised.mean()) < 4 / math.sqrt(counts.size)
    assert standardised.var() == pytest.approx(1.0, abs=0.15)
    assert output.sum() / counts.sum() == pytest.approx(200.0, rel=0.02)


def test_a_mean_of_zero_tokens_sums_to_zero() -> None:
    traffic = Traffic(
        [TrafficProfile(10.0, output_tokens_mean=0.0), TrafficProfile(1e5, output_tokens_mean=0)],
        np.random.default_rng(6),
    )
    counts, _, output = traffic.arrivals(0.0, 1.0)
    assert counts.min() > 0
    assert output.tolist() == [0.0, 0.0]


def test_the_same_seed_gives_the_same_numbers() -> None:
    profiles = [
        TrafficProfile(30.0, 0.3, 9.0, bursts_per_hour=20.0, burst_s=30.0),
        TrafficProfile(5000.0, 0.7, 20.0, bursts_per_hour=5.0),
    ]

    def run(seed: int) -> list[np.ndarray]:
        traffic = Traffic(profiles, np.random.default_rng(seed))
        return [np.concatenate(traffic.arrivals(k * 0.5, 0.5)) for k in range(2000)]

    first, again, other = run(7), run(7), run(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_bad_profiles_and_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="diurnal_amplitude"):
        TrafficProfile(10.0, diurnal_amplitude=1.5)
    with pytest.raises(ValueError, match="negative"):
        TrafficProfile(-1.0)
    with pytest.raises(ValueError, match="finite"):
        TrafficProfile(float("nan"))
    with pytest.raises(ValueError, match="peak_hour_utc"):
        TrafficProfile(10.0, peak_hour_utc=24.0)
    with pytest.raises(ValueError, match="burst_factor"):
        TrafficProfile(10.0, burst_factor=0.5)
    traffic = Traffic([TrafficProfile(10.0)], np.random.default_rng(0))
    with pytest.raises(ValueError, match="model index"):
        traffic.set_rate(1, 5.0)
    with pytest.raises(ValueError, match="negative"):
        traffic.set_rate(0, -5.0)
    with pytest.raises(ValueError, match="factor >= 1"):
        traffic.add_burst(0, 0.0, 10.0, 0.5)
    with pytest.raises(ValueError, match="duration above 0"):
        traffic.arrivals(0.0, 0.0)
