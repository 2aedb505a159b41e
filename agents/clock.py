"""The fleet's simulated clock: it follows the core's, as the core announces it every tick,
so device physics runs `speed` times faster than the wall and stops on a manual clock."""

from collections.abc import Callable

MAX_STEP_S = 3600.0
"""The most simulated seconds one step may advance: a core whose clock jumps further (a
replay seeking, a manual clock advanced by hours at once) is followed without replaying
the gap. The device models are exact for any step (agents.bank.relax), so this bounds only
how much happens at once."""


LATE_TICK_S = 5.0
"""How late (in real seconds) a core's tick may come before an announced time behind our
extrapolation counts as the clock going back (a new core, a replay) rather than lateness."""


class FleetClock:
    """Simulated seconds for the physics to step by, from the core's last announced time and
    rate (or the wall clock, at 1x, while no core announces one)."""

    def __init__(self, wall_now: float, on_manual_tick: Callable[[], None] | None = None) -> None:
        self._wall = wall_now
        self._on_manual_tick = on_manual_tick
        """Called when a manual clock moves: the physics steps to the tick at once, before
        whatever the core sends after it, so a seed's run does not depend on timing."""
        self._core: tuple[float, float, float] | None = None
        """The core's simulated time, its speed, and the wall time we heard it."""
        self._stepped: float | None = None
        """The simulated time the physics has reached, once a core's clock is known."""

    def heard(self, sim_time: float, speed: float, wall_now: float) -> None:
        """The core says its clock reads `sim_time` and runs at `speed` (0: manual)."""
        self._core = (sim_time, max(speed, 0.0), wall_now)
        if speed <= 0 and self._on_manual_tick is not None:
            self._on_manual_tick()

    def forget(self) -> None:
        """The core went offline: run on the wall clock again."""
        self._core = self._stepped = None

    def now(self, wall_now: float) -> float | None:
        """The core's simulated time now, extrapolated at its speed; None if unknown."""
        if self._core is None:
            return None
        sim_time, speed, heard_at = self._core
        return sim_time + speed * (wall_now - heard_at)

    @property
    def sim_time(self) -> float:
        """The simulated time the physics has been stepped to (0 while none is known)."""
        return self._stepped or 0.0

    def advance(self, wall_now: float) -> float:
        """Simulated seconds to step the physics by since the last call."""
        wall, self._wall = max(wall_now - self._wall, 0.0), wall_now
        target = self.now(wall_now)
        if target is None:
            return wall
        speed = self._core[1] if self._core else 1.0
        behind = self._stepped - target if self._stepped is not None else 0.0
        if (
            self._stepped is None
            or target - self._stepped > MAX_STEP_S
            or behind > LATE_TICK_S * speed
        ):
            # just heard of a core (or its clock jumped): carry on from its time
            self._stepped = target
            return min(wall * speed, MAX_STEP_S)
        # a core that ticks late announces a time behind our extrapolation: wait for it
        step = max(target - self._stepped, 0.0)
        self._stepped += step
        return step
