"""Autoscaling a pool: toward a queue depth per replica or under a TTFT target, within its
bounds; up at once, down only to the largest size wanted over the cooldown, and to its minimum
when idle for that long."""

import math
from collections import deque
from dataclasses import dataclass

from sim.journal import AutoscalerSettings

TTFT_BAND = (0.5, 1.0)
"""p99 TTFT over its target within this band leaves the size alone."""


@dataclass(frozen=True)
class PoolLoad:
    """What the autoscaler looks at in a pool."""

    replicas: int
    """Replicas ready or warming."""
    waiting: float
    """Requests waiting for prefill, over the whole pool."""
    ttft_p99_s: float
    """Recent p99 time to first token (NaN when nothing arrived)."""
    arrivals_per_s: float


def desired_replicas(settings: AutoscalerSettings, load: PoolLoad) -> int:
    """How many replicas the pool should have, before the cooldown is considered."""
    low, high = settings.min_replicas, settings.max_replicas
    if load.arrivals_per_s <= 0 and load.waiting <= 0:
        return low
    current = max(load.replicas, 1)
    proposals = []
    if settings.target_queue_depth is not None:
        proposals.append(math.ceil(load.waiting / settings.target_queue_depth))
    if settings.target_ttft_s is not None and not math.isnan(load.ttft_p99_s):
        ratio = load.ttft_p99_s / settings.target_ttft_s
        proposals.append(
            current if TTFT_BAND[0] <= ratio <= TTFT_BAND[1] else math.ceil(current * ratio)
        )
    wanted = max(proposals) if proposals else current
    return max(low, min(high, max(wanted, 1)))


def why(settings: AutoscalerSettings, load: PoolLoad, decided: int) -> str:
    """What the autoscaler looked at in deciding on `decided` replicas, as a clause:
    `212 waiting against 30 per replica`."""
    if load.arrivals_per_s <= 0 and load.waiting <= 0:
        seen = [f"no traffic, so its minimum of {settings.min_replicas}"]
    else:
        seen = []
        if settings.target_queue_depth is not None:
            depth = settings.target_queue_depth
            seen.append(f"{load.waiting:,.0f} waiting against {depth:g} per replica")
        if settings.target_ttft_s is not None and not math.isnan(load.ttft_p99_s):
            seen.append(f"TTFT p99 {load.ttft_p99_s:.3g} s against {settings.target_ttft_s:g} s")
    if decided > desired_replicas(settings, load):
        seen.append(f"held at the most wanted over the last {settings.cooldown_s:g} s")
    return ", ".join(seen) or "no target set"


class Autoscaler:
    """Holds scale-down back like Kubernetes' stabilization window: a pool shrinks only to the
    largest size wanted over the last cooldown, and only after the cooldown since its last
    change. (A queue that empties would otherwise send it to its minimum, and back.)"""

    def __init__(self) -> None:
        self._changed: dict[str, float] = {}
        self._wanted: dict[str, deque[tuple[float, int]]] = {}

    def decide(self, settings: AutoscalerSettings, desired: int, load: PoolLoad, now: float) -> int:
        """The pool's new desired size (unchanged when disabled or cooling down)."""
        if not settings.enabled:
            return desired
        wanted = desired_replicas(settings, load)
        recent = self._wanted.setdefault(settings.pool, deque())
        recent.append((now, wanted))
        while recent and recent[0][0] < now - settings.cooldown_s:
            recent.popleft()
        if wanted < desired:
            wanted = min(desired, max(size for _, size in recent))
        cooling = now - self._changed.get(settings.pool, -math.inf) < settings.cooldown_s
        if wanted == desired or (wanted < desired and cooling):
            return desired
        self._changed[settings.pool] = now
        return wanted
