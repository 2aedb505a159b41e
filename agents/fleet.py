"""A fleet: every agent of a site (or of one shard of it) in one process and one TaskGroup.

Devices of the same shape are stepped together once per interval, by the simulated seconds
the core's clock has moved (on a manual clock, as soon as the core announces a tick, with
the loads of the tick before); each message then goes out at its own phase within the
interval, so the broker sees a steady stream, not a burst.
"""

import asyncio
import contextlib
import dataclasses
import logging
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agents.agent import Agent
from agents.clock import FleetClock
from agents.connections import AgentConnection, Connection, Gateway, Publisher, Settings
from agents.groups import FaultRates, Group, compute_group, switch_group
from agents.topology import Rack, Site
from protocols.complaints import Complaints
from protocols.endpoint import Endpoint

log = logging.getLogger("aidc.agents")

CONNECT_BATCH = 200
"""Agents that connect at once; the next batch waits for them (or for CONNECT_WAIT_S)."""
CONNECT_WAIT_S = 2.0
PUBLISH_SLOTS = 50
"""The interval is cut into this many slots; a message goes out in the slot of its phase."""
ConnectionKind = Literal["gateway", "rack", "node"]
CONNECTION_KINDS: tuple[ConnectionKind, ...] = ("gateway", "rack", "node")
STOP_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class Status:
    """What the fleet is doing, for the status line."""

    agents: int
    up: int
    messages_per_s: float
    gpu_samples_per_s: float
    rejected: int


class Fleet:
    """The agents of a site shard, their devices, their connections, and the loop that drives
    them."""

    def __init__(
        self,
        site: Site,
        endpoint: Endpoint,
        *,
        interval_s: float = 1.0,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        connection: ConnectionKind = "gateway",
        fault_rates: FaultRates | None = None,
        agent_logins: bool = False,
    ) -> None:
        self.site = site
        self.interval_s = interval_s
        self.rng = np.random.default_rng(seed)
        self.complaints = Complaints(log)
        self.clock = FleetClock(time.monotonic(), on_manual_tick=self._step)
        self.groups = _groups(site, shard, seed, fault_rates or {})
        self.agents: list[Agent] = []
        for group in self.groups:
            for rack, nodes in enumerate(group.nodes):
                spans = (
                    [(n, 1) for n in range(len(nodes))]
                    if connection == "node"
                    else [(0, len(nodes))]
                )
                for first, count in spans:
                    self.agents.append(Agent(group, rack, first, count, interval_s))
        self.connections = self._connect(site, endpoint, shard, connection, agent_logins)
        # Single-agent connections publish at random phases; a gateway's batches evenly.
        publishers = [(c, p) for c in self.connections for p in c.publishers()]
        if connection == "gateway":
            phases = np.arange(len(publishers)) * (interval_s / max(len(publishers), 1))
        else:
            phases = self.rng.uniform(0, interval_s, len(publishers))
        self._slots: list[list[Publisher]] = [[] for _ in range(PUBLISH_SLOTS)]
        for (_, publish), phase in zip(publishers, phases, strict=True):
            self._slots[min(int(phase / interval_s * PUBLISH_SLOTS), PUBLISH_SLOTS - 1)].append(
                publish
            )
        self._published_at = (time.monotonic(), 0, 0)
        self.deaths_published = 0

    def _connect(
        self,
        site: Site,
        endpoint: Endpoint,
        shard: tuple[int, int],
        kind: ConnectionKind,
        agent_logins: bool,
    ) -> list[Connection]:
        # Agents need nothing of MQTT 5, and a 3.1.1 publish is cheaper to build.
        endpoint = dataclasses.replace(endpoint, mqtt5=False)
        voice = logging.getLogger("aidc.link.fleet")
        voice.setLevel(logging.WARNING)
        quiet = logging.getLogger("aidc.link.fleet.quiet")
        quiet.setLevel(logging.ERROR)

        def settings(first: bool) -> Settings:
            # The fleet speaks through its first connection's link; the rest keep quiet.
            log = voice if first else quiet
            return Settings(site.site, endpoint, self.complaints, self.clock, log, agent_logins)

        if kind == "gateway":
            name = gateway_id(shard)
            return (
                [Gateway(settings(True), name, self.agents, hears_clock=True)]
                if self.agents
                else []
            )
        return [
            AgentConnection(settings(n == 0), agent, hears_clock=n == 0)
            for n, agent in enumerate(self.agents)
        ]

    @property
    def gpus(self) -> int:
        """GPUs this fleet emulates."""
        return sum(agent.gpus for agent in self.agents)

    def up(self) -> int:
        """Agents whose connection is up now."""
        return sum(len(c.agents) for c in self.connections if c.link.connected.is_set())

    def status(self) -> Status:
        """Agents up and the publish rate since the last call."""
        now = time.monotonic()
        messages = sum(c.published for c in self.connections)
        samples = sum(agent.published * agent.gpus for agent in self.agents)
        then, last_messages, last_samples = self._published_at
        self._published_at = (now, messages, samples)
        elapsed = max(now - then, 1e-9)
        return Status(
            len(self.agents),
            self.up(),
            (messages - last_messages) / elapsed,
            (samples - last_samples) / elapsed,
            self.complaints.total,
        )

    async def run(self, on_connecting: Callable[[int, int], None] | None = None) -> None:
        """Connect every agent and drive them until cancelled; then publish their deaths."""
        _raise_file_limit(len(self.connections) + 256)
        ticker = asyncio.create_task(self._tick())
        try:
            for start in range(0, len(self.connections), CONNECT_BATCH):
                batch = self.connections[start : start + CONNECT_BATCH]
                for connection in batch:
                    connection.start_link()
                waits = [asyncio.ensure_future(c.link.connected.wait()) for c in batch]
                await asyncio.wait(waits, timeout=CONNECT_WAIT_S)
                for wait in waits:
                    wait.cancel()
                if on_connecting:
                    on_connecting(self.up(), len(self.agents))
            await ticker
        finally:
            ticker.cancel()
            await asyncio.shield(self._shut_down())

    async def _shut_down(self) -> None:
        """Every connection publishes its death and disconnects cleanly, within
        STOP_TIMEOUT_S."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                covered = await asyncio.gather(*(c.shut_down() for c in self.connections))
                self.deaths_published = sum(covered)
        await asyncio.gather(*(c.link.abort() for c in self.connections))
        for connection in self.connections:
            await connection.stop_link()

    async def _tick(self) -> None:
        """Step every device once per interval by the simulated seconds that passed, then
        publish slot by slot."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            self._step()
            monotonic = time.monotonic()
            for agent in self.agents:
                agent.expire(monotonic)
            for slot, publishers in enumerate(self._slots):
                await _sleep_until(loop, start + slot * self.interval_s / PUBLISH_SLOTS)
                for publish in publishers:
                    publish()
            start += self.interval_s
            if loop.time() > start:  # overloaded: start the next interval now
                start = loop.time()
            await _sleep_until(loop, start)

    def _step(self) -> None:
        """Step every device by the simulated seconds since the last step."""
        dt = self.clock.advance(time.monotonic())
        if dt > 0:  # a frozen clock draws no noise: a seed's run depends on it alone
            for group in self.groups:
                group.step(dt, self.rng)


def gateway_id(shard: tuple[int, int]) -> str:
    """The id of a shard's gateway connection: `gw1-of-1`, `gw2-of-4`, ..."""
    index, count = shard
    return f"gw{index + 1}-of-{count}"


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    await asyncio.sleep(max(0.0, when - loop.time()))


def _groups(site: Site, shard: tuple[int, int], seed: int, rates: FaultRates) -> list[Group]:
    """Racks of this shard grouped by kind, and network racks by size, with their banks."""
    index, count = shard
    by_kind: dict[str, list[Rack]] = defaultdict(list)
    first_nic: dict[str, list[int]] = defaultdict(list)
    position = 0
    for rack, nic in zip(site.racks, site.nic_starts, strict=True):
        if position % count == index:
            by_kind[rack.kind.key].append(rack)
            first_nic[rack.kind.key].append(nic)
        position += 1
    by_size: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    for net in site.fabric.net_racks():
        if position % count == index:
            by_size[len(net[1])].append(net)
        position += 1
    groups = [
        compute_group(site, racks, first_nic[key], seed + n, rates)
        for n, (key, racks) in enumerate(sorted(by_kind.items()))
    ]
    groups += [
        switch_group(site, nets, seed + 1000 + size, rates)
        for size, nets in sorted(by_size.items())
    ]
    return groups


def _raise_file_limit(wanted: int) -> None:
    """One socket per agent: raise the open-file limit as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
