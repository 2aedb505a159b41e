"""What a scenario file says, once read: the Scenario (site, seed, clock, pools, traffic) and
its timeline of Steps."""

from dataclasses import dataclass, field
from pathlib import Path

from agents.topology import Site
from aidc.scenarios.actions import Action
from aidc.scenarios.conditions import Condition
from aidc.site.datacenter import DEFAULT_START
from sim.pools import PoolSpec
from sim.traffic import TrafficProfile

DEFAULT_WITHIN_S = 60.0
"""How long an `expect` has to hold unless its step says `within` (simulated seconds)."""


@dataclass(frozen=True)
class Step:
    """One line of the timeline: when, then an action, an expectation, or both absent (a
    pause). `expect` must hold within `within` seconds; `always` from now until `until`."""

    number: int
    line: int
    at: float | None = None
    after: float | None = None
    name: str = ""
    action: Action | None = None
    expect: Condition | None = None
    always: Condition | None = None
    within: float = DEFAULT_WITHIN_S
    until: float | None = None

    def __str__(self) -> str:
        if self.name:
            return self.name
        if self.action is not None:
            return str(self.action)
        if self.expect is not None:
            return f"expect {self.expect} within {self.within:g} s"
        if self.always is not None:
            end = f" until t+{self.until:g} s" if self.until is not None else ""
            return f"always {self.always}{end}"
        return "wait"


@dataclass(frozen=True)
class Scenario:
    """Everything a scenario file says."""

    path: Path
    name: str
    site: Site
    seed: int = 0
    speed: float = 0.0
    tick_s: float | None = None
    start: float = DEFAULT_START
    description: str = ""
    pools: tuple[PoolSpec, ...] | None = None
    traffic: dict[str, TrafficProfile] | None = None
    steps: tuple[Step, ...] = field(default_factory=tuple)
