"""What dashboards see: the summary, rack and pool views of each tick, and answers to
queries, built from the world without ever sending the whole fleet."""

import math
from dataclasses import dataclass

import msgspec
import numpy as np

from protocols.columns import RackColumns, layout
from protocols.commands import Query
from protocols.messages import (
    Percentiles,
    PoolState,
    PoolStates,
    RackStates,
    RouteState,
    Summary,
)
from protocols.queries import CommandsPage, GpuReadings, NicReadings, NodeDetail, NodesPage
from sim.aggregate import MEASURED, merge_rack_totals, rack_totals
from sim.control import NODE_STATES, STATE_INDEX, reporting
from sim.fleet_state import NODE_KINDS, DeviceTable
from sim.node_table import GPU_GAUGES, LPU_GAUGES, NodeTable, nodes_page
from sim.pools import READY, WARMING
from sim.world import PoolFigures, TickReport, World

HEALTH_WARNING_C = 85.0
"""A rack with a GPU this hot shows as a warning."""
AGE_SAMPLE = 65536
"""Nodes the telemetry age percentiles look at, at most (evenly spread): their p99 is
within a fraction of a percentile of the whole fleet's, at a fixed cost per tick."""


@dataclass(frozen=True)
class Pace:
    """How the core kept up, for the summary: what it ingested and shed since the last tick,
    and how long its work took."""

    wall_time: float
    """The wall clock now, against which telemetry ages are measured."""
    messages_per_s: float = 0.0
    gpu_samples_per_s: float = 0.0
    gpu_samples: int = 0
    """GPU samples ingested since the core started."""
    dropped: int = 0
    tick_ms: float = 0.0
    assign_ms: float = 0.0


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _percentiles(values: tuple[float, float, float]) -> Percentiles:
    return Percentiles(*(_finite(v) for v in values))


def _gauges(devices: DeviceTable, row: int) -> dict[str, float]:
    """A device's latest gauges, by name."""
    return {name: float(devices.table["gauges"][i, row]) for i, name in enumerate(devices.gauges)}


def _counters(devices: DeviceTable, row: int) -> dict[str, int]:
    """A device's latest counters, by name."""
    counters = devices.table["counters"]
    return {name: int(counters[i, row]) for i, name in enumerate(devices.counters)}


class Views:
    """Builds the dashboard messages of a world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.nic_gbps = np.zeros(0)
        """Each NIC's latest offered load in Gb/s each way, as the core last assigned it."""

    def _by_state(
        self, present: np.ndarray, node_of: np.ndarray, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Devices on nodes `node_of` by their own state, given every node's, as masks: lost
        when it does not report, else cordoned when its node is cordoned, draining or
        drained, else healthy."""
        live = reporting(present, node_of, nodes)
        held = self.world.control.intended_states()[node_of] != STATE_INDEX["ready"]
        return live & ~held, live & held, ~live

    def _gpus_by_state(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        table = self.world.fleet.devices["gpu"].table
        return self._by_state(table["present"], table["node"], nodes)

    def summary(
        self, report: TickReport, tick: int, speed: float, pace: Pace, rejected: int
    ) -> Summary:
        """The fleet in one message."""
        fleet = self.world.fleet
        nodes = self.world.control.node_states(report.time)
        healthy, cordoned, lost = self._gpus_by_state(nodes)
        gpus = fleet.devices["gpu"]
        lpus = fleet.devices["lpu"].table
        lpus_live = reporting(lpus["present"], lpus["node"], nodes)
        figures = report.pools.values()
        ages = self.telemetry_ages(pace.wall_time)
        ttft99 = [f.ttft[2] for f in figures if not math.isnan(f.ttft[2])]
        itl99 = [f.itl[2] for f in figures if not math.isnan(f.itl[2])]
        return Summary(
            time=report.time,
            tick=tick,
            speed=speed,
            gpus=len(gpus.table),
            gpus_healthy=int(np.count_nonzero(healthy)),
            gpus_cordoned=int(np.count_nonzero(cordoned)),
            gpus_lost=int(np.count_nonzero(lost)),
            lpus=len(lpus),
            lpus_healthy=int(np.count_nonzero(lpus["present"])),
            nodes={
                name: int(np.count_nonzero(nodes == i))
                for i, name in enumerate(NODE_STATES)
                if np.any(nodes == i)
            },
            power_w=float(gpus.gauge("DCGM_FI_DEV_POWER_USAGE")[~lost].sum())
            + float(fleet.devices["lpu"].gauge("power_w")[lpus_live].sum()),
            requests_per_s=sum(f.arrivals_per_s for f in figures),
            tokens_per_s=sum(f.tokens_per_s for f in figures),
            goodput_rps=sum(f.goodput_rps for f in figures),
            completed_per_s=sum(f.completed_per_s for f in figures),
            ttft_p99_s=max(ttft99, default=0.0),
            itl_p99_s=max(itl99, default=0.0),
            ingest_per_s=pace.messages_per_s,
            rejected=rejected,
            gpu_samples_per_s=pace.gpu_samples_per_s,
            gpu_samples=pace.gpu_samples,
            telemetry_age_p50_s=ages[0],
            telemetry_age_p99_s=ages[1],
            telemetry_dropped=pace.dropped,
            tick_ms=pace.tick_ms,
            assign_ms=pace.assign_ms,
        )

    def telemetry_ages(self, wall_now: float) -> tuple[float, float]:
        """p50 and p99 of how old the live nodes' latest samples are, in wall seconds (of a
        spread-out sample of AGE_SAMPLE nodes at most)."""
        nodes = self.world.fleet.nodes
        sampled = nodes["sampled"][nodes["alive"] & (nodes["sampled"] > 0)]
        if not sampled.size:
            return 0.0, 0.0
        sampled = sampled[:: max(1, sampled.size // AGE_SAMPLE)]
        p50, p99 = np.percentile(wall_now - sampled, [50, 99])
        return max(float(p50), 0.0), max(float(p99), 0.0)

    def racks(self, now: float) -> RackStates:
        """Per-rack aggregates of every GPU, LPU chip and switch."""
        fleet = self.world.fleet
        nodes = self.world.control.node_states(now)
        gpus = self._device_totals(nodes, "gpu", GPU_GAUGES)
        totals = merge_rack_totals(
            gpus, self._device_totals(nodes, "lpu", LPU_GAUGES), self._switch_totals(nodes)
        )
        # no thermal limit is published for the LPU: only GPUs make a rack hot
        health = np.where(
            totals["lost"] > 0, 2, np.where(gpus["temperature_c"] >= HEALTH_WARNING_C, 1, 0)
        )
        columns = layout(RackColumns).pack(
            {
                "node": np.arange(len(fleet.racks)),
                "devices": totals["devices"],
                "healthy": totals["healthy"],
                "cordoned": totals["cordoned"],
                "lost": totals["lost"],
                "utilization": totals["utilization"],
                "temperature_c": totals["temperature_c"],
                "power_kw": totals["power_w"] / 1000.0,
                "health": health,
            }
        )
        return RackStates(now, list(fleet.racks.ids), columns)

    def _totals(
        self,
        nodes: np.ndarray,
        node_of: np.ndarray,
        present: np.ndarray,
        gauges: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """Per-rack totals of devices on nodes `node_of`, each by its own state (a device
        that does not report is lost, and its gauges are left out)."""
        healthy, cordoned, lost = self._by_state(present, node_of, nodes)
        rack = self.world.fleet.nodes["rack"][node_of]
        return rack_totals(len(self.world.fleet.racks), rack, healthy, cordoned, lost, *gauges)

    def _device_totals(
        self, nodes: np.ndarray, kind: str, gauges: tuple[str, str, str]
    ) -> dict[str, np.ndarray]:
        """Per-rack totals of one kind of device, from its utilisation, temperature and power
        gauges."""
        devices = self.world.fleet.devices[kind]
        table = devices.table
        readings = tuple(devices.gauge(name) for name in gauges)
        return self._totals(nodes, table["node"], table["present"], readings)  # type: ignore[arg-type]

    def _switch_totals(self, nodes: np.ndarray) -> dict[str, np.ndarray]:
        """Per-rack totals of the switches, one device each, busy as the mean utilisation of
        its reporting ports; switches report no temperature or power (NaN)."""
        fleet = self.world.fleet
        switches = np.flatnonzero(fleet.nodes["kind"] == NODE_KINDS["switch"])
        ports = fleet.devices["port"]
        live = reporting(ports.table["present"], ports.table["node"], nodes)
        on = ports.table["node"][live]
        count = np.bincount(on, minlength=len(fleet.nodes))[switches]
        busy = np.bincount(on, ports.gauge("utilization")[live], len(fleet.nodes))[switches]
        unmeasured = np.zeros(len(switches))
        totals = self._totals(
            nodes, switches, count > 0, (busy / np.maximum(count, 1), unmeasured, unmeasured)
        )
        return totals | {name: np.full(len(fleet.racks), np.nan) for name in MEASURED}

    def pools(self, report: TickReport) -> PoolStates:
        """Every pool as vLLM would report it, and every route."""
        world = self.world
        states = []
        for name, pool in world.pools.pools.items():
            counts = world.pools.counts(pool)
            figures = report.pools.get(name, PoolFigures())
            good = figures.goodput_rps / figures.completed_per_s if figures.completed_per_s else 1.0
            states.append(
                PoolState(
                    pool=name,
                    model=pool.spec.model,
                    hardware=pool.spec.hardware,
                    replicas_desired=pool.desired,
                    replicas_ready=counts[READY],
                    replicas_warming=counts[WARMING],
                    min_available=pool.spec.min_available,
                    num_requests_running=round(figures.running),
                    num_requests_waiting=round(figures.waiting),
                    kv_cache_usage=figures.kv_cache_usage,
                    tokens_per_s=figures.tokens_per_s,
                    time_to_first_token=_percentiles(figures.ttft),
                    inter_token_latency=_percentiles(figures.itl),
                    e2e_request_latency=_percentiles(figures.e2e),
                    slo_attainment=min(max(good, 0.0), 1.0),
                    autoscale=bool(
                        world.control.autoscalers.get(name)
                        and world.control.autoscalers[name].enabled
                    ),
                    requests_per_s=figures.arrivals_per_s,
                    goodput_rps=figures.goodput_rps,
                    requests_failed=figures.failed,
                    has_hardware=world.pools.has_hardware(pool),
                )
            )
        routes = [RouteState(m, w) for m, w in world.control.routes.items()]
        return PoolStates(report.time, states, routes)

    def query(self, query: Query, now: float) -> NodesPage | NodeDetail | CommandsPage:
        """The answer to a read, paged."""
        if query.what == "nodes":
            return nodes_page(self.world, query, now, self.nic_gbps)
        if query.what == "node":
            return self._node(query, now)
        if query.what == "commands":
            journal = self.world.control.journal
            return CommandsPage(journal.audit(limit=query.limit, offset=query.offset))
        raise ValueError(f"the views do not answer {query.what} queries (the service does)")

    def _live_rows(self, row: int, kind: str, states: np.ndarray) -> list[tuple[int, bool]]:
        """The rows of node `row`'s devices of `kind`, each with whether its samples are
        current (a device that does not report has no readings, only its last ones)."""
        nodes, table = self.world.fleet.nodes, self.world.fleet.devices[kind].table
        rows = int(nodes[f"first_{kind}"][row]) + np.arange(int(nodes[f"{kind}s"][row]))
        live = reporting(table["present"][rows], table["node"][rows], states)
        return list(zip(rows.tolist(), live.tolist(), strict=True))

    def _node(self, query: Query, now: float) -> NodeDetail:
        fleet = self.world.fleet
        if query.node is None or query.node not in fleet.nodes.rows:
            raise ValueError(f"unknown node {query.node}")
        row = fleet.nodes.rows[query.node]
        page = NodeTable(self.world, now, self.nic_gbps, only=row)
        gpus = fleet.devices["gpu"]
        devices = [
            GpuReadings(
                gpu=int(gpus.table["slot"][device]),
                present=bool(gpus.table["present"][device]),
                gauges=_gauges(gpus, device) if live else {},
            )
            for device, live in self._live_rows(row, "gpu", page.state)
        ]
        nics = fleet.devices["nic"]
        links = [
            NicReadings(
                nic=int(nics.table["slot"][device]),
                present=bool(nics.table["present"][device]),
                gbps=float(self.nic_gbps[device]) if device < len(self.nic_gbps) else 0.0,
                gauges=_gauges(nics, device) if live else {},
                counters=_counters(nics, device) if live else {},
            )
            for device, live in self._live_rows(row, "nic", page.state)
        ]
        intent = self.world.control.intents.get(query.node)
        return NodeDetail(
            **msgspec.structs.asdict(page.row(row)),
            intent=intent.state if intent else "ready",
            devices=devices,
            nics=links,
        )
