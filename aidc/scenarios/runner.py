"""Running a Scenario on a DataCenter: the steps in order, each at its time, expectations
checked after every tick, `always` conditions on every tick until they end; a result per
step as it passes or fails, and the steps after a failure skipped."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aidc.scenarios.conditions import Condition
from aidc.scenarios.model import Scenario, Step
from aidc.site.client import SiteUnavailable
from aidc.site.datacenter import DataCenter
from protocols.endpoint import Endpoint
from protocols.errors import AidcError
from protocols.requests import CommandFailed

Outcome = Literal["passed", "failed", "skipped"]
EPSILON_S = 1e-6


@dataclass(frozen=True)
class StepResult:
    """How one step went: when (simulated seconds from the start) and what was seen."""

    step: Step
    outcome: Outcome
    at: float | None = None
    detail: str = ""
    seconds: float = 0.0
    """Real seconds the step took."""


@dataclass
class ScenarioResult:
    """Every step's result, and why the scenario could not run to the end if it could not."""

    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every step passed."""
        return self.error is None and all(r.outcome == "passed" for r in self.steps)

    @property
    def failure(self) -> StepResult | None:
        """The step that failed, if one did."""
        return next((r for r in self.steps if r.outcome == "failed"), None)


class StepFailed(AidcError):
    """A step did not pass; carries its result."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.detail)
        self.result = result


OnStep = Callable[[StepResult], None]


async def run_scenario(
    scenario: Scenario,
    broker: str | Endpoint = "embedded",
    on_step: OnStep = lambda _: None,
    speed: float | None = None,
) -> ScenarioResult:
    """Start the scenario's data center, run its steps, stop it; `on_step` hears of each
    step as it ends. Problems of the run itself (a broker that is down) go in `error`."""
    result = ScenarioResult(scenario)
    began = time.monotonic()

    def report(step_result: StepResult) -> None:
        result.steps.append(step_result)
        on_step(step_result)

    try:
        async with DataCenter.start(
            scenario.site,
            seed=scenario.seed,
            speed=scenario.speed if speed is None else speed,
            broker=broker,
            tick_s=scenario.tick_s,
            pools=scenario.pools,
            traffic=scenario.traffic,
            start_time=scenario.start,
        ) as dc:
            await _Run(dc, report).steps(scenario.steps)
    except StepFailed as failed:
        report(failed.result)
    except (SiteUnavailable, CommandFailed, RuntimeError, ValueError) as error:
        result.error = str(error)
    done = {r.step.number for r in result.steps}
    for step in scenario.steps:
        if step.number not in done:
            report(StepResult(step, "skipped", detail="not reached"))
    result.steps.sort(key=lambda r: r.step.number)
    result.seconds = time.monotonic() - began
    return result


class _Run:
    """The steps of one scenario on one data center."""

    def __init__(self, dc: DataCenter, report: OnStep) -> None:
        self.dc = dc
        self.report = report
        self.watching: list[tuple[Step, Condition, float]] = []
        """`always` steps still being checked, with when they started (real time)."""

    async def steps(self, steps: tuple[Step, ...]) -> None:
        last_end = 0.0
        for step in steps:
            began = time.monotonic()
            await self.until(self.when(step, last_end))
            result = await self.step(step, began)
            if result is not None:
                self.report(result)
            last_end = self.dc.elapsed
        ends = [step.until for step, _, _ in self.watching if step.until is not None]
        await self.until(max(ends, default=0.0) + EPSILON_S * 2)
        for step, _, began in self.watching:
            self.report(self.passed(step, began, "held to the end"))

    def when(self, step: Step, last_end: float) -> float:
        if step.at is not None:
            return step.at
        return last_end + (step.after or 0.0)

    async def until(self, elapsed: float) -> None:
        """Tick until `elapsed` simulated seconds from the start."""
        while self.dc.elapsed + EPSILON_S < elapsed:
            await self.tick()

    async def tick(self) -> None:
        """One tick, then every `always` condition checked."""
        await self.dc.next_tick()
        for entry in list(self.watching):
            step, condition, began = entry
            if step.until is not None and self.dc.elapsed > step.until + EPSILON_S:
                self.watching.remove(entry)
                self.report(self.passed(step, began, f"held until t+{step.until:g} s"))
                continue
            seen = await condition.observe(self.dc)
            if not seen.met:
                raise StepFailed(self.failed(step, began, f"stopped holding: {seen.seen}"))

    async def step(self, step: Step, began: float) -> StepResult | None:
        if step.action is not None:
            seen = await step.action.observe(self.dc)
            if not seen.met:
                raise StepFailed(self.failed(step, began, seen.seen))
            return self.passed(step, began, seen.seen)
        if step.expect is not None:
            deadline = self.dc.elapsed + step.within
            while not (seen := await step.expect.observe(self.dc)).met:
                if self.dc.elapsed + EPSILON_S >= deadline:
                    problem = f"not met within {step.within:g} s: {seen.seen}"
                    raise StepFailed(self.failed(step, began, problem))
                await self.tick()
            return self.passed(step, began, seen.seen)
        if step.always is not None:
            seen = await step.always.observe(self.dc)
            if not seen.met:
                problem = f"did not hold at the start: {seen.seen}"
                raise StepFailed(self.failed(step, began, problem))
            self.watching.append((step, step.always, began))
            return None
        return self.passed(step, began, "")

    def passed(self, step: Step, began: float, detail: str) -> StepResult:
        return StepResult(step, "passed", self.dc.elapsed, detail, time.monotonic() - began)

    def failed(self, step: Step, began: float, detail: str) -> StepResult:
        return StepResult(step, "failed", self.dc.elapsed, detail, time.monotonic() - began)
