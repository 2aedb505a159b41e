"""Inference traffic per model: Poisson arrivals on a diurnal curve with bursts, and token sums."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from numbers import Real

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DAY_S = 86_400.0
EXACT_DRAWS_UP_TO = 64
"""A tick's token sum for a model with at most this many requests is the sum of that many
lognormal draws; above it, the normal with the same mean and variance (the central limit),
clipped at 0. 64 keeps the draws per tick small at any scale while the sum's skew, which falls
as one over the square root of the count, is already small."""


@dataclass(frozen=True)
class TrafficProfile:
    """One model's traffic: a daily curve peaking at `peak_rps`, bursts, and request lengths.

    The rate is `peak_rps` at `peak_hour_utc` and `peak_rps * (1 - diurnal_amplitude)` twelve
    hours later, following a cosine in between. Bursts start as a Poisson process at
    `bursts_per_hour` and multiply the rate by `burst_factor` for `burst_s` seconds; bursts that
    overlap do not compound. Prompt and output lengths are lognormal with the given means (in
    tokens) and `sigma` the standard deviation of their logarithm.
    """

    peak_rps: float
    diurnal_amplitude: float = 0.0
    peak_hour_utc: float = 15.0
    bursts_per_hour: float = 0.0
    burst_factor: float = 2.0
    burst_s: float = 60.0
    prompt_tokens_mean: float = 1000.0
    prompt_tokens_sigma: float = 1.0
    output_tokens_mean: float = 200.0
    output_tokens_sigma: float = 1.0

    def __post_init__(self) -> None:
        values = vars(self)
        if not all(isinstance(v, Real) and math.isfinite(v) for v in values.values()):
            raise ValueError("every field of a traffic profile must be a finite number")
        if min(values.values()) < 0:
            raise ValueError("no field of a traffic profile may be negative")
        if self.diurnal_amplitude > 1:
            raise ValueError(f"diurnal_amplitude must lie in 0..1, not {self.diurnal_amplitude}")
        if not 0 <= self.peak_hour_utc < 24:
            raise ValueError(f"peak_hour_utc must lie in [0, 24), not {self.peak_hour_utc}")
        if self.burst_factor < 1:
            raise ValueError(f"burst_factor must be at least 1, not {self.burst_factor}")

    def diurnal(self, t: float) -> float:
        """The requests per second at `t` seconds after midnight UTC (of any day), no bursts."""
        phase = 2 * math.pi * (t / DAY_S - self.peak_hour_utc / 24)
        return self.peak_rps * (1 - self.diurnal_amplitude * (1 - math.cos(phase)) / 2)


@dataclass
class _Burst:
    start: float
    end: float
    factor: float


class Traffic:
    """The arrivals of every model's requests, tick by tick, drawn from one generator.

    Time `t` is seconds after midnight UTC of the simulation's first day (Unix time works as
    well). Ticks are expected in order; bursts are drawn as time reaches them, so `rate` knows
    the bursts that started before the end of the last tick and those injected.
    """

    def __init__(self, profiles: Sequence[TrafficProfile], rng: np.random.Generator) -> None:
        self._profiles = list(profiles)
        self._rng = rng
        self._bursts: list[list[_Burst]] = [[] for _ in self._profiles]
        self._next_burst_s: list[float | None] = [None] * len(self._profiles)

    @property
    def profiles(self) -> tuple[TrafficProfile, ...]:
        """The models' profiles, in model index order."""
        return tuple(self._profiles)

    def set_rate(self, model: int, peak_rps: float) -> None:
        """Change a model's peak requests per second from now on; its curve keeps its shape."""
        m = self._model(model)
        self._profiles[m] = replace(self._profiles[m], peak_rps=peak_rps)

    def add_burst(self, model: int, start_s: float, duration_s: float, factor: float) -> None:
        """Multiply a model's rate by `factor` (at least 1) from `start_s` for `duration_s`."""
        if not (math.isfinite(start_s) and duration_s >= 0 and factor >= 1):
            raise ValueError("a burst needs a finite start, a duration >= 0 and a factor >= 1")
        self._bursts[self._model(model)].append(_Burst(start_s, start_s + duration_s, factor))

    def rate(self, model_index: int, t: float) -> float:
        """The requests per second of a model at `t`, its bursts included."""
        profile = self._profiles[self._model(model_index)]
        return profile.diurnal(t) * self._factor(self._bursts[model_index], t)

    def arrivals(self, t: float, dt: float) -> tuple[I64, F64, F64]:
        """The requests of each model arriving in [t, t + dt), and the sums of their prompt and
        output lengths in tokens.

        Counts are Poisson with the rate integrated over the tick (the daily curve taken at the
        tick's middle, bursts exactly); token sums are exact draws for small counts and the
        normal approximation for large ones (see EXACT_DRAWS_UP_TO).
        """
        if not (math.isfinite(t) and dt > 0 and math.isfinite(dt)):
            raise ValueError(f"a tick needs a finite start and a duration above 0, not {t}, {dt}")
        expected = np.empty(len(self._profiles))
        for m, profile in enumerate(self._profiles):
            self._draw_bursts(m, t, t + dt)
            bursts = self._bursts[m] = [b for b in self._bursts[m] if b.end > t]
            expected[m] = profile.diurnal(t + dt / 2) * self._integral(bursts, t, t + dt)
        counts = self._rng.poisson(expected)
        prompt = self._token_sums(counts, "prompt")
        output = self._token_sums(counts, "output")
        return counts, prompt, output

    def _model(self, model: int) -> int:
        if not 0 <= model < len(self._profiles):
            raise ValueError(f"model index must lie in 0..{len(self._profiles) - 1}, not {model}")
        return model

    def _draw_bursts(self, m: int, t: float, end: float) -> None:
        """Start the model's Poisson bursts that fall before `end`."""
        profile = self._profiles[m]
        if profile.bursts_per_hour == 0:
            return
        mean_gap_s = 3600 / profile.bursts_per_hour
        # The process is memoryless: bursts that ended before t need not be drawn.
        earliest = t - profile.burst_s
        start = self._next_burst_s[m]
        if start is None or start < earliest:
            start = earliest + self._rng.exponential(mean_gap_s)
        while start < end:
            self._bursts[m].append(_Burst(start, start + profile.burst_s, profile.burst_factor))
            start += self._rng.exponential(mean_gap_s)
        self._next_burst_s[m] = start

    @staticmethod
    def _factor(bursts: list[_Burst], t: float) -> float:
        return max([b.factor for b in bursts if b.start <= t < b.end], default=1.0)

    @classmethod
    def _integral(cls, bursts: list[_Burst], t: float, end: float) -> float:
        """The integral of the burst factor over [t, end): constant between burst edges."""
        edges = sorted({t, end} | {x for b in bursts for x in (b.start, b.end) if t < x < end})
        return sum((b - a) * cls._factor(bursts, (a + b) / 2) for a, b in pairwise(edges))

    def _token_sums(self, counts: I64, kind: str) -> F64:
        means = np.array([getattr(p, f"{kind}_tokens_mean") for p in self._profiles], float)
        sigmas = np.array([getattr(p, f"{kind}_tokens_sigma") for p in self._profiles], float)
        sums = np.zeros(len(self._profiles))
        exact = np.where(counts <= EXACT_DRAWS_UP_TO, counts, 0)
        if exact.any():
            # A lognormal of mean 1 scaled by the mean: a mean of 0 needs no special case.
            sigma = np.repeat(sigmas, exact)
            draws = np.repeat(means, exact) * self._rng.lognormal(-(sigma**2) / 2, sigma)
            sums += np.bincount(np.repeat(np.arange(exact.size), exact), draws, exact.size)
        large = counts > EXACT_DRAWS_UP_TO
        if large.any():
            mean_sum = counts[large] * means[large]
            sd_sum = np.sqrt(counts[large] * np.expm1(sigmas[large] ** 2)) * means[large]
            sums[large] = np.maximum(self._rng.normal(mean_sum, sd_sum), 0.0)
        return sums
