"""Simulated time for the core: real time at a speed, or a manual clock a scenario advances."""

import asyncio
import heapq
import math
import time
from abc import ABC, abstractmethod


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value}")
    return float(value)


class Clock(ABC):
    """Simulated Unix seconds, and waiting for them; ticks fall on start + k * tick_s."""

    def __init__(self, start: float) -> None:
        self.start = _finite("start", start)
        """The simulated time the clock started at."""

    @property
    @abstractmethod
    def speed(self) -> float:
        """Simulated seconds per real second (0 for a clock that moves only when told)."""

    @abstractmethod
    def now(self) -> float:
        """The simulated time, in Unix seconds."""

    @abstractmethod
    async def sleep_until(self, when: float) -> None:
        """Return once the simulated time has reached `when` (at once if it has)."""

    def next_tick(self, tick_s: float) -> float:
        """The first tick after now: start + k * tick_s for the smallest such k."""
        if not tick_s > 0.0 or not math.isfinite(tick_s):
            raise ValueError(f"tick_s must be a positive number of seconds, got {tick_s}")
        now = self.now()
        k = math.floor((now - self.start) / tick_s) + 1
        # The division can round across a tick; settle on the first tick strictly after now.
        while self.start + (k - 1) * tick_s > now:
            k -= 1
        while self.start + k * tick_s <= now:
            k += 1
        return self.start + k * tick_s

    async def sleep_until_next_tick(self, tick_s: float) -> float:
        """Wait for the next tick (see `next_tick`) and return its time. A loop that falls
        behind skips the ticks it missed rather than running them back to back."""
        tick = self.next_tick(tick_s)
        await self.sleep_until(tick)
        return tick


class RealClock(Clock):
    """Wall time run `speed` times faster from `start` (default: the wall clock now)."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if not speed > 0.0 or not math.isfinite(speed):
            raise ValueError(
                f"speed must be a positive number of simulated seconds per second, got {speed}"
            )
        super().__init__(time.time() if start is None else start)
        self._speed = float(speed)
        self._started = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self.start + (time.monotonic() - self._started) * self._speed

    async def sleep_until(self, when: float) -> None:
        # asyncio may wake a little early (by its clock's resolution), and a tick must not be
        # seen before its time: sleep again for the rest. There is no event to wait on instead.
        while (remaining := when - self.now()) > 0.0:  # noqa: ASYNC110
            await asyncio.sleep(remaining / self._speed)


class ManualClock(Clock):
    """Time that stands still until `advance` moves it, so a scenario decides when ticks come.

    `advance` moves through the deadlines of the tasks sleeping on the clock in order: it sets
    the time to each, wakes the tasks waiting for it, and waits until each of them sleeps on
    the clock again or ends before it goes on. A core loop thus runs every tick of the span at
    that tick's time, however long the span; the same advances give the same ticks.
    """

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self._now = self.start
        self._sleepers: list[tuple[float, int, asyncio.Future[None], asyncio.Task[object]]] = []
        self._sequence = 0
        """Breaks ties between sleepers with one deadline: they wake in the order they slept."""
        self._settling: dict[asyncio.Task[object], asyncio.Future[None]] = {}
        self._advancing = asyncio.Lock()

    @property
    def speed(self) -> float:
        return 0.0

    def now(self) -> float:
        return self._now

    async def sleep_until(self, when: float) -> None:
        when = _finite("when", when)
        if when <= self._now:
            return
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("ManualClock.sleep_until must be awaited from an asyncio task")
        self._settled(task)
        woken = asyncio.get_running_loop().create_future()
        self._sequence += 1
        heapq.heappush(self._sleepers, (when, self._sequence, woken, task))
        await woken

    async def advance(self, seconds: float) -> None:
        """Move the time `seconds` (>= 0) forward, running every sleeper due on the way."""
        seconds = _finite("seconds", seconds)
        if seconds < 0.0:
            raise ValueError(f"a clock only advances: seconds must be >= 0, got {seconds}")
        async with self._advancing:
            target = self._now + seconds
            while self._sleepers and self._sleepers[0][0] <= target:
                self._now = self._sleepers[0][0]
                woken = []
                while self._sleepers and self._sleepers[0][0] <= self._now:
                    _, _, future, task = heapq.heappop(self._sleepers)
                    if not future.done():
                        future.set_result(None)
                        woken.append(task)
                await self._settle(woken)
            self._now = target

    async def _settle(self, tasks: list[asyncio.Task[object]]) -> None:
        """Wait until each task sleeps on this clock again or ends."""
        loop = asyncio.get_running_loop()
        waits = []
        for task in tasks:
            self._settling[task] = settling = loop.create_future()
            waits.append(settling)
            task.add_done_callback(self._settled)
        try:
            await asyncio.gather(*waits)
        finally:
            for task in tasks:
                task.remove_done_callback(self._settled)
                self._settling.pop(task, None)

    def _settled(self, task: asyncio.Task[object]) -> None:
        settling = self._settling.pop(task, None)
        if settling is not None and not settling.done():
            settling.set_result(None)
