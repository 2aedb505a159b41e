"""Pools of replicas: placement of tensor-parallel replicas on free healthy devices of one
NVLink domain, warm-up, graceful scale-down, and the per-replica arrays the serving kernel
takes."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import prange

from protocols.limits import MAX_DEVICES_PER_NODE
from sim.catalog import Accelerator, LlmModel, accelerator, llm_model
from sim.chunks import CHUNKS, add_chunks, chunk, parallel_kernel
from sim.fleet_state import FleetState
from sim.roofline import ReplicaPerf, replica_perf
from sim.routing import Policy
from sim.serving import ReplicaParams, ReplicaState, TickResult
from sim.tables import Table

WARMING, READY, DRAINING, STOPPED = 0, 1, 2, 3
"""Replica states."""
LOAD_BYTES_PER_S_PER_DEVICE = 2e9
"""How fast a device loads its share of the weights (storage and PCIe): sets warm-up time."""
LOAD_FIXED_S = 20.0
"""Container start, engine init and CUDA graph capture before the weights load."""


@parallel_kernel
def _promote_and_count(
    pool: np.ndarray, state: np.ndarray, ready_at: np.ndarray, now: float, pools: int
) -> np.ndarray:
    """Warming replicas whose time has come become ready; each pool's warming and ready ones."""
    counts = np.zeros((CHUNKS, pools), np.int64)
    for c in prange(CHUNKS):
        lo, hi = chunk(pool.size, c)
        p, run = -1, 0  # a run of one pool's replicas counts in a register
        for r in range(lo, hi):
            if state[r] == WARMING and ready_at[r] <= now:
                state[r] = READY
            if not (state[r] == WARMING or state[r] == READY) or not 0 <= pool[r] < pools:
                continue
            if pool[r] != p:
                if p >= 0:
                    counts[c, p] += run
                p, run = pool[r], 0
            run += 1
        if p >= 0:
            counts[c, p] += run
    total = np.zeros(pools, np.int64)
    add_chunks(total, counts)
    return total


@dataclass(frozen=True)
class PoolSpec:
    """What a pool serves, on what, how wide each replica is, and how many it starts with."""

    pool: str
    model: str
    hardware: str
    """The device model name agents publish (nvidia-smi's name for GPUs)."""
    tensor_parallel: int
    replicas: int = 1
    min_available: int = 1
    policy: Policy = "least_outstanding"
    prompt_tokens: float = 1000.0
    output_tokens: float = 250.0


LPU_BYTES_PER_PARAM = 1.0
"""LPUs serve 8-bit weights: SRAM, not compute, is what a replica's chip count buys."""


@dataclass
class Pool:
    """A pool's spec, the roofline of its replicas and its desired size."""

    spec: PoolSpec
    model: LlmModel
    accelerator: Accelerator
    perf: ReplicaPerf
    desired: int
    index: int
    """Its position among the pools: the `pool` column of the replica table."""
    pools: "Pools" = field(repr=False)

    @property
    def replicas(self) -> list[int]:
        """Rows of its replicas that are not stopped, oldest first."""
        rows: list[int] = self.pools.rows(self).tolist()
        return rows

    @property
    def warm_up_s(self) -> float:
        """Seconds from placement to serving: engine start plus loading the weights."""
        return LOAD_FIXED_S + self.perf.weight_bytes_per_device / LOAD_BYTES_PER_S_PER_DEVICE


class Pools:
    """Every pool and replica of the site, and which devices each replica holds."""

    def __init__(self, fleet: FleetState) -> None:
        self.fleet = fleet
        self.pools: dict[str, Pool] = {}
        self.replicas = Table({"pool": np.int32, "state": np.uint8, "ready_at": np.float64})
        self.devices: list[npt.NDArray[np.intp]] = []
        """Device rows of each replica (GPUs, or LPU chips)."""
        self.kind: list[str] = []
        self.owner: dict[str, npt.NDArray[np.int64]] = {
            "gpu": np.full(0, -1),
            "lpu": np.full(0, -1),
        }
        self.state = ReplicaState.empty(0)
        self.result = TickResult.empty(0)
        """What each replica did in the last tick (zeros for one placed since)."""
        self.busy = np.zeros(0)
        """Whether each replica's GPUs computed in the last tick (1) or idled (0)."""
        self._params: ReplicaParams | None = None
        self.gpu_devices = np.full((0, 1), -1, np.int32)
        """GPU rows of each replica, one row per replica, -1 padded (LPU replicas: all -1)."""
        self._id_order: dict[str, tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        """Per device kind: the fleet's layout changes when its devices were ranked in id
        order, their ranks and their domains' ranks."""

    def add(self, spec: PoolSpec) -> Pool:
        """A new pool (its replicas are placed by `reconcile`); ValueError if it cannot be."""
        model, device = llm_model(spec.model), accelerator(spec.hardware)
        if device.kind == "lpu":
            model = model.with_precision(LPU_BYTES_PER_PARAM)
        if spec.pool in self.pools:
            raise ValueError(f"pool {spec.pool!r} exists already")
        pool = Pool(
            spec,
            model,
            device,
            replica_perf(model, device, spec.tensor_parallel),
            spec.replicas,
            len(self.pools),
            self,
        )
        self.pools[spec.pool] = pool
        return pool

    def owners(self, kind: str) -> npt.NDArray[np.int64]:
        """Which replica holds each device (-1: none), grown to the fleet's size."""
        size = len(self.fleet.devices[kind].table)
        owner = self.owner[kind]
        if owner.shape[0] < size:
            owner = self.owner[kind] = np.concatenate([owner, np.full(size - owner.shape[0], -1)])
        return owner

    def has_hardware(self, pool: Pool) -> bool:
        """Whether any device of the pool's hardware was ever born (device rows are never
        reused, so a model once seen stays): a lookup, for every tick."""
        return pool.spec.hardware in self.fleet.models.rows

    def capacity(self, pool: Pool) -> tuple[int, int]:
        """The devices of the pool's hardware the site has, and the most replicas they could
        ever hold (each within one domain), whatever their state or owner."""
        table = self.fleet.devices[pool.accelerator.kind].table
        model = self.fleet.models.rows.get(pool.spec.hardware)
        if model is None:
            return 0, 0
        domains = table["domain"][table["model"] == model]
        fits = np.bincount(domains) // pool.spec.tensor_parallel
        return int(domains.size), int(fits.sum())

    def place(self, pool: Pool, count: int, schedulable: npt.NDArray[np.bool_], now: float) -> int:
        """Put up to `count` replicas of `pool` on free schedulable devices of its model, each
        within one domain, best fit (domains with the fewest free devices first); how many."""
        kind, width = pool.accelerator.kind, pool.spec.tensor_parallel
        table = self.fleet.devices[kind].table
        model = self.fleet.models.rows.get(pool.spec.hardware)
        if model is None or count <= 0:
            return 0
        owner = self.owners(kind)
        free = np.flatnonzero(schedulable & (owner[: len(table)] < 0) & (table["model"] == model))
        free, domains = self._in_id_order(free, kind)
        per_domain = np.bincount(domains, minlength=len(self.fleet.domains))
        fits = per_domain // width
        candidates = np.flatnonzero(fits > 0)
        candidates = candidates[np.argsort(per_domain[candidates], kind="stable")]
        taken = np.minimum(np.cumsum(fits[candidates]), count)
        take = np.zeros_like(fits)
        take[candidates] = np.diff(taken, prepend=0)
        first = np.searchsorted(domains, domains)
        chosen = free[np.arange(free.size) - first < take[domains] * width]
        placed = int(chosen.size // width)
        if not placed:
            return 0
        rows = self.replicas.add_anonymous(placed)
        self.replicas["pool"][rows] = pool.index
        self.replicas["state"][rows] = WARMING
        self.replicas["ready_at"][rows] = now + pool.warm_up_s
        groups = chosen.reshape(placed, width)
        self.devices.extend(groups)
        self._grow_gpu_devices(width if kind == "gpu" else 1)
        if kind == "gpu":
            self.gpu_devices[rows, :width] = groups
        self.kind.extend([kind] * placed)
        owner[chosen] = np.repeat(rows, width)
        self._grow_replica_arrays()
        return placed

    def _in_id_order(
        self, devices: npt.NDArray[np.intp], kind: str
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
        """Device rows sorted by domain id, then node id, then slot, and each one's domain
        rank: the order placement fills, whatever order the agents were born in."""
        cached = self._id_order.get(kind)
        if cached is None or cached[0] != self.fleet.layout_changes:
            cached = (self.fleet.layout_changes, *self._rank_devices(kind))
            self._id_order[kind] = cached
        _, rank, domain = cached
        order = devices[np.argsort(rank[devices], kind="stable")]
        return order, domain[order]

    def _rank_devices(self, kind: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Each device's position in (domain id, node id, slot) order, and its domain's rank."""
        table = self.fleet.devices[kind].table
        domain = self.fleet.domain_order.ranks()[table["domain"]]
        node = self.fleet.node_order.ranks()[table["node"]]
        slot = table["slot"].astype(np.int64)
        nodes = max(len(self.fleet.nodes), 1)
        if len(self.fleet.domains) * nodes < 2**62 // MAX_DEVICES_PER_NODE:
            order = np.argsort((domain * nodes + node) * MAX_DEVICES_PER_NODE + slot, kind="stable")
        else:  # a single key would overflow: three, at three times the cost
            order = np.lexsort((slot, node, domain))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        return rank, domain

    def _grow_gpu_devices(self, width: int) -> None:
        old = self.gpu_devices
        rows, columns = max(len(self.replicas), old.shape[0]), max(width, old.shape[1])
        if (rows, columns) != old.shape:
            capacity = max(rows, 2 * old.shape[0]) if rows > old.shape[0] else old.shape[0]
            new = np.full((capacity, columns), -1, np.int32)
            new[: old.shape[0], : old.shape[1]] = old
            self.gpu_devices = new

    def _grow_replica_arrays(self) -> None:
        """Every per-replica array grows with the replica table, in the same call that places
        replicas, so nothing reads a short one between a command and the next tick."""
        pad = len(self.replicas) - self.busy.shape[0]
        if pad > 0:
            grown = [np.concatenate([a, np.zeros(pad)]) for a in vars(self.state).values()]
            self.state = ReplicaState(*grown)
            self.result = TickResult(
                *(np.concatenate([a, np.zeros(pad)]) for a in vars(self.result).values())
            )
            self.busy = np.concatenate([self.busy, np.zeros(pad)])

    def stop(self, row: int) -> tuple[float, float]:
        """Take a replica out of service now and free its devices; the requests it dropped
        (waiting, running)."""
        self.replicas["state"][row] = STOPPED
        self.owner[self.kind[row]][self.devices[row]] = -1
        dropped = (float(self.state.waiting[row]), float(self.state.running[row]))
        self.state.waiting[row] = self.state.backlog_s[row] = self.state.running[row] = 0.0
        return dropped

    def hand_over(self, row: int) -> float:
        """Stop a replica and re-route its requests (waiting and in flight) to the least
        loaded ready replica of its pool, where they start over; the requests lost because
        there is none."""
        pool = self._pool_of(row)
        waiting, running = self.stop(row)
        moved = waiting + running
        ready = [r for r in pool.replicas if self.replicas["state"][r] == READY]
        if not ready or moved <= 0:
            return moved if not ready else 0.0
        target = min(ready, key=lambda r: self.state.waiting[r] + self.state.running[r])
        work = pool.spec.prompt_tokens * pool.perf.prefill_s_per_token
        self.state.waiting[target] += moved
        self.state.backlog_s[target] += moved * work
        return 0.0

    def _pool_of(self, row: int) -> Pool:
        return list(self.pools.values())[int(self.replicas["pool"][row])]

    def drain(self, row: int) -> None:
        """Stop sending a replica new requests; `retire` stops it once it is empty."""
        if self.replicas["state"][row] in (WARMING, READY):
            self.replicas["state"][row] = DRAINING

    def rows(
        self, pool: Pool, states: tuple[int, ...] = (WARMING, READY, DRAINING)
    ) -> npt.NDArray[np.intp]:
        """Rows of the pool's replicas in `states`, oldest first."""
        mine = self.replicas["pool"] == pool.index
        state = self.replicas["state"]
        wanted = np.zeros(len(state), np.bool_)
        for each in states:
            wanted |= state == each
        return np.flatnonzero(mine & wanted)

    def counts(self, pool: Pool) -> dict[int, int]:
        """The pool's replicas by state."""
        states = self.replicas["state"][self.replicas["pool"] == pool.index]
        return {
            state: int(np.count_nonzero(states == state)) for state in (WARMING, READY, DRAINING)
        }

    def reconcile(self, schedulable: Mapping[str, npt.NDArray[np.bool_]], now: float) -> list[str]:
        """Warm replicas become ready; pools grow toward or shrink to their desired size;
        empty draining replicas stop. Sentences for what could not be done."""
        problems = []
        states = self.replicas["state"]
        pool_of, ready_at = self.replicas["pool"], self.replicas["ready_at"]
        kernel_args: list[Any] = [pool_of, states, ready_at, now, len(self.pools)]
        active: npt.NDArray[np.int64] = _promote_and_count(*kernel_args)
        for pool in self.pools.values():
            if active[pool.index] > pool.desired:
                for row in self.rows(pool, (WARMING, READY))[pool.desired :][::-1].tolist():
                    self.drain(row)
            missing = pool.desired - int(active[pool.index])
            if missing > 0:
                missing -= self.place(pool, missing, schedulable[pool.accelerator.kind], now)
            if missing > 0:
                problems.append(self._unplaced(pool, missing))
        for row in np.flatnonzero(states == DRAINING).tolist():
            if self.state.waiting[row] < 1e-6 and self.state.running[row] < 1e-6:
                self.stop(row)
        return problems

    def _unplaced(self, pool: Pool, missing: int) -> str:
        spec = pool.spec
        if not self.has_hardware(pool):
            return f"pool {spec.pool}: the site has no {spec.hardware}, so it stays empty"
        return (
            f"pool {spec.pool}: no room for {missing} more replica(s) of "
            f"{spec.tensor_parallel} x {spec.hardware}"
        )

    def serving_params(self) -> ReplicaParams:
        """The roofline constants of every pool, in pool order, for the serving kernel (kept
        until the pools change)."""
        if self._params is None or self._params.prompt_tokens.shape[0] != len(self.pools):
            self._params = self._build_params()
        return self._params

    def _build_params(self) -> ReplicaParams:
        of = list(self.pools.values())
        column = {
            "prompt_tokens": [p.spec.prompt_tokens for p in of],
            "output_tokens": [p.spec.output_tokens for p in of],
            "prefill_s_per_token": [p.perf.prefill_s_per_token for p in of],
            "decode_fixed_s": [p.perf.decode_fixed_s for p in of],
            "decode_s_per_context_token": [p.perf.decode_s_per_context_token for p in of],
            "decode_s_per_sequence": [p.perf.decode_s_per_sequence for p in of],
            "kv_capacity_tokens": [float(p.perf.kv_capacity_tokens) for p in of],
            "max_sequences": [256.0 for _ in of],
        }
        return ReplicaParams(**{k: np.asarray(v, np.float64) for k, v in column.items()})
