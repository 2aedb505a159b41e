"""The core and the fleet of one site as tasks of this event loop: started in order, watched
so a wait ends at once if either stops, and on a manual clock stepped a tick at a time in
lockstep with the agents' reports."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from agents.fleet import Fleet
from aidc.site.client import SiteClient, SiteUnavailable
from aidc.site.state import State
from sim.clock import ManualClock
from sim.service import CoreService

T = TypeVar("T")

PAUSE_BEFORE_TICK_S = 0.01
"""Lockstep stops the manual clock this far before a tick while the agents report."""
FRESH_WAIT_S = 5.0
"""How long lockstep waits for an agent's report before ticking without it (a busy machine
can delay a report well past its interval, and the report must follow the core's clock
message, then the fleet's next step; an agent that died is not waited for once its death has
arrived). A tick without it counts the agent's nodes lost, and the run is no longer the
seed's alone: 1-2 s proved too short on a loaded 2-core machine."""
PUBLISH_WAIT_S = 10.0
BIRTH_WAIT_S = 30.0


class SiteRunner:
    """Runs a core and its fleet, and ticks them together on a manual clock."""

    def __init__(
        self,
        core: CoreService,
        fleet: Fleet,
        client: SiteClient,
        tick_s: float,
        interval_s: float,
    ) -> None:
        self.core = core
        self.fleet = fleet
        self.client = client
        self.tick_s = tick_s
        self.interval_s = interval_s
        self._tasks: list[asyncio.Task[None]] = []

    async def next_tick(self) -> None:
        """Run (manual clock) or wait for (real clock) the core's next published tick."""
        clock = self.core.clock
        if isinstance(clock, ManualClock):
            await self.tick(clock)
        else:
            await self._published(self.core.tick + 1)

    async def start(self) -> None:
        """The core first, so every agent finds its retained status online when it connects
        and sends the birth that answers it right after its first; then the agents, until
        each has reported twice since its last birth (a birth marks every device present
        until telemetry says otherwise, so a late one would undo a fault)."""
        self._tasks = [asyncio.create_task(self.core.run(), name="core")]
        await self.guard(_poll(self.core.link.connected.is_set, BIRTH_WAIT_S))
        self._tasks.append(asyncio.create_task(self.fleet.run(), name="fleet"))
        names = {agent.id for agent in self.fleet.agents}
        views = self.core.fleet.agents

        def settled() -> bool:
            return all(name in views and views[name].seq >= 2 for name in names)

        wait_s = BIRTH_WAIT_S + len(names) / 50
        try:
            await self.guard(_poll(settled, wait_s))
        except TimeoutError:
            raise SiteUnavailable(
                f"only {len(names & set(views))} of {len(names)} agents reached the core "
                f"within {wait_s:g} s"
            ) from None
        await self.next_tick()

    async def stop(self) -> None:
        """Agents first (their deaths reach the core), then the core (it says offline)."""
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def check(self) -> None:
        """RuntimeError if the core or the fleet has stopped."""
        for task in self._tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise RuntimeError(f"the {task.get_name()} stopped: {error!r}") from error

    async def guard(self, waiting: Awaitable[T]) -> T:
        """Wait for something, but raise at once if the core or the fleet stops."""
        self.check()
        waiter = asyncio.ensure_future(waiting)
        await asyncio.wait([waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            self.check()
        return waiter.result()

    async def tick(self, clock: ManualClock) -> None:
        """Stop short of the next tick, let every live agent report, then run the tick and
        wait until its state has arrived."""
        tick = clock.next_tick(self.tick_s)
        pause = tick - min(PAUSE_BEFORE_TICK_S, self.tick_s / 10)
        if pause > clock.now():
            await clock.advance(pause - clock.now())
        await self._fresh_telemetry(clock.now())
        done = self.core.tick + 1
        await self.guard(clock.advance(tick - clock.now() + 1e-9))
        await self._published(done)

    async def _fresh_telemetry(self, since: float) -> None:
        """Wait until every agent the core thinks alive has reported at or after `since`,
        with its physics stepped to the last tick (the agents follow the core's clock)."""
        nodes = self.core.fleet.nodes
        views = self.core.views_sent
        ticked = views.summary.time if views is not None else -float("inf")

        def reported() -> bool:
            alive = [a.node_rows for a in self.core.fleet.agents.values() if a.alive]
            return all(
                bool((nodes["seen"][rows] >= since).all())
                and bool((nodes["stepped"][rows] >= ticked).all())
                for rows in alive
            )

        with contextlib.suppress(TimeoutError):
            await self.guard(_poll(reported, max(FRESH_WAIT_S, 10 * self.interval_s)))

    async def _published(self, tick: int) -> None:
        """Wait until the client holds the views of core tick `tick` (the fabric goes last)."""

        def arrived(state: State) -> bool:
            summary, fabric = state.summary, state.fabric
            return (
                summary is not None
                and summary.tick >= tick
                and fabric is not None
                and fabric.time >= summary.time
            )

        try:
            await self.guard(self.client.wait_until(arrived, PUBLISH_WAIT_S))
        except TimeoutError:
            raise SiteUnavailable(
                f"the state of tick {tick} did not arrive within {PUBLISH_WAIT_S:g} s"
            ) from None


async def _poll(condition: Callable[[], bool], within_s: float, every: float = 0.005) -> None:
    """Wait until `condition()` holds, looking every `every` seconds: it reads the core's
    arrays, which nothing signals a change of; TimeoutError after `within_s`."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(every)
