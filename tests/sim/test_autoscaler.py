"""The autoscaler: up on queues or slow first tokens, down after the cooldown, minimum at zero."""

import math

from sim.autoscaler import Autoscaler, PoolLoad, desired_replicas, why
from sim.journal import AutoscalerSettings


def settings(**changes: object) -> AutoscalerSettings:
    values: dict[str, object] = {
        "pool": "p",
        "enabled": True,
        "min_replicas": 1,
        "max_replicas": 10,
        "target_queue_depth": 4.0,
        "target_ttft_s": None,
        "cooldown_s": 60.0,
    }
    values.update(changes)
    return AutoscalerSettings(**values)  # type: ignore[arg-type]


def test_queue_depth_sets_the_size_within_bounds() -> None:
    assert desired_replicas(settings(), PoolLoad(2, 20.0, math.nan, 10.0)) == 5
    assert desired_replicas(settings(), PoolLoad(2, 400.0, math.nan, 10.0)) == 10
    assert desired_replicas(settings(min_replicas=3), PoolLoad(5, 0.0, math.nan, 1.0)) == 3


def test_zero_traffic_goes_to_the_minimum_even_zero() -> None:
    assert desired_replicas(settings(min_replicas=0), PoolLoad(4, 0.0, math.nan, 0.0)) == 0
    assert desired_replicas(settings(min_replicas=2), PoolLoad(4, 0.0, math.nan, 0.0)) == 2
    assert desired_replicas(settings(min_replicas=0), PoolLoad(0, 3.0, math.nan, 1.0)) == 1


def test_ttft_over_target_scales_up_in_proportion() -> None:
    ttft = settings(target_queue_depth=None, target_ttft_s=0.5)
    assert desired_replicas(ttft, PoolLoad(4, 10.0, 1.0, 50.0)) == 8
    assert desired_replicas(ttft, PoolLoad(4, 0.0, 0.4, 50.0)) == 4
    assert desired_replicas(ttft, PoolLoad(4, 0.0, 0.1, 50.0)) == 1


def test_up_at_once_down_after_the_cooldown() -> None:
    scaler = Autoscaler()
    s = settings()
    assert scaler.decide(s, 2, PoolLoad(2, 40.0, math.nan, 50.0), now=0.0) == 10
    assert scaler.decide(s, 10, PoolLoad(10, 4.0, math.nan, 5.0), now=30.0) == 10
    assert scaler.decide(s, 10, PoolLoad(10, 4.0, math.nan, 5.0), now=61.0) == 1
    assert scaler.decide(settings(enabled=False), 3, PoolLoad(3, 99.0, math.nan, 9.0), 0.0) == 3


def test_a_queue_that_empties_for_a_moment_does_not_shrink_the_pool() -> None:
    scaler, s = Autoscaler(), settings()
    assert scaler.decide(s, 2, PoolLoad(2, 40.0, math.nan, 50.0), now=0.0) == 10
    assert scaler.decide(s, 10, PoolLoad(10, 36.0, math.nan, 50.0), now=65.0) == 9
    assert scaler.decide(s, 9, PoolLoad(9, 36.0, math.nan, 50.0), now=128.0) == 9
    # the queue is drained now, past the cooldown, but the last minute still wanted 9
    assert scaler.decide(s, 9, PoolLoad(9, 0.0, math.nan, 50.0), now=130.0) == 9
    assert scaler.decide(s, 9, PoolLoad(9, 0.0, math.nan, 50.0), now=200.0) == 1


def test_why_names_what_the_autoscaler_looked_at() -> None:
    queue = PoolLoad(2, 212.0, math.nan, 9.0)
    assert why(settings(), queue, 10) == "212 waiting against 4 per replica"
    ttft = settings(target_queue_depth=None, target_ttft_s=0.5)
    assert why(ttft, PoolLoad(4, 0.0, 1.25, 50.0), 10) == "TTFT p99 1.25 s against 0.5 s"
    idle = PoolLoad(4, 0.0, math.nan, 0.0)
    assert why(settings(min_replicas=2), idle, 2) == "no traffic, so its minimum of 2"
    assert why(settings(min_replicas=2), idle, 3) == (
        "no traffic, so its minimum of 2, held at the most wanted over the last 60 s"
    )
