"""The Python scenario API against a real broker, core and agents: the manual clock ticks in
lockstep, commands and faults are answered, waits time out with a sentence, the same seed
gives the same traffic, and a real clock runs at its speed."""

import asyncio
import re
import time

import pytest

from aidc.site.datacenter import DataCenter, WaitTimeout
from protocols.commands import Drain
from protocols.endpoint import Endpoint
from sim.pools import PoolSpec
from sim.traffic import TrafficProfile

pytestmark = pytest.mark.broker

H100 = "NVIDIA H100 80GB HBM3"
POOLS = [PoolSpec("llama-70b-h100", "llama-3-1-70b", H100, 8, replicas=2, min_available=1)]
TRAFFIC = {"llama-3-1-70b": TrafficProfile(peak_rps=6.0)}
SMALL = {"hgx-h100": 1}


async def test_a_manual_clock_moves_a_tick_at_a_time_and_only_when_told(broker: Endpoint) -> None:
    async with DataCenter.start(SMALL, broker=broker, site="api-clock") as dc:
        assert dc.manual
        assert dc.state.summary is not None
        first = dc.state.summary.tick
        assert dc.state.summary.gpus == 32
        assert dc.state.summary.nodes == {"ready": 6}  # four nodes, a leaf and a spine
        before = dc.now
        await asyncio.sleep(0.3)
        assert dc.now == before, "no time passes by itself"
        await dc.advance(10)
        assert dc.elapsed == pytest.approx(10, abs=1e-6)
        assert dc.state.summary.tick == first + 10
        assert dc.state.summary.time == pytest.approx(dc.now, abs=1e-6)
        await dc.advance(0.5)
        assert dc.state.summary.tick == first + 10, "half a tick runs no tick"


async def test_commands_are_answered_and_a_critical_xid_drains_the_node(broker: Endpoint) -> None:
    async with DataCenter.start(
        SMALL, seed=3, broker=broker, site="api-xid", pools=POOLS, traffic=TRAFFIC
    ) as dc:
        unknown = await dc.command("cordon", nodes=["r009-n01"])
        assert not unknown.ok
        assert unknown.error == "unknown node r009-n01"
        cordon = await dc.command("cordon", nodes=["r001-n04"], reason="test")
        assert cordon.ok, cordon.error
        assert await dc.node_state("r001-n04") == "cordoned"
        drain = await dc.command(Drain(id="drain-me", nodes=["r001-n04"], grace_s=5))
        assert drain.ok
        assert drain.id == "drain-me"

        injected = await dc.inject("r001-n01", "xid", code=79, gpu=3)
        assert injected.ok, injected.error
        event = await dc.wait_for(
            lambda s: s.find_events("control", message="node r001-n01 drained"), timeout=20
        )
        assert dc.elapsed <= 20
        assert event[0].severity == "info"
        assert dc.state.find_events("xid", subject="gpu/r001-n01/3", severity="critical")

        async def failed(_: object) -> bool:  # once its GPU's row has left the telemetry
            return await dc.node_state("r001-n01") == "failed"

        await dc.wait_for(failed, timeout=5)


async def test_a_malformed_command_is_one_sentence_before_anything_is_sent(
    broker: Endpoint,
) -> None:
    async with DataCenter.start(SMALL, broker=broker, site="api-bad") as dc:
        with pytest.raises(ValueError, match=r"malformed command: .*`grace`"):
            await dc.command("drain", nodes=["r001-n01"], grace=60)
        with pytest.raises(ValueError, match="no traffic for model 'gpt-5'"):
            dc.change_traffic("gpt-5", peak_rps=10)


async def test_a_wait_that_is_not_met_says_what_and_when(broker: Endpoint) -> None:
    async with DataCenter.start(SMALL, broker=broker, site="api-wait") as dc:
        with pytest.raises(WaitTimeout) as caught:
            await dc.wait_for(lambda s: s.summary and s.summary.gpus_lost > 0, timeout=5)
        assert re.search(r"s\.summary\.gpus_lost > 0.* not met within 5 s", str(caught.value))
        assert dc.elapsed == pytest.approx(5, abs=1.01)

        async def never(_: object) -> bool:
            return False

        with pytest.raises(WaitTimeout, match="condition never was not met within 2 s"):
            await dc.wait_for(never, timeout=2)


async def test_the_same_seed_gives_the_same_traffic() -> None:
    seen = []
    for _ in range(2):
        async with DataCenter.start(SMALL, seed=7, pools=POOLS, traffic=TRAFFIC) as dc:
            await dc.advance(40)
            dc.change_traffic("llama-3-1-70b", burst_factor=3, burst_s=20)
            figures = []
            for _ in range(4):
                await dc.advance(15)
                assert dc.state.summary is not None
                figures.append(dc.state.summary.requests_per_s)
            seen.append(figures)
    # Agents are processes of their own, so their births can arrive in another order, which
    # orders the replicas, and so the sums over them, differently: equal but for rounding.
    assert seen[0] == pytest.approx(seen[1], rel=1e-12)
    assert seen[0][0] > seen[0][-1] > 0, "the burst is over by the end"


async def test_a_real_clock_runs_at_its_speed_on_a_broker_it_starts() -> None:
    async with DataCenter.start(SMALL, speed=50, broker="mosquitto") as dc:
        assert not dc.manual
        began = time.monotonic()
        await dc.advance(50)
        assert 0.9 <= time.monotonic() - began <= 3.0
        await dc.wait_for(lambda s: s.summary and s.summary.time >= dc.started_at + 50, timeout=30)
        assert dc.state.summary is not None
        assert dc.state.summary.speed == 50
