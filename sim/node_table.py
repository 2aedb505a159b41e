"""The nodes view of a query: per-node figures computed over whole arrays, then filtered,
sorted and paged, so reading 125,000 nodes costs a few passes and one page of dicts."""

from typing import Any

import numpy as np
import numpy.typing as npt

from protocols.commands import Query
from sim.control import NODE_STATES, STATE_INDEX, reporting
from sim.fleet_state import NODE_KINDS, DeviceTable
from sim.world import World

F64 = npt.NDArray[np.float64]
NODE_KIND_NAMES = {index: name for name, index in NODE_KINDS.items()}
SORT_KEYS = (
    "node",
    "rack",
    "kind",
    "state",
    "gpus",
    "healthy",
    "allocated",
    "utilization",
    "temperature_c",
    "power_w",
    "last_xid",
    "nic_gbps",
    "pool",
)
"""What nodes can be sorted by: every column of a row."""


def _per_node(values: npt.NDArray[Any], node: npt.NDArray[Any], nodes: int) -> F64:
    """Sum of `values` over each node's devices."""
    return np.bincount(node, np.asarray(values, np.float64), nodes).astype(np.float64, copy=False)


def _max_per_node(values: npt.NDArray[Any], node: npt.NDArray[Any], nodes: int) -> F64:
    """Largest of `values` over each node's devices (0 for none)."""
    out = np.zeros(nodes)
    np.maximum.at(out, node, np.asarray(values, np.float64))
    return out


def _live_gauge(
    gpus: DeviceTable, name: str, rows: slice | npt.NDArray[np.intp], live: npt.NDArray[np.bool_]
) -> npt.NDArray[np.floating]:
    """A gauge of `rows`, 0 where a GPU does not report (`live` is false): it adds nothing."""
    return np.where(live, gpus.gauge(name)[rows], 0.0)


def _rows_of(node: npt.NDArray[Any], only: int | None) -> slice | npt.NDArray[np.intp]:
    """The device rows of node row `only`, or all of them."""
    return slice(None) if only is None else np.flatnonzero(node == only)


class NodeTable:
    """Every node's row of the nodes view, as columns."""

    def __init__(self, world: World, now: float, nic_gbps: F64, only: int | None = None) -> None:
        """Every node's figures; with `only` (a node row), only that node's are filled in, so
        one node's detail reads its own devices rather than the fleet's."""
        fleet, n = world.fleet, len(world.fleet.nodes)
        gpus = fleet.devices["gpu"]
        table = gpus.table
        mine = _rows_of(table["node"], only)
        node = table["node"][mine]
        owner = world.pools.owners("gpu")[: len(table)][mine]
        held = owner >= 0
        self.world, self.n = world, n
        self.ids = fleet.nodes.ids
        self.rack = fleet.nodes["rack"].astype(np.int64)
        self.kind = fleet.nodes["kind"].astype(np.int64)
        self.state = world.control.node_states(now).astype(np.int64)
        self.gpus = fleet.nodes["gpus"].astype(np.float64)
        self.healthy = _per_node(table["present"][mine], node, n)
        self.allocated = _per_node(held, node, n)
        live = reporting(table["present"][mine], node, self.state)
        util = _per_node(_live_gauge(gpus, "DCGM_FI_DEV_GPU_UTIL", mine, live), node, n)
        self.utilization = util / np.maximum(_per_node(live, node, n), 1.0)
        temperature = _live_gauge(gpus, "DCGM_FI_DEV_GPU_TEMP", mine, live)
        self.temperature_c = _max_per_node(temperature, node, n)
        self.power_w = _per_node(_live_gauge(gpus, "DCGM_FI_DEV_POWER_USAGE", mine, live), node, n)
        xid = _live_gauge(gpus, "DCGM_FI_DEV_XID_ERRORS", mine, live)
        self.last_xid = _max_per_node(xid, node, n)
        nic_node = fleet.devices["nic"].table["node"][: len(nic_gbps)]
        nics = _rows_of(nic_node, only)
        self.nic_gbps = _per_node(nic_gbps[: len(nic_node)][nics], nic_node[nics], n)
        pool_of_gpu = np.where(held, world.pools.replicas["pool"][np.maximum(owner, 0)], -1)
        self.pool = np.full(n, -1, np.int64)
        np.maximum.at(self.pool, node, pool_of_gpu.astype(np.int64))
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
        key = query.sort if query.sort in SORT_KEYS else "node"
        if key in ("node", "rack", "kind", "state", "pool"):
            text = self._text(key)
            order = sorted(rows.tolist(), key=lambda r: (text[r], self.ids[r]))
            rows = np.array(order, np.intp)
        else:
            rows = rows[np.argsort(getattr(self, key)[rows], kind="stable")]
        return rows[::-1] if query.descending else rows

    def row(self, r: int) -> dict[str, Any]:
        """One node's row."""
        pool = int(self.pool[r])
        return {
            "node": self.ids[r],
            "rack": self.world.fleet.racks.ids[int(self.rack[r])],
            "kind": NODE_KIND_NAMES[int(self.kind[r])],
            "state": NODE_STATES[int(self.state[r])],
            "gpus": int(self.gpus[r]),
            "healthy": int(self.healthy[r]),
            "allocated": int(self.allocated[r]),
            "utilization": round(float(self.utilization[r]), 1),
            "temperature_c": round(float(self.temperature_c[r]), 1),
            "power_w": round(float(self.power_w[r]), 1),
            "last_xid": int(self.last_xid[r]),
            "nic_gbps": round(float(self.nic_gbps[r]), 2),
            "pool": self.pool_names[pool] if pool >= 0 else "",
        }


def nodes_page(world: World, query: Query, now: float, nic_gbps: F64) -> dict[str, Any]:
    """The page of the nodes view a query asks for, with the total that passed its filters."""
    table = NodeTable(world, now, nic_gbps)
    rows = table.select(query)
    page = rows[query.offset : query.offset + query.limit]
    return {
        "total": int(rows.size),
        "offset": query.offset,
        "sort": query.sort if query.sort in SORT_KEYS else "node",
        "nodes": [table.row(int(r)) for r in page],
    }
