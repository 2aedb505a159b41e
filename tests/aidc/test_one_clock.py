"""One simulated clock for the whole loop: device physics runs on the core's time, so a fault
takes the same simulated seconds at any speed, and a seed gives the same figures whatever
order the agents were born in."""

import msgspec
import pytest

from agents import fleet as fleet_module
from aidc.site.datacenter import DataCenter
from aidc.site.state import State
from protocols.messages import PoolStates
from sim.pools import PoolSpec
from sim.traffic import TrafficProfile

pytestmark = pytest.mark.broker

H100 = "NVIDIA H100 80GB HBM3"
POOLS = [PoolSpec("llama-70b-h100", "llama-3-1-70b", H100, 8, replicas=4, min_available=1)]
TRAFFIC = {"llama-3-1-70b": TrafficProfile(peak_rps=8.0, diurnal_amplitude=0.0)}


def throttled(state: State) -> bool:
    return any(e.kind == "thermal" and e.subject.startswith("gpu/r001-n01/") for e in state.events)


async def seconds_to_throttle(speed: float) -> float:
    """Simulated seconds from a cooling failure on r001-n01 to its GPUs' thermal warning."""
    async with DataCenter.start(
        {"hgx-h100": 1}, speed=speed, seed=4, tick_s=0.25, pools=POOLS, traffic=TRAFFIC
    ) as dc:
        await dc.advance(60 * speed / 60)  # a little serving first
        assert not throttled(dc.state)
        began = dc.now
        reply = await dc.inject("r001-n01", "cooling", severity=0.6)
        assert reply.ok
        await dc.wait_for(throttled, timeout=1800, what="a thermal warning")
        event = next(e for e in dc.state.events if e.kind == "thermal")
        return event.time - began


async def test_a_cooling_fault_throttles_in_simulated_seconds_at_any_speed() -> None:
    at_6x = await seconds_to_throttle(6.0)
    at_60x = await seconds_to_throttle(60.0)
    # Ticks and the agents' steps are 1.5 simulated seconds at 6x and 15 at 60x, so the
    # warning may come a step or two early or late; on the wall clock (the agents' old one)
    # 60x took ten times 6x's simulated time.
    step = 15.0
    assert 10 < at_6x < 900
    assert abs(at_60x - at_6x) <= 2 * step + 0.2 * at_6x, (at_6x, at_60x)


async def pool_figures(
    monkeypatch: pytest.MonkeyPatch, reverse: bool
) -> tuple[list[str], list[PoolStates]]:
    """Every pool figure of 6 ticks of a site whose agents are born in the usual order, or
    with their kinds the other way round."""
    if reverse:
        groups = fleet_module._groups
        monkeypatch.setattr(fleet_module, "_groups", lambda *a: groups(*a)[::-1])
    figures = []
    async with DataCenter.start({"hgx-h100": 2, "lpu": 1}, seed=9) as dc:
        born = [a.id for a in dc.runner.fleet.agents]
        for _ in range(6):
            await dc.advance(5)
            assert dc.state.pools is not None
            figures.append(msgspec.structs.replace(dc.state.pools, time=0.0))
    monkeypatch.undo()
    return born, figures


async def test_the_same_seed_gives_the_same_pools_whatever_the_birth_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    born, first = await pool_figures(monkeypatch, reverse=False)
    born_again, second = await pool_figures(monkeypatch, reverse=True)
    assert born_again != born, "the agents were born in another order"
    assert sorted(born_again) == sorted(born)
    differ = [
        f"tick {tick}: {one.pool}.{name} {getattr(one, name)!r} != {getattr(two, name)!r}"
        for tick, (a, b) in enumerate(zip(first, second, strict=True))
        for one, two in zip(a.pools, b.pools, strict=True)
        for name in one.__struct_fields__
        if getattr(one, name) != getattr(two, name)
    ]
    assert not differ, differ
    assert [a.routes for a in first] == [b.routes for b in second]
    assert any(p.tokens_per_s > 0 for p in first[-1].pools), "traffic was served"
