"""Components killed with SIGKILL on a live site: the core comes back with every operator
decision from its journal, and a dead fleet's nodes go lost, their replicas move and the
requests they held are counted as failed."""

import asyncio
import time
from collections.abc import Iterator

import pytest

from protocols.codec import read_answer
from protocols.commands import Cordon, OperatorCommand, Query, Route, Scale
from protocols.link import Link
from protocols.messages import PoolState, PoolStates, Summary
from protocols.queries import NodesPage
from tests.chaos.site import LiveSite, live_site, report
from tests.mqtt import Inbox, running, until

POOL, MODEL = "llama-70b-h100", "llama-3-1-70b"
COLD_START_S = 90.0
"""A fresh numba cache compiles the core's kernels before its first tick."""


def pool(inbox: Inbox) -> PoolState | None:
    states = inbox.latest(PoolStates)
    return next((p for p in states.pools if p.pool == POOL), None) if states else None


def watcher(site: LiveSite, name: str) -> Link:
    state = f"aidc/v1/{site.site}/state/+"
    return Link(site.endpoint, name, subscriptions=[(state, 0)])


@pytest.fixture
def site() -> Iterator[LiveSite]:
    with live_site("chaos1", racks=2, fleet=False) as live:
        live.start_fleet("fleet-a", "--shard", "0/2")
        live.start_fleet("fleet-b", "--shard", "1/2")
        yield live


async def test_a_killed_core_restarts_with_every_decision(site: LiveSite) -> None:
    async with running(watcher(site, "restart-watch")) as inbox:
        await until(lambda: (p := pool(inbox)) is not None and p.replicas_ready == 2, COLD_START_S)
        decisions: list[OperatorCommand] = [
            Cordon(id="keep-cordon", nodes=["r002-n03"], reason="chaos"),
            Scale(id="keep-scale", pool=POOL, replicas=3),
            Route(id="keep-route", model=MODEL, weights={POOL: 90.0, "llama-70b-gb200": 10.0}),
        ]
        for decision in decisions:
            assert (await site.ask(decision)).ok
        await until(lambda: (p := pool(inbox)) is not None and p.replicas_ready == 3, 60)
        last_tick = inbox.received(Summary).tick
        site.kill("core")
        killed = time.monotonic()
        site.start_core()
        await until(lambda: inbox.received(Summary).tick < last_tick, COLD_START_S)  # the new one
        await until(lambda: (s := inbox.received(Summary)).gpus_healthy + s.gpus_cordoned == 64, 30)
        resynced_s = time.monotonic() - killed
        states = await site.node_states()
        assert states["r002-n03"] == "cordoned"
        await until(lambda: (p := pool(inbox)) is not None and p.replicas_ready == 3, 60)
        assert pool(inbox).replicas_desired == 3  # type: ignore[union-attr]
        routes = {r.model: r.weights for r in inbox.received(PoolStates).routes}
        assert routes[MODEL] == {POOL: 90.0, "llama-70b-gb200": 10.0}
        again = await site.ask(Scale(id="keep-scale", pool=POOL, replicas=3))
        assert again.ok, "the same id after a restart is answered again, not refused"
    report("core SIGKILL", decisions=len(decisions), kept=len(decisions), resync_s=resynced_s)


async def test_a_killed_fleet_goes_lost_and_its_replicas_move(site: LiveSite) -> None:
    async with running(watcher(site, "fleet-watch")) as inbox:
        await until(lambda: (p := pool(inbox)) is not None and p.replicas_ready == 2, COLD_START_S)
        held = await site.ask(Query(id="held", what="nodes", pool=POOL))
        racks = {row.rack for row in read_answer(NodesPage, held).nodes}
        victim = "fleet-a" if "r001" in racks else "fleet-b"
        lost_rack = "r001" if victim == "fleet-a" else "r002"
        site.kill(victim)
        killed = time.monotonic()
        # its rack's four nodes, and any switch whose agent ran in that process
        await until(lambda: inbox.received(Summary).nodes.get("lost", 0) >= 4, 30)
        lost_s = time.monotonic() - killed
        assert set((await site.node_states(rack=lost_rack)).values()) == {"lost"}
        await until(lambda: (p := pool(inbox)) is not None and p.replicas_ready == 2, 60)
        moved_s = time.monotonic() - killed
        now_held = await site.ask(Query(id="held-after", what="nodes", pool=POOL))
        now_racks = {row.rack for row in read_answer(NodesPage, now_held).nodes}
        assert now_racks == {"r001", "r002"} - {lost_rack}
        await asyncio.sleep(1)
        failed = pool(inbox).requests_failed  # type: ignore[union-attr]
        assert failed > 0, "the requests the dead nodes held are counted"
    report("fleet SIGKILL", nodes_lost=4, lost_s=lost_s, replicas_moved_s=moved_s, failed=failed)
