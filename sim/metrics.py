"""A core's Prometheus metrics, as a scrape's query parameters choose them.

Per GPU, dcgm-exporter's series; per NIC, switch port and LPU chip, series under their mlx5
and column names; per rack, the dashboard's aggregates; per pool, vLLM's serving metrics; and
the control plane's own counts.

A scrape runs in two halves. `CoreMetrics.snapshot` runs on the core's event loop, so nothing
changes under it: it copies the selected devices' rows, the latency counts and the counters,
and keeps references to the tick's views (immutable once sent). `render` then formats that
snapshot on any thread. Per-device and per-rack series are written by a vectorised formatter
in the text format prometheus_client writes (its own, a few microseconds a sample, would take
minutes at a million GPUs, and would add `_total` to dcgm-exporter's counter names); the pool
and control-plane families are prometheus_client's, through `generate_latest`.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import numpy.typing as npt
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from protocols.codec import arrays
from protocols.columns import Column, RackColumns, layout
from protocols.ids import check_id
from sim.control import NODE_STATES
from sim.fleet_state import DEVICE_BLOCKS, FleetState
from sim.histogram import bin_edges
from sim.service import CoreService, TickViews

DEVICE_KINDS = tuple(DEVICE_BLOCKS)
DEFAULT_LIMIT = 10_000
"""A scrape gets per-device series only while its selection holds at most this many devices
(unless it sets `limit`): every device of a million-GPU site would be gigabytes of text."""
PARAMETERS = ("rack", "node", "kind", "aggregate", "limit")
LEFT_OUT_DCGM = frozenset({"DCGM_FI_PROF_NVLINK_TX_BYTES", "DCGM_FI_PROF_NVLINK_RX_BYTES"})
"""GPU fields in none of dcgm-exporter's published counter lists: no dashboard expects them."""
PREFIX = {"gpu": "aidc_gpu_", "nic": "aidc_nic_", "port": "aidc_switch_port_", "lpu": "aidc_lpu_"}
"""Series names are these and the column's name (mlx5's, for NICs); DCGM fields keep theirs."""
DEVICE_LABEL = {"nic": "mlx5_", "port": "swp", "lpu": "lpu"}
"""The `device` label of a NIC, switch port or LPU chip: this and its index."""
LATENCY_TARGETS_S = tuple(m * 10.0**e for e in range(-3, 3) for m in (1.0, 2.5, 5.0))[1:]
"""Each `le` bound of the latency histograms is the core's bin edge nearest to one of these
(2.5 ms to 500 s; the core counts anything under its first edge, 1 ms, in its first bin),
printed to four significant digits; counts are exact for the edge."""
UNSAID_UNITS = frozenset(
    {"", "errors", "retries", "events", "packets", "frames", "devices", "xid", "state", "ratio"}
)
"""Units help texts leave out: they only say what is counted, or that it is a ratio or state."""
LATENCIES = (
    ("ttft", "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds."),
    ("itl", "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds."),
    ("e2e", "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency."),
)

F64 = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]


def _bucket_edges() -> tuple[Rows, list[str]]:
    edges = bin_edges()
    nearest = np.abs(np.log(edges[None, :] / np.array(LATENCY_TARGETS_S)[:, None]))
    chosen = np.unique(nearest.argmin(axis=1))
    return chosen, [f"{edge:.4g}" for edge in edges[chosen]]


BUCKET_EDGES, BUCKET_LE = _bucket_edges()
"""Bin edges (indices into `bin_edges()`) that bound the buckets, and their `le` labels."""


def _metric_name(kind: str, column: str) -> str | None:
    """The series name of a device column, or None for one left out."""
    if column.startswith("DCGM_FI_"):
        return None if column in LEFT_OUT_DCGM else column
    return PREFIX[kind] + column


def _help(column: Column, scope: str = "") -> str:
    """A column's help text for a metric family, with its unit where that says something."""
    unit = "" if column.unit in UNSAID_UNITS else f" (in {column.unit})"
    return f"{column.help}{scope}{unit}."


def _label_value(text: str) -> str:
    """A label value escaped for the text format."""
    return text.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


@dataclass(frozen=True)
class Selection:
    """What one scrape asks for: devices of some racks or nodes (all without either), of some
    kinds, and whether per-device series are wanted, up to how many devices."""

    racks: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    kinds: tuple[str, ...] = DEVICE_KINDS
    aggregate: bool = False
    limit: int | None = DEFAULT_LIMIT
    """The most devices with series of their own; None for no limit."""

    @classmethod
    def parse(cls, query: str) -> "Selection":
        """A selection from a URL's query string (`rack=r001&rack=r002`, `node=...`, `kind=gpu`,
        `aggregate=1`, `limit=N` or `limit=all`; lists may also be comma-separated); a
        ValueError saying what is wrong with a bad one."""
        params = parse_qs(query, keep_blank_values=True)
        for name in params:
            if name not in PARAMETERS:
                raise ValueError(f"unknown parameter {name!r}: use {', '.join(PARAMETERS)}")

        def listed(name: str) -> list[str]:
            return [item for value in params.get(name, []) for item in value.split(",") if item]

        def single(name: str) -> str | None:
            values = params.get(name, [])
            if len(values) > 1:
                raise ValueError(f"parameter {name!r} is given {len(values)} times")
            return values[0] if values else None

        kinds = tuple(dict.fromkeys(listed("kind"))) or DEVICE_KINDS
        for kind in kinds:
            if kind not in DEVICE_KINDS:
                raise ValueError(f"kind {kind!r} is not one of {', '.join(DEVICE_KINDS)}")
        aggregate = single("aggregate")
        if aggregate not in (None, "", "1", "true", "0", "false"):
            raise ValueError(f"aggregate={aggregate!r} is not 1, true, 0 or false")
        limit_text = single("limit")
        limit: int | None = DEFAULT_LIMIT
        if limit_text == "all":
            limit = None
        elif limit_text is not None:
            if not limit_text.isdigit():
                raise ValueError(f"limit={limit_text!r} is not a number of devices or 'all'")
            limit = int(limit_text)
        return cls(
            racks=frozenset(check_id(r, "rack") for r in listed("rack")),
            nodes=frozenset(check_id(n, "node") for n in listed("node")),
            kinds=kinds,
            aggregate=aggregate in ("", "1", "true"),
            limit=limit,
        )


@dataclass(frozen=True)
class DeviceCopy:
    """Copies of some of one kind's table rows, and which of them are the selected devices
    (`pick`, positions in the copies)."""

    pick: Rows
    node: npt.NDArray[np.int32]
    rack: npt.NDArray[np.int32]
    slot: npt.NDArray[np.int32]
    model: npt.NDArray[np.int32]
    gauges: npt.NDArray[np.float32]
    counters: npt.NDArray[np.uint64]
    uuid: npt.NDArray[np.bytes_] | None


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape renders, owned by it: copies, or objects nobody changes."""

    site: str
    devices: dict[str, DeviceCopy]
    left_out: int
    """Devices selected whose series were left out (aggregate mode, or over the limit)."""
    notes: list[str]
    """Comment lines for the scraper: racks or nodes unknown, series left out and why."""
    node_ids: list[str]
    rack_ids: list[str]
    models: list[str]
    """The fleet's own id lists, not copies: they only grow, and an entry never changes (a
    Table's rows are never reused), so another thread may read the rows the copies name."""
    racks: frozenset[str] | None
    """The racks whose aggregates to render; None for all."""
    views: TickViews | None
    pools: list[tuple[str, str, float]]
    """Every pool's name, model and mean prompt length, in the histograms' order."""
    latency: dict[str, tuple[F64, F64]]
    """Counts per pool and bin, and sums in seconds, since the start, by latency."""
    commands: dict[tuple[str, bool], int]
    rejected: dict[str, int]
    ingested: int
    telemetry_dropped: int
    ticks: int


def _copy(fleet: FleetState, kind: str, rows: Rows) -> DeviceCopy:
    """Copies of the rows (ascending) of some devices: one slice from the first to the last
    when they are mostly contiguous (a copy's cheapest form), else just those rows."""
    table = fleet.devices[kind].table
    span = slice(int(rows[0]), int(rows[-1]) + 1)
    contiguous = span.stop - span.start < 2 * rows.size

    def take(column: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return column[..., span].copy() if contiguous else column[..., rows]

    node = take(table["node"])
    return DeviceCopy(
        rows - span.start if contiguous else np.arange(rows.size),
        node,
        fleet.nodes["rack"][node],
        take(table["slot"]),
        take(table["model"]),
        take(table["gauges"]),
        take(table["counters"]),
        take(table["uuid"]) if kind == "gpu" else None,
    )


def _selected(
    fleet: FleetState, selection: Selection
) -> tuple[dict[str, Rows | None], frozenset[str] | None]:
    """The present devices of each kind the selection names, by row (None: all of them), and
    their racks (None: all); in time proportional to the nodes, not to every device."""
    if not (selection.racks or selection.nodes):
        return dict.fromkeys(selection.kinds), None
    known = np.array([fleet.racks.rows[r] for r in selection.racks if r in fleet.racks.rows], int)
    named = np.array([fleet.nodes.rows[n] for n in selection.nodes if n in fleet.nodes.rows], int)
    node_rows = np.union1d(np.flatnonzero(np.isin(fleet.nodes["rack"], known)), named)
    rows: dict[str, Rows | None] = {}
    for kind in selection.kinds:
        of_nodes = np.sort(fleet.device_rows(node_rows, kind))
        rows[kind] = of_nodes[fleet.devices[kind].table["present"][of_nodes]]
    racks = np.union1d(known, fleet.nodes["rack"][named]).tolist()
    return rows, frozenset(fleet.racks.ids[r] for r in racks)


class CoreMetrics:
    """The metrics of one core service."""

    def __init__(self, core: CoreService) -> None:
        self.core = core

    def snapshot(self, selection: Selection) -> Snapshot:
        """What `selection` asks for, copied; call it on the core's event loop."""
        core = self.core
        fleet = core.fleet
        notes = [
            f"{what} {name} is not in the fleet (yet)"
            for what, names, known in (
                ("rack", selection.racks, fleet.racks.rows),
                ("node", selection.nodes, fleet.nodes.rows),
            )
            for name in sorted(names)
            if name not in known
        ]
        rows, racks = _selected(fleet, selection)
        selected = sum(
            int(np.count_nonzero(fleet.devices[k].table["present"]) if r is None else r.size)
            for k, r in rows.items()
        )
        over_limit = selection.limit is not None and selected > selection.limit
        if over_limit and not selection.aggregate:
            notes.append(
                f"per-device series left out: the selection holds {selected:,} devices, over "
                f"the limit of {selection.limit:,}; choose racks or nodes (?rack=, ?node=) or "
                "raise it (?limit=N or ?limit=all)"
            )
        wanted_each = not (selection.aggregate or over_limit)
        devices = {}
        for kind, chosen in rows.items() if wanted_each else ():
            picked = (
                np.flatnonzero(fleet.devices[kind].table["present"]) if chosen is None else chosen
            )
            if picked.size:
                devices[kind] = _copy(fleet, kind, picked)
        world = core.world
        return Snapshot(
            site=core.site,
            devices=devices,
            left_out=0 if wanted_each else selected,
            notes=notes,
            node_ids=fleet.nodes.ids,
            rack_ids=fleet.racks.ids,
            models=fleet.models.ids,
            racks=racks,
            views=core.views_sent,
            pools=[(n, p.spec.model, p.spec.prompt_tokens) for n, p in world.pools.pools.items()],
            latency={
                name: (totals.counts.copy(), totals.sum_s.copy())
                for name, histograms in (
                    ("ttft", world.ttft),
                    ("itl", world.itl),
                    ("e2e", world.e2e),
                )
                if (totals := histograms.since_start) is not None
            },
            commands=dict(core.commands),
            rejected=dict(core.complaints.counts),
            ingested=fleet.counts.ingested,
            telemetry_dropped=core.telemetry_shed_total,
            ticks=core.tick,
        )


def render(snapshot: Snapshot) -> Iterator[bytes]:
    """The Prometheus text exposition of a snapshot, a metric family or so at a time."""
    yield "".join(f"# {note}\n" for note in snapshot.notes).encode()
    for kind, copy in snapshot.devices.items():
        yield from _device_series(snapshot, kind, copy)
    yield from _rack_series(snapshot)
    yield generate_latest(_Families(snapshot))


def _series(name: str, kind: str, help: str, labels: list[str], values: npt.NDArray[Any]) -> bytes:
    """One metric family, a sample per label set, in the text format (float32 values in their
    shortest decimal form)."""
    head = f"# HELP {name} {help}\n# TYPE {name} {kind}\n"
    start = name + "{"
    texts = values.astype(str).tolist()
    lines = [f"{start}{each}}} {value}\n" for each, value in zip(labels, texts, strict=True)]
    return (head + "".join(lines)).encode()


def _device_labels(snapshot: Snapshot, kind: str, copy: DeviceCopy) -> list[str]:
    """Each selected device's labels: dcgm-exporter's for GPUs (`gpu`, `UUID`, `device`,
    `modelName`, `Hostname`), `node` and `device` for the rest; `rack` and `site` for all."""
    site = _label_value(snapshot.site)
    node_rows = copy.node[copy.pick]
    first = np.unique(node_rows, return_index=True)
    where = {
        row: (snapshot.node_ids[row], snapshot.rack_ids[rack])
        for row, rack in zip(
            first[0].tolist(), copy.rack[copy.pick][first[1]].tolist(), strict=True
        )
    }
    slots = copy.slot[copy.pick].tolist()
    if kind != "gpu":
        prefix = DEVICE_LABEL[kind]
        place = {row: f'node="{n}",rack="{r}",site="{site}"' for row, (n, r) in where.items()}
        return [
            f'device="{prefix}{s}",{place[n]}'
            for s, n in zip(slots, node_rows.tolist(), strict=True)
        ]
    assert copy.uuid is not None
    host = {row: f'Hostname="{n}",rack="{r}",site="{site}"' for row, (n, r) in where.items()}
    models = [_label_value(m) for m in snapshot.models]
    uuids = [_label_value(u.decode(errors="replace")) for u in copy.uuid[copy.pick].tolist()]
    return [
        f'gpu="{s}",UUID="{u}",device="nvidia{s}",modelName="{models[m]}",{host[n]}'
        for s, u, m, n in zip(
            slots, uuids, copy.model[copy.pick].tolist(), node_rows.tolist(), strict=True
        )
    ]


def _device_series(snapshot: Snapshot, kind: str, copy: DeviceCopy) -> Iterator[bytes]:
    labels = _device_labels(snapshot, kind, copy)
    spec = layout(DEVICE_BLOCKS[kind])
    gauges = counters = 0
    for column_name, column in spec.columns.items():
        if column.kind == "index":
            continue
        if column.kind == "gauge":
            values, gauges = copy.gauges[gauges], gauges + 1
        else:
            values, counters = copy.counters[counters], counters + 1
        name = _metric_name(kind, column_name)
        if name is not None:
            yield _series(name, column.kind, _help(column), labels, values[copy.pick])


def _rack_series(snapshot: Snapshot) -> Iterator[bytes]:
    """Every column of the tick's rack view (aggregates of GPUs, LPU chips and switches), per
    selected rack."""
    if snapshot.views is None:
        return
    racks = snapshot.views.racks
    record = arrays(racks, "columns")
    assert record is not None
    keep = np.array([snapshot.racks is None or r in snapshot.racks for r in racks.racks], bool)
    site = _label_value(snapshot.site)
    labels = [
        f'rack="{r}",site="{site}"' for r, k in zip(racks.racks, keep.tolist(), strict=True) if k
    ]
    for column_name, column in layout(RackColumns).columns.items():
        if column.kind != "index":
            help = _help(column, ", per rack")
            yield _series(
                f"aidc_rack_{column_name}", "gauge", help, labels, record[column_name][keep]
            )


POOL_GAUGES = (
    ("vllm:num_requests_running", "num_requests_running", "Requests in model execution batches."),
    ("vllm:num_requests_waiting", "num_requests_waiting", "Requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "kv_cache_usage", "KV-cache usage. 1 means 100 percent usage."),
    ("aidc_pool_replicas_desired", "replicas_desired", "Replicas the pool should have."),
    ("aidc_pool_replicas_ready", "replicas_ready", "Replicas serving."),
    ("aidc_pool_replicas_warming", "replicas_warming", "Replicas loading their weights."),
)
"""Gauges per pool from its PoolState field, under vLLM's names where vLLM has one."""
POOL_LABELS = ["model_name", "pool", "site"]


class _Families(Collector):
    """The pool, control-plane and scrape families of a snapshot, as prometheus_client's."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        """Every family, in a fixed order."""
        yield from self._served()
        yield from self._pool_states()
        yield from self._control()

    def _served(self) -> Iterator[Metric]:
        """Tokens, requests and latency histograms per pool since the start, from the counts
        of the core's latency histograms (TTFT counts requests, ITL tokens, e2e completions).
        The serving model moves fractions of requests each tick; a counter says the whole ones,
        as vLLM's do (the floor of a growing total never goes down)."""
        snap = self.snapshot
        label_sets = [[model, pool, snap.site] for pool, model, _ in snap.pools]
        requests, tokens, completed = (
            np.floor(snap.latency[k][0].sum(axis=1)) for k in ("ttft", "itl", "e2e")
        )
        prompts = requests * np.array([prompt for _, _, prompt in snap.pools])
        for name, help, totals, extra in (
            ("vllm:prompt_tokens", "Prefill tokens processed.", prompts, []),
            ("vllm:generation_tokens", "Generation tokens processed.", tokens, []),
            ("vllm:request_success", "Requests finished.", completed, ["stop"]),
        ):
            family = CounterMetricFamily(
                name, help, labels=POOL_LABELS + ["finished_reason"] * len(extra)
            )
            for label_set, total in zip(label_sets, totals.tolist(), strict=True):
                family.add_metric(label_set + extra, total)
            yield family
        for key, name, help in LATENCIES:
            counts, sums = snap.latency[key]
            histogram = HistogramMetricFamily(name, help, labels=POOL_LABELS)
            for label_set, row, total_s in zip(
                label_sets, np.floor(np.cumsum(counts, axis=1)), sums.tolist(), strict=True
            ):
                below = [0.0, *row.tolist()]  # below[k]: what the bins under edge k counted
                buckets = [
                    (le, below[k]) for le, k in zip(BUCKET_LE, BUCKET_EDGES.tolist(), strict=True)
                ]
                histogram.add_metric(label_set, [*buckets, ("+Inf", below[-1])], total_s)
            yield histogram

    def _pool_states(self) -> Iterator[Metric]:
        """Each pool's gauges and failures as the tick's pool view has them."""
        snap = self.snapshot
        if snap.views is None:
            return
        pools = snap.views.pools.pools
        for name, field, help in POOL_GAUGES:
            gauge = GaugeMetricFamily(name, help, labels=POOL_LABELS)
            for pool in pools:
                gauge.add_metric([pool.model, pool.pool, snap.site], getattr(pool, field))
            yield gauge
        failed = CounterMetricFamily(
            "aidc_pool_requests_failed",
            "Requests lost with replicas whose devices failed.",
            labels=POOL_LABELS,
        )
        for pool in pools:
            failed.add_metric([pool.model, pool.pool, snap.site], pool.requests_failed)
        yield failed

    def _control(self) -> Iterator[Metric]:
        """Nodes by state, commands, messages, ticks, and what this scrape left out."""
        snap = self.snapshot
        site = [snap.site]
        if snap.views is not None:
            counted = {str(state): n for state, n in snap.views.summary.nodes.items()}
            nodes = GaugeMetricFamily(
                "aidc_nodes", "Nodes in each control-plane state.", labels=["state", "site"]
            )
            for state in NODE_STATES:
                nodes.add_metric([state, *site], counted.get(state, 0))
            yield nodes
        commands = CounterMetricFamily(
            "aidc_commands",
            "Operator commands answered, by op and result (queries are not counted).",
            labels=["op", "result", "site"],
        )
        for (op, ok), count in sorted(snap.commands.items()):
            commands.add_metric([op, "applied" if ok else "refused", *site], count)
        yield commands
        rejected = CounterMetricFamily(
            "aidc_messages_rejected",
            "Messages rejected: malformed, unknown, stale, or speaking for another agent.",
            labels=["reason", "site"],
        )
        for reason, count in sorted(snap.rejected.items()):
            rejected.add_metric([reason, *site], count)
        yield rejected
        for family, value in (
            (
                CounterMetricFamily(
                    "aidc_messages_ingested", "Telemetry messages stored.", labels=["site"]
                ),
                snap.ingested,
            ),
            (
                # one series for the site, not one per agent: a million GPUs are ~14k agents,
                # and a core that falls behind sheds them all alike (its log and events say
                # how many agents; the counts by agent are the core link's `shed`)
                CounterMetricFamily(
                    "aidc_telemetry_dropped",
                    "Telemetry messages the core shed unread: it ingested slower than the fleet "
                    "published.",
                    labels=["site"],
                ),
                snap.telemetry_dropped,
            ),
            (
                CounterMetricFamily(
                    "aidc_core_ticks", "Ticks since the core started.", labels=["site"]
                ),
                snap.ticks,
            ),
            (
                GaugeMetricFamily(
                    "aidc_scrape_devices_left_out",
                    "Devices this scrape selected but gave no series of their own (see ?limit).",
                    labels=["site"],
                ),
                snap.left_out,
            ),
        ):
            family.add_metric(site, value)
            yield family
