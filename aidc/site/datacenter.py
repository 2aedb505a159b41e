"""A data center in a Python program: a broker, the core and a fleet of node agents for one
site, driven by commands, faults and traffic changes and watched through the state the core
publishes; on a manual clock for deterministic tests, or on a real one at a speed.

    async with DataCenter.start({"hgx-h100": 2}, seed=7) as dc:
        await dc.inject("r001-n01", "xid", code=79, gpu=3)
        await dc.wait_for(lambda s: s.find_events("control", message="r001-n01 drained"))

The core and the agents are the production ones and speak MQTT through a real broker (the
embedded one unless told otherwise); both run in this process and its event loop, so a
manual clock can step the core tick by tick in lockstep with the agents' telemetry.
"""

import contextlib
import dataclasses
import inspect
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.catalog import RACK_KINDS
from agents.fleet import Fleet
from agents.topology import Site, TopologyError, build_site, load_site
from aidc.runtime.brokers import broker as broker_for
from aidc.site.client import SiteClient
from aidc.site.runner import SiteRunner
from aidc.site.state import State
from protocols.codec import COMMAND, encode_json
from protocols.commands import OperatorCommand, Query, Reply
from protocols.endpoint import Endpoint
from protocols.errors import AidcError, MessageError
from protocols.ids import check_id
from protocols.queries import AnswerT, NodeDetail, asked
from sim.clock import Clock, ManualClock, RealClock
from sim.pools import PoolSpec
from sim.service import CoreService
from sim.traffic import TrafficProfile

Topology = Site | Mapping[str, int] | str | os.PathLike[str] | None
"""A Site, rack kinds and counts (`{"hgx-h100": 2, "lpu": 1}`), a TOML topology file, or
None for two HGX H100 racks."""
Predicate = Callable[[State], object]
"""Called with the latest state; a truthy result (or awaited result) means met."""

DEFAULT_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()
"""Where simulated time starts unless told: a fixed moment, so runs repeat."""
MANUAL_TICK_S = 1.0
MANUAL_INTERVAL_S = 0.02
"""On a manual clock: simulated seconds a tick, real seconds between an agent's reports."""
REAL_TICK_S = 0.25
"""On a real clock: real seconds a tick (and between an agent's reports)."""


class WaitTimeout(AidcError, AssertionError):
    """A condition was not met within its time; `str()` says which and when."""


def resolve_site(topology: Topology, site: str | None = None) -> Site:
    """The Site a `topology` argument stands for, named `site` if given; TopologyError."""
    if isinstance(topology, Site):
        return topology if site is None else dataclasses.replace(topology, site=check_id(site))
    if topology is None:
        topology = {"hgx-h100": 2}
    if isinstance(topology, Mapping):
        unknown = sorted(set(topology) - set(RACK_KINDS))
        if unknown:
            raise TopologyError(
                f"unknown rack kind {unknown[0]!r}; use one of {', '.join(sorted(RACK_KINDS))}"
            )
        return build_site(site or "dc1", [(RACK_KINDS[k], n) for k, n in topology.items()], None)
    return load_site(Path(topology), site)


class DataCenter:
    """One running site: its core, its agents, and a client of the state it publishes.

    Make one with `DataCenter.start(...)`. `speed=0` (the default) runs the core on a manual
    clock: simulated time moves only in `advance` and `wait_for`, a tick at a time, each
    tick after every live agent has reported again, so the same seed gives the same run.
    `speed=X` runs it X times faster than real time.
    """

    def __init__(self, site: Site, runner: SiteRunner) -> None:
        self.site = site
        self.runner = runner
        self.core = runner.core
        self.client = runner.client
        self.started_at = self.core.clock.now()

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        topology: Topology = None,
        *,
        seed: int = 0,
        speed: float = 0.0,
        broker: str | Endpoint = "embedded",
        site: str | None = None,
        tick_s: float | None = None,
        interval_s: float | None = None,
        pools: Sequence[PoolSpec] | None = None,
        traffic: Mapping[str, TrafficProfile] | None = None,
        start_time: float = DEFAULT_START,
    ) -> AsyncIterator["DataCenter"]:
        """Start a broker (unless given one), the core and the agents of `topology`; yield
        once the core knows every agent and has published its first state; stop them all.

        `tick_s` is simulated seconds a tick on a manual clock, real ones otherwise;
        `interval_s` real seconds between an agent's reports. `pools` and `traffic` replace
        the core's defaults (`sim/defaults.py`)."""
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"speed must be 0 (a manual clock) or above, not {speed}")
        manual = speed == 0
        tick = tick_s or (MANUAL_TICK_S if manual else REAL_TICK_S)
        interval = interval_s or (MANUAL_INTERVAL_S if manual else tick)
        the_site = resolve_site(topology, site)
        clock: Clock = ManualClock(start_time) if manual else RealClock(speed, start_time)
        with contextlib.ExitStack() as spawned:
            endpoint = (
                broker
                if isinstance(broker, Endpoint)
                else spawned.enter_context(broker_for(broker))
            )
            options: dict[str, Any] = {}
            if pools is not None:
                options["pools"] = pools
            if traffic is not None:
                options["traffic"] = traffic
            core = CoreService(
                endpoint, the_site.site, seed=seed, tick_s=tick, clock=clock, **options
            )
            fleet = Fleet(the_site, endpoint, interval_s=interval, seed=seed)
            async with SiteClient(endpoint, the_site.site, "datacenter") as client:
                runner = SiteRunner(core, fleet, client, tick, interval)
                try:
                    await runner.start()
                    yield cls(the_site, runner)
                finally:
                    await runner.stop()

    # -- reading --------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The latest summary, racks, pools, fabric and events, as the core published them."""
        return self.client.state

    @property
    def manual(self) -> bool:
        """Whether time moves only when this program advances it."""
        return isinstance(self.core.clock, ManualClock)

    @property
    def now(self) -> float:
        """The simulated time, in Unix seconds."""
        return self.core.clock.now()

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        return self.now - self.started_at

    @property
    def requests_lost(self) -> float:
        """Requests the core has dropped so far: in flight on a replica whose GPU failed (each
        pool publishes its own as `requests_failed`), or handed over at a drain deadline with
        no ready replica to take them (which nothing publishes); read from the core in this
        process."""
        return self.core.control.lost + sum(self.core.world.failed.values())

    # -- acting ---------------------------------------------------------------------------------

    async def command(self, command: OperatorCommand | str, /, **fields: Any) -> Reply:
        """Send an operator command and return the core's reply: a Command struct, or an op
        and its fields (`await dc.command("drain", nodes=["r001-n01"], grace_s=60)`), given
        an id unless `id=` is passed. ValueError if the fields do not make a valid command."""
        if isinstance(command, str):
            ident = fields.pop("id", None) or self.client.new_id(command)
            command = build_command(command, ident, **fields)
        elif fields:
            raise TypeError("fields go with an op name, not with a Command")
        self.runner.check()
        return await self.client.command(command)

    async def inject(self, target: str, kind: str, **params: int | float | str | bool) -> Reply:
        """Inject a fault (`xid`, `cooling`, `link_flap`, `pause_storm`, `lpu_chip`,
        `power_loss`) into a node or switch: `await dc.inject("r001-n01", "xid", code=79)`."""
        return await self.command("inject_fault", target=target, kind=kind, params=params)

    async def clear(self, target: str, kind: str | None = None) -> Reply:
        """Clear one kind of fault from a node or switch, or all of them."""
        fields: dict[str, Any] = {"target": target} | ({"kind": kind} if kind else {})
        return await self.command("clear_fault", **fields)

    async def query(self, answer: type[AnswerT], **filters: Any) -> AnswerT:
        """The core's answer to the query that `answer` (a Struct of protocols.queries, or
        PoolStates or FabricState) answers; CommandFailed if the core refuses it."""
        query = build_command("query", self.client.new_id("query"), what=asked(answer), **filters)
        assert isinstance(query, Query)
        self.runner.check()
        return await self.client.requester.answer_to(query, answer)

    async def node_state(self, node: str) -> str:
        """A node's state: ready, cordoned, draining, drained, lost or failed."""
        return (await self.query(NodeDetail, node=node)).state

    def change_traffic(
        self,
        model: str,
        *,
        peak_rps: float | None = None,
        burst_factor: float | None = None,
        burst_s: float = 60.0,
    ) -> None:
        """Change a model's traffic from now on: its daily peak in requests per second, and/or
        a burst of `burst_factor` times the rate for `burst_s` seconds starting now."""
        models = self.core.world.models
        if model not in models:
            raise ValueError(f"no traffic for model {model!r} (models: {', '.join(models)})")
        index = models.index(model)
        if peak_rps is not None:
            if not (math.isfinite(peak_rps) and peak_rps >= 0):
                raise ValueError(f"peak_rps must be a number >= 0, not {peak_rps}")
            self.core.world.traffic.set_rate(index, peak_rps)
        if burst_factor is not None:
            self.core.world.traffic.add_burst(index, self.now, burst_s, burst_factor)

    # -- time -----------------------------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass: tick by tick in lockstep with the agents on a
        manual clock, by waiting (seconds / speed real seconds) on a real one."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a number >= 0, not {seconds}")
        target = self.now + seconds
        clock = self.core.clock
        if isinstance(clock, ManualClock):
            while clock.next_tick(self.runner.tick_s) <= target:
                await self.runner.tick(clock)
            if target > clock.now():
                await clock.advance(target - clock.now())
        else:
            await self.runner.guard(clock.sleep_until(target))

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float = 60.0,  # noqa: ASYNC109 (simulated seconds; asyncio's are real ones)
        what: str | None = None,
    ) -> Any:
        """Wait until `predicate(state)` (a function, or a coroutine function) is truthy and
        return its value; WaitTimeout after `timeout` simulated seconds. On a manual clock
        the predicate is checked after every tick, on a real one after every state update."""
        deadline = self.now + timeout
        while True:
            value = await _evaluate(predicate, self.state)
            if value:
                return value
            if self.now >= deadline:
                raise WaitTimeout(
                    f"{what or _describe(predicate)} was not met within {timeout:g} s "
                    f"(simulated; at t+{self.elapsed:.0f} s)"
                )
            await self.next_tick()

    async def next_tick(self) -> None:
        """Run (manual clock) or wait for (real clock) the core's next published tick."""
        await self.runner.next_tick()


def build_command(op: str, ident: str, **fields: Any) -> OperatorCommand:
    """The operator command `op` with these fields, checked as the core checks it;
    ValueError with the core's sentence (`malformed command: ...`) if it is not valid."""
    try:
        return COMMAND.decode(encode_json({"op": op, "id": ident} | fields))
    except MessageError as error:
        raise ValueError(str(error)) from None


async def _evaluate(predicate: Predicate, state: State) -> object:
    value = predicate(state)
    if inspect.isawaitable(value):
        value = await value
    return value


def _describe(predicate: Predicate) -> str:
    name = getattr(predicate, "__name__", "")
    if name and name != "<lambda>":
        return f"condition {name}"
    try:
        return f"condition `{inspect.getsource(predicate).strip()}`"
    except (OSError, TypeError):
        return "the condition"
