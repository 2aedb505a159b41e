"""One site's simulation, tick by tick: health, control, traffic, routing, serving, latency
histograms, autoscaling, and the load each device is assigned. Its only I/O is the control
plane's journal, which a tick writes when a drain ends or an autoscaler resizes a pool."""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import prange

from sim.aggregate import pool_totals
from sim.autoscaler import Autoscaler, PoolLoad, why
from sim.catalog import BYTES_PER_MB, llm_model
from sim.chunks import parallel_kernel
from sim.control import STATE_INDEX, ControlPlane
from sim.fleet_state import FleetState
from sim.health import Finding, HealthPolicy
from sim.histogram import Histograms
from sim.pools import DRAINING, READY, STOPPED, Pools
from sim.routing import POLICIES, pools_with_ready, route, split_by_weights
from sim.serving import TickResult, serve
from sim.traffic import Traffic

WINDOW_S = 60.0
"""Latency percentiles cover about this many recent seconds (an exponential window)."""
DRIVER_MIB = 512.0
MAX_STEP_S = 1.0
"""Serving is stepped at most this many simulated seconds at a time, whatever the tick."""


@dataclass
class PoolFigures:
    """One pool's serving figures for the tick (latencies over the recent window)."""

    arrivals_per_s: float = 0.0
    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0
    tokens_per_s: float = 0.0
    completed_per_s: float = 0.0
    goodput_rps: float = 0.0
    ttft: tuple[float, float, float] = (math.nan,) * 3
    itl: tuple[float, float, float] = (math.nan,) * 3
    e2e: tuple[float, float, float] = (math.nan,) * 3
    failed: float = 0.0


@dataclass
class TickReport:
    """What one tick did, for the core to publish."""

    time: float
    findings: list[Finding] = field(default_factory=list)
    happened: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    """A sentence per pool short of replicas it has no room for, every tick while it is."""
    autoscaled: list[tuple[str, str]] = field(default_factory=list)
    """(pool, sentence) for each size an autoscaler changed, with its reason."""
    pools: dict[str, PoolFigures] = field(default_factory=dict)
    unroutable: float = 0.0


def _three(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """p50, p90 and p99 as plain floats."""
    return (float(values[0]), float(values[1]), float(values[2]))


MIN_CLOCK_FACTOR = 0.05
"""A throttled replica serves at no less than this fraction of its full speed."""


@parallel_kernel
def _replica_gpus(
    devices: np.ndarray,
    clocks: np.ndarray,
    present: np.ndarray,
    kind: np.ndarray,
    max_clock: np.ndarray,
    factor: np.ndarray,
    missing: np.ndarray,
) -> int:
    beyond = 0
    for r in prange(devices.shape[0]):
        slowest = np.inf
        missing[r] = False
        for j in range(devices.shape[1]):
            device = devices[r, j]
            if device < 0:
                continue
            if device >= present.shape[0]:
                beyond += 1
                continue
            if not present[device]:
                missing[r] = True
            elif 0.0 < clocks[device] < slowest:
                slowest = clocks[device]
        ratio = slowest / max_clock[kind[r]]
        factor[r] = min(max(ratio, MIN_CLOCK_FACTOR), 1.0) if slowest < np.inf else 1.0
    return beyond


def replica_gpus(
    devices: npt.NDArray[np.integer[Any]],
    clocks: npt.NDArray[np.float32],
    present: npt.NDArray[np.bool_],
    kind: npt.NDArray[np.integer[Any]],
    max_clock_mhz: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per replica (a row of GPU indices, -1 padded, and a kind with its maximum SM clock):
    the clock factor, its slowest reported clock over the maximum (kept within
    MIN_CLOCK_FACTOR..1; 1 when none reports one), and whether any of its GPUs is missing."""
    if devices.ndim != 2 or clocks.shape != present.shape or kind.shape != devices.shape[:1]:
        raise ValueError("devices must be (replicas, width), kind match it, clocks match present")
    if kind.size and (kind.min() < 0 or kind.max() >= max_clock_mhz.shape[0]):
        raise ValueError("a replica's kind has no maximum clock")
    if not (max_clock_mhz > 0).all():
        raise ValueError("maximum clocks must be above 0")
    factor = np.empty(devices.shape[0])
    missing = np.empty(devices.shape[0], np.bool_)
    kernel_args: list[npt.NDArray[Any]] = [
        devices,
        clocks,
        present,
        np.ascontiguousarray(kind, np.intp),
        np.ascontiguousarray(max_clock_mhz, np.float64),
        factor,
        missing,
    ]
    if _replica_gpus(*kernel_args):
        raise ValueError("a replica names a GPU beyond the table")
    return factor, missing


class World:
    """The site: its fleet as telemetry shows it, its pools, control plane and traffic."""

    def __init__(
        self,
        fleet: FleetState,
        pools: Pools,
        control: ControlPlane,
        traffic: Traffic,
        models: list[str],
        rng: np.random.Generator,
    ) -> None:
        self.fleet, self.pools, self.control, self.traffic = fleet, pools, control, traffic
        self.models = models
        self.rng = rng
        self.health = HealthPolicy(fleet)
        self.autoscaler = Autoscaler()
        pools_count = len(pools.pools)
        self.ttft, self.itl, self.e2e = (
            Histograms(pools_count, since_start=True) for _ in range(3)
        )
        """Latencies per pool, over a decaying window, and (`since_start`) since the start."""
        self.arrivals = np.zeros(0)
        """Requests each replica was sent in the last tick."""
        self._gpus_of_replicas = (np.zeros(0), np.zeros(0, np.bool_))
        """This tick's clock factor and missing-GPU flag of every replica."""
        self.failed: dict[str, float] = {}

    @property
    def result(self) -> TickResult:
        """What each replica did in the last tick."""
        return self.pools.result

    def _grow_histograms(self) -> None:
        for histograms in (self.ttft, self.itl, self.e2e):
            if len(histograms) < len(self.pools.pools):  # a pool added since
                histograms.resize(len(self.pools.pools))

    def tick(self, now: float, dt: float) -> TickReport:
        """Advance the site by `dt` simulated seconds ending at `now`."""
        report = TickReport(now)
        states = self.control.node_states(now)
        alive = states != STATE_INDEX["lost"]
        report.findings = self.health.check(alive)
        for finding in report.findings:
            if finding.drain:
                self.control.drain_for_health(finding.node, finding.message, now)
        report.happened, report.unplaced = self.control.tick(now)
        self._grow_histograms()
        self._gpus_of_replicas = self._replica_gpus()
        self._stop_broken_replicas()
        states = self.pools.replicas["state"]
        up = (states == READY) | (states == DRAINING)
        clock = self._gpus_of_replicas[0]
        params = self.pools.serving_params()
        pool_of = self.pools.replicas["pool"]
        steps = max(1, math.ceil(dt / MAX_STEP_S - 1e-9))
        step = dt / steps
        totals: dict[str, npt.NDArray[np.float64]] = {}
        for k in range(steps):
            arrivals, missed = self._route(now - dt + (k + 1) * step, step)
            report.unroutable += missed
            serve(step, arrivals, clock, up, pool_of, params, self.pools.state, self.result)
            self._observe(arrivals, step)
            self.arrivals = arrivals if k == 0 else self.arrivals + arrivals
            if steps > 1:  # the counts of the whole tick, not of its last step
                for name in ("admitted", "completed", "tokens"):
                    totals[name] = totals.get(name, 0.0) + getattr(self.result, name)
        for name, total in totals.items():
            setattr(self.result, name, total)
        self.pools.busy = np.where(
            up & ((self.pools.state.running > 0) | (self.result.admitted > 0)), 1.0, 0.0
        )
        report.pools = self._pool_figures(dt)
        report.autoscaled = self._autoscale(report.pools, now)
        return report

    def _observe(self, arrivals: npt.NDArray[np.float64], step: float) -> None:
        """Fold one serving step's latencies into each pool's decaying histograms."""
        decay = math.exp(-step / WINDOW_S)
        pool = self.pools.replicas["pool"]
        for histograms, value, weight in (
            (self.ttft, self.result.ttft_s, arrivals),
            (self.itl, self.result.itl_s, self.result.tokens),
            (self.e2e, self.result.e2e_s, self.result.completed),
        ):
            histograms.decay(decay)
            histograms.add(pool, value, weight)

    def _stop_broken_replicas(self) -> None:
        """Replicas with a device that stopped reporting stop; their requests are lost."""
        states = self.pools.replicas["state"]
        active = states != STOPPED
        missing = self._gpus_of_replicas[1].copy()
        lpus = self.fleet.devices["lpu"].table
        lpu_owner = self.pools.owners("lpu")[: len(lpus)]
        missing[lpu_owner[(lpu_owner >= 0) & ~lpus["present"]]] = True  # a chip of an LPU replica
        broken = np.flatnonzero(active & missing)
        names = list(self.pools.pools)
        for row in broken.tolist():
            pool = names[int(self.pools.replicas["pool"][row])]
            waiting, running = self.pools.stop(row)
            self.failed[pool] = self.failed.get(pool, 0.0) + waiting + running

    def _route(self, now: float, dt: float) -> tuple[npt.NDArray[np.float64], float]:
        counts, _prompt, _output = self.traffic.arrivals(now - dt, dt)
        names = list(self.pools.pools)
        weights = np.zeros((len(self.models), len(names)))
        ready = self.pools.replicas["state"] == READY
        pool_of = self.pools.replicas["pool"].astype(np.int64)
        has_ready = pools_with_ready(pool_of, ready, len(names))
        for m, model in enumerate(self.models):
            route_weights = self.control.routes.get(model)
            if route_weights is None:
                # Unrouted, a model's traffic goes evenly to its pools that can serve now
                # (to all of them when none can, where it counts as unroutable).
                serving = [
                    i for i, p in enumerate(self.pools.pools.values()) if p.spec.model == model
                ]
                able = [i for i in serving if has_ready[i]] or serving
                for i in able:
                    weights[m, i] = 100.0 / len(able)
            else:
                for pool, weight in route_weights.items():
                    weights[m, names.index(pool)] = weight
        per_pool, unrouted = split_by_weights(counts, weights, self.rng)
        arrivals = np.zeros(len(ready))
        unroutable = float(unrouted.sum())
        used = {p.spec.policy for p in self.pools.pools.values()}
        for policy in [p for p in POLICIES if p in used]:  # a fixed order: same seed, same draws
            mine = np.array([p.spec.policy == policy for p in self.pools.pools.values()])
            prompt, context = self._kv_tokens(pool_of, policy)
            share, missed = route(
                policy,
                np.where(mine, per_pool, 0),
                pool_of,
                ready,
                self.pools.state.waiting,
                self.pools.state.running,
                self.rng,
                prompt_tokens=prompt,
                context_tokens=context,
            )
            arrivals += share
            unroutable += float(missed.sum())
        return arrivals, unroutable

    def _kv_tokens(
        self, pool_of: npt.NDArray[np.int64], policy: str
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | tuple[None, None]:
        """Each replica's mean prompt and context tokens, which only KV-aware routing needs."""
        if policy != "kv_aware":
            return None, None
        params = self.pools.serving_params()
        context = params.prompt_tokens + params.output_tokens / 2
        return params.prompt_tokens[pool_of], context[pool_of]

    def _replica_gpus(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each replica's clock factor (its slowest GPU clock over the maximum; 1 without
        telemetry, or for LPUs) and whether any of its GPUs stopped reporting."""
        gpus = self.fleet.devices["gpu"]
        max_clock = [p.accelerator.max_clock_mhz for p in self.pools.pools.values()]
        return replica_gpus(
            self.pools.gpu_devices[: len(self.pools.replicas)],
            gpus.gauge("DCGM_FI_DEV_SM_CLOCK"),
            gpus.table["present"],
            self.pools.replicas["pool"],
            np.array(max_clock, np.float64),
        )

    def _pool_figures(self, dt: float) -> dict[str, PoolFigures]:
        pools = list(self.pools.pools.values())
        models = [llm_model(pool.spec.model) for pool in pools]
        result, state = self.result, self.pools.state
        totals = pool_totals(
            len(pools),
            self.pools.replicas["pool"],
            np.array([m.ttft_slo_s for m in models]),
            np.array([m.itl_slo_s for m in models]),
            {
                "arrivals": self.arrivals,
                "running": state.running,
                "waiting": state.waiting,
                "kv_usage": result.kv_usage,
                "tokens": result.tokens,
                "completed": result.completed,
            },
            result.ttft_s,
            result.itl_s,
        )
        ttft, itl, e2e = (h.percentiles() for h in (self.ttft, self.itl, self.e2e))
        figures = {}
        for i, name in enumerate(self.pools.pools):
            figures[name] = PoolFigures(
                arrivals_per_s=float(totals["arrivals"][i] / dt),
                running=float(totals["running"][i]),
                waiting=float(totals["waiting"][i]),
                kv_cache_usage=float(totals["kv_usage"][i] / max(totals["replicas"][i], 1.0)),
                tokens_per_s=float(totals["tokens"][i] / dt),
                completed_per_s=float(totals["completed"][i] / dt),
                goodput_rps=float(totals["good"][i] / dt),
                ttft=_three(ttft[i]),
                itl=_three(itl[i]),
                e2e=_three(e2e[i]),
                failed=self.failed.get(name, 0.0),
            )
        return figures

    def _autoscale(self, figures: dict[str, PoolFigures], now: float) -> list[tuple[str, str]]:
        """Resize the pools whose autoscaler says so; (pool, sentence) for each change."""
        scaled = []
        for name, settings in self.control.autoscalers.items():
            pool = self.pools.pools.get(name)
            if pool is None:
                continue
            counts = self.pools.counts(pool)
            load = PoolLoad(
                counts[READY] + counts[0],
                figures[name].waiting,
                figures[name].ttft[2],
                self.traffic.rate(self.models.index(pool.spec.model), now)
                if pool.spec.model in self.models
                else 0.0,
            )
            desired = self.autoscaler.decide(settings, pool.desired, load, now)
            if desired != pool.desired:
                edge = {settings.max_replicas: " (its maximum)", settings.min_replicas: ""}
                change = f"{pool.desired} → {desired} replicas{edge.get(desired, '')}"
                scaled.append((name, f"autoscaler: {change}: {why(settings, load, desired)}"))
                self.control.set_desired(name, desired)
        return scaled

    def gpu_load(self) -> dict[str, npt.NDArray[np.float64]]:
        """What each GPU is asked to do, from the replica that holds it (idle if none)."""
        busy = self.pools.busy
        memory = self._resident_bytes() / 2**20 + DRIVER_MIB
        per_replica = {"busy": busy, "tensor": busy * 0.7, "dram": busy * 0.6, "memory_mib": memory}
        return self._device_load("gpu", per_replica)

    def lpu_load(self, dt: float) -> dict[str, npt.NDArray[np.float64]]:
        """What each LPU chip is asked to do, from the replica that holds it (idle if none):
        the replica's busy, an equal share of the tokens it made in the last `dt` seconds, and
        its weights and KV cache in SRAM."""
        width = np.array([p.spec.tensor_parallel for p in self.pools.pools.values()])
        chips = width[self.pools.replicas["pool"]]
        per_replica = {
            "busy": self.pools.busy,
            "tokens_per_second": self.result.tokens / max(dt, 1e-9) / chips,
            "sram_mb": self._resident_bytes() / BYTES_PER_MB,
        }
        return self._device_load("lpu", per_replica)

    def _resident_bytes(self) -> npt.NDArray[np.float64]:
        """Bytes each replica keeps on each of its devices: its share of the weights and of
        the KV cache in use."""
        params = self.pools.serving_params()
        pools = list(self.pools.pools.values())
        of_pool = self.pools.replicas["pool"]
        weights = np.array([p.perf.weight_bytes_per_device for p in pools])[of_pool]
        kv_per_device = np.array(
            [p.perf.kv_bytes_per_token / p.spec.tensor_parallel for p in pools]
        )[of_pool]
        kv_bytes = self.result.kv_usage * params.kv_capacity_tokens[of_pool] * kv_per_device
        resident: npt.NDArray[np.float64] = weights + kv_bytes
        return resident

    def _device_load(
        self, kind: str, per_replica: dict[str, npt.NDArray[np.float64]]
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Each device of `kind` gets the values of the replica that holds it, 0 if none."""
        n = len(self.fleet.devices[kind].table)
        owner = self.pools.owners(kind)[:n]
        held = owner >= 0
        if not held.any():
            return {name: np.zeros(n) for name in per_replica}
        replica = np.maximum(owner, 0)
        return {name: np.where(held, values[replica], 0.0) for name, values in per_replica.items()}
