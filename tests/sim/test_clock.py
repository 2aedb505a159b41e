"""Simulated time: the real clock's speed, the manual clock's advances, and tick waiting."""

import asyncio
import contextlib
import time

import pytest

from sim.clock import Clock, ManualClock, RealClock

START = 1_767_225_600.0
"""2026-01-01T00:00:00Z, a round start for scenarios."""


def test_real_time_runs_at_the_given_speed() -> None:
    clock = RealClock(speed=500.0, start=START)
    before_outer = time.monotonic()
    first = clock.now()
    before_inner = time.monotonic()
    time.sleep(0.02)
    after_inner = time.monotonic()
    second = clock.now()
    after_outer = time.monotonic()
    # Brackets of the real time between the two readings, so no timing can make this flaky.
    assert (after_inner - before_inner) * 500.0 <= second - first
    assert second - first <= (after_outer - before_outer) * 500.0
    assert clock.speed == 500.0
    assert clock.start == START
    assert START <= first <= second


def test_real_time_starts_at_the_wall_clock_by_default() -> None:
    before = time.time()
    clock = RealClock()
    after = time.time()
    assert before <= clock.start <= after
    assert clock.start <= clock.now() <= time.time() + 1.0
    assert clock.speed == 1.0


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_a_real_clock_refuses_a_speed_that_is_not_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be a positive number"):
        RealClock(speed=speed)


async def test_a_real_clock_sleeps_to_each_tick_in_order() -> None:
    clock = RealClock(speed=1000.0, start=START)
    ticks = [await clock.sleep_until_next_tick(2.0) for _ in range(5)]
    assert all(clock.now() >= tick for tick in ticks)
    assert ticks == sorted(set(ticks)), "ticks strictly increase"
    assert all((tick - START) % 2.0 == 0.0 for tick in ticks), "ticks fall on the grid"


async def test_a_real_clock_sleep_until_a_past_time_returns_at_once() -> None:
    clock = RealClock(speed=1.0, start=START)
    await asyncio.wait_for(clock.sleep_until(START - 10.0), timeout=1.0)


def test_the_next_tick_is_strictly_after_now_on_the_grid_from_start() -> None:
    clock = ManualClock(START)
    assert clock.next_tick(1.0) == START + 1.0
    assert clock.next_tick(0.25) == START + 0.25
    with pytest.raises(ValueError, match="tick_s must be a positive number"):
        clock.next_tick(0.0)


async def test_a_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(START)
    assert clock.speed == 0.0
    assert clock.now() == START
    await asyncio.sleep(0.01)
    assert clock.now() == START
    await clock.advance(2.5)
    assert clock.now() == START + 2.5
    await clock.advance(0)
    assert clock.now() == START + 2.5
    assert clock.next_tick(1.0) == START + 3.0


async def test_a_sleeper_wakes_only_when_its_time_is_reached() -> None:
    clock = ManualClock(START)
    sleeper = asyncio.create_task(clock.sleep_until(START + 10.0))
    await asyncio.sleep(0.01)
    await clock.advance(9.0)
    assert not sleeper.done()
    await clock.advance(1.0)
    assert sleeper.done()
    assert clock.now() == START + 10.0


async def test_advance_runs_every_tick_of_the_span_at_its_time() -> None:
    clock = ManualClock(START)
    seen: list[tuple[float, float]] = []

    async def core() -> None:
        while True:
            tick = await clock.sleep_until_next_tick(1.0)
            seen.append((tick, clock.now()))
            await asyncio.sleep(0.002)  # a step that waits on real time, as publishing does

    task = asyncio.create_task(core())
    await asyncio.sleep(0)
    await clock.advance(5.0)
    assert seen == [(START + k, START + k) for k in range(1, 6)]
    await clock.advance(0.5)
    assert len(seen) == 5
    await clock.advance(0.5)
    assert seen[-1] == (START + 6.0, START + 6.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.advance(3.0)
    assert len(seen) == 6, "a cancelled sleeper is not woken"
    assert clock.now() == START + 9.0


async def test_advance_waits_for_a_woken_task_and_a_timeout_can_bound_it() -> None:
    clock = ManualClock(START)
    never = asyncio.Event()

    async def stuck() -> None:
        await clock.sleep_until(START + 1.0)
        await never.wait()

    task = asyncio.create_task(stuck())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(clock.advance(2.0), timeout=0.05)
    assert clock.now() == START + 1.0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await clock.advance(1.0)
    assert clock.now() == START + 2.0


async def test_sleepers_wake_in_deadline_order_and_ties_in_the_order_they_slept() -> None:
    clock = ManualClock(START)
    order: list[str] = []

    async def sleeper(name: str, delay: float) -> None:
        await clock.sleep_until(START + delay)
        order.append(f"{name}@{clock.now() - START:g}")

    tasks = [
        asyncio.create_task(sleeper(name, delay))
        for name, delay in (("a", 3.0), ("b", 1.0), ("c", 3.0), ("d", 2.0))
    ]
    await asyncio.sleep(0)
    await clock.advance(10.0)
    assert order == ["b@1", "d@2", "a@3", "c@3"]
    assert all(task.done() for task in tasks)


async def test_the_same_advances_give_the_same_ticks() -> None:
    async def run() -> list[float]:
        clock = ManualClock(START)
        ticks: list[float] = []

        async def core() -> None:
            while True:
                ticks.append(await clock.sleep_until_next_tick(0.25))

        task = asyncio.create_task(core())
        await asyncio.sleep(0)
        for seconds in (0.5, 1.25, 0.0, 2.25):
            await clock.advance(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ticks

    first, second = await run(), await run()
    assert first == second
    assert first == [START + 0.25 * k for k in range(1, 17)]


@pytest.mark.parametrize(
    ("seconds", "message"),
    [(-1.0, "seconds must be >= 0"), (float("nan"), "seconds must be a finite number")],
)
async def test_a_manual_clock_refuses_to_go_back_or_nowhere(seconds: float, message: str) -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match=message):
        await clock.advance(seconds)
    assert clock.now() == START


def test_a_clock_refuses_a_start_that_is_not_finite() -> None:
    with pytest.raises(ValueError, match="start must be a finite number of seconds"):
        ManualClock(float("inf"))
    with pytest.raises(ValueError, match="start must be a finite number of seconds"):
        RealClock(start=float("nan"))


def test_both_clocks_are_clocks() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(ManualClock(START), Clock)
