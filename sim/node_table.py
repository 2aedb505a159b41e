"""The nodes view of a query: per-node figures computed over whole arrays, then filtered,
sorted and paged, so reading 125,000 nodes costs a few passes and one page of rows."""

from typing import Any

import numpy as np
import numpy.typing as npt

from protocols.commands import Query
from protocols.queries import NodeRow, NodesPage
from sim.control import NODE_STATES, STATE_INDEX, reporting
from sim.fleet_state import NODE_KINDS, DeviceTable
from sim.world import World

F64 = npt.NDArray[np.float64]
GPU_GAUGES = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE")
LPU_GAUGES = ("utilization", "temperature_c", "power_w")
DEVICE_GAUGES: dict[str, tuple[str, str | None, str | None]] = {
    "gpu": GPU_GAUGES,
    "lpu": LPU_GAUGES,
    "port": ("utilization", None, None),
}
"""The devices a node's figures come from (a node has one of these kinds), and the gauges of
their utilisation, temperature and power as their telemetry names them; switch ports report
no temperature or power."""
NODE_KIND_NAMES = {index: name for name, index in NODE_KINDS.items()}


def _per_node(values: npt.NDArray[Any], node: npt.NDArray[Any], nodes: int) -> F64:
    """Sum of `values` over each node's devices."""
    return np.bincount(node, np.asarray(values, np.float64), nodes).astype(np.float64, copy=False)


def _max_per_node(values: npt.NDArray[Any], node: npt.NDArray[Any], nodes: int) -> F64:
    """Largest of `values` over each node's devices (0 for none)."""
    out = np.zeros(nodes)
    np.maximum.at(out, node, np.asarray(values, np.float64))
    return out


def _live_gauge(
    devices: DeviceTable, name: str, rows: slice | npt.NDArray[np.intp], live: npt.NDArray[np.bool_]
) -> npt.NDArray[np.floating]:
    """A gauge of `rows`, 0 where a device does not report (`live` is false): it adds
    nothing."""
    return np.where(live, devices.gauge(name)[rows], 0.0)


def _measured(value: float) -> float | None:
    """A figure rounded for the view, or None where nothing measured it (a switch's heat)."""
    return None if np.isnan(value) else round(float(value), 1)


def _rows_of(node: npt.NDArray[Any], only: int | None) -> slice | npt.NDArray[np.intp]:
    """The device rows of node row `only`, or all of them."""
    return slice(None) if only is None else np.flatnonzero(node == only)


class NodeTable:
    """Every node's row of the nodes view, as columns."""

    def __init__(self, world: World, now: float, nic_gbps: F64, only: int | None = None) -> None:
        """Every node's figures; with `only` (a node row), only that node's are filled in, so
        one node's detail reads its own devices rather than the fleet's."""
        fleet, n = world.fleet, len(world.fleet.nodes)
        self.world, self.n = world, n
        self.ids = fleet.nodes.ids
        self.rack = fleet.nodes["rack"].astype(np.int64)
        self.kind = fleet.nodes["kind"].astype(np.int64)
        self.state = world.control.node_states(now).astype(np.int64)
        self.gpus, self.healthy, self.allocated, live = (np.zeros(n) for _ in range(4))
        busy, self.power_w, self.last_xid = np.zeros(n), np.zeros(n), np.zeros(n)
        self.temperature_c = np.full(n, np.nan)
        measured = np.zeros(n, np.bool_)
        self.pool = np.full(n, -1, np.int64)
        for kind, (utilization, temperature, power) in DEVICE_GAUGES.items():
            devices = fleet.devices[kind]
            table = devices.table
            mine = _rows_of(table["node"], only)
            node = table["node"][mine]
            reports = reporting(table["present"][mine], node, self.state)
            self.gpus += _per_node(np.ones(node.shape), node, n)
            self.healthy += _per_node(table["present"][mine], node, n)
            live += _per_node(reports, node, n)
            busy += _per_node(_live_gauge(devices, utilization, mine, reports), node, n)
            if temperature is not None and power is not None:
                hottest = _max_per_node(_live_gauge(devices, temperature, mine, reports), node, n)
                has = _per_node(reports, node, n) > 0
                self.temperature_c = np.where(
                    has, np.fmax(self.temperature_c, hottest), self.temperature_c
                )
                measured |= has
                self.power_w += _per_node(_live_gauge(devices, power, mine, reports), node, n)
            if kind in world.pools.owner:
                owner = world.pools.owners(kind)[: len(table)][mine]
                self.allocated += _per_node(owner >= 0, node, n)
                pools = np.where(owner >= 0, world.pools.replicas["pool"][np.maximum(owner, 0)], -1)
                np.maximum.at(self.pool, node, pools.astype(np.int64))
            if kind == "gpu":
                xid = _live_gauge(devices, "DCGM_FI_DEV_XID_ERRORS", mine, reports)
                self.last_xid = _max_per_node(xid, node, n)
        self.utilization = busy / np.maximum(live, 1.0)
        self.power_w = np.where(measured, self.power_w, np.nan)
        nic_node = fleet.devices["nic"].table["node"][: len(nic_gbps)]
        nics = _rows_of(nic_node, only)
        self.nic_gbps = _per_node(nic_gbps[: len(nic_node)][nics], nic_node[nics], n)
        self.pool_names = list(world.pools.pools)

    def _text(self, key: str) -> list[str]:
        racks = self.world.fleet.racks.ids
        if key == "node":
            return list(self.ids)
        if key == "rack":
            return [racks[int(r)] for r in self.rack]
        if key == "kind":
            return [NODE_KIND_NAMES[int(k)] for k in self.kind]
        if key == "state":
            return [NODE_STATES[int(s)] for s in self.state]
        return [self.pool_names[int(p)] if p >= 0 else "" for p in self.pool]

    def select(self, query: Query) -> npt.NDArray[np.intp]:
        """Rows that pass the query's rack, state, pool and text filters, in its sort order."""
        keep = np.ones(self.n, np.bool_)
        if query.rack:
            racks = self.world.fleet.racks.rows
            keep &= self.rack == racks.get(query.rack, -1)
        if query.state:
            keep &= self.state == STATE_INDEX[query.state]
        if query.pool:
            names = self.pool_names
            keep &= self.pool == (names.index(query.pool) if query.pool in names else -2)
        if query.filter:
            keep &= np.fromiter((query.filter in node for node in self.ids), np.bool_, self.n)
        rows = np.flatnonzero(keep)
        key = query.sort
        if key in ("node", "rack", "kind", "state", "pool"):
            text = self._text(key)
            order = sorted(rows.tolist(), key=lambda r: (text[r], self.ids[r]))
            rows = np.array(order, np.intp)
        else:
            rows = rows[np.argsort(getattr(self, key)[rows], kind="stable")]
        return rows[::-1] if query.descending else rows

    def row(self, r: int) -> NodeRow:
        """One node's row."""
        pool = int(self.pool[r])
        return NodeRow(
            node=self.ids[r],
            rack=self.world.fleet.racks.ids[int(self.rack[r])],
            kind=NODE_KIND_NAMES[int(self.kind[r])],
            state=NODE_STATES[int(self.state[r])],
            gpus=int(self.gpus[r]),
            healthy=int(self.healthy[r]),
            allocated=int(self.allocated[r]),
            utilization=round(float(self.utilization[r]), 1),
            temperature_c=_measured(self.temperature_c[r]),
            power_w=_measured(self.power_w[r]),
            last_xid=int(self.last_xid[r]),
            nic_gbps=round(float(self.nic_gbps[r]), 2),
            pool=self.pool_names[pool] if pool >= 0 else "",
        )


def nodes_page(world: World, query: Query, now: float, nic_gbps: F64) -> NodesPage:
    """The page of the nodes view a query asks for, with the total that passed its filters."""
    table = NodeTable(world, now, nic_gbps)
    rows = table.select(query)
    page = rows[query.offset : query.offset + query.limit]
    return NodesPage(
        total=int(rows.size),
        offset=query.offset,
        sort=query.sort,
        nodes=[table.row(int(r)) for r in page],
    )
