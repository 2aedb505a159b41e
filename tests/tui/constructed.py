"""A constructed site (state messages and query answers, fixed numbers), and a console that
is fed it through the bridge's own message path instead of a broker and a core."""

from typing import Any

import msgspec

from protocols.codec import COMMAND, encode
from protocols.columns import RackColumns, layout
from protocols.commands import Query, Reply
from protocols.endpoint import Endpoint
from protocols.messages import (
    CoreStatus,
    Event,
    Events,
    FabricState,
    Percentiles,
    PoolState,
    PoolStates,
    PortState,
    RackStates,
    RouteState,
    Summary,
    SwitchState,
)
from protocols.queries import EventsPage, GpuReadings, NicReadings, NodeDetail, NodeRow, NodesPage
from tui.app import AidcApp

SITE = "snap"
T0 = 1_790_000_000.0
"""2026-09-21 14:13:20 UTC on the simulated clock."""


def racks(count: int) -> RackStates:
    """`count` NVL72 racks and a network rack, with figures that vary rack to rack."""
    names = [f"r{i:03d}" for i in range(1, count + 1)] + ["net01"]
    i = list(range(count))
    devices = [72] * count + [0]
    lost = [8 if k % 17 == 5 else 0 for k in i] + [0]
    cordoned = [72 if k % 23 == 7 and not lost[k] else 0 for k in i] + [0]
    healthy = [d - lo - c for d, lo, c in zip(devices, lost, cordoned, strict=True)]
    columns = layout(RackColumns).pack(
        {
            "node": list(range(count + 1)),
            "devices": devices,
            "healthy": healthy,
            "cordoned": cordoned,
            "lost": lost,
            "utilization": [(k * 37) % 101 for k in i] + [0],
            "temperature_c": [30 + (k * 13) % 60 for k in i] + [0],
            "power_kw": [40 + (k * 7) % 90 for k in i] + [0],
            "health": [
                2 if lo else 1 if 30 + (k * 13) % 60 >= 85 else 0
                for k, lo in zip(i, lost, strict=False)
            ]
            + [0],
        }
    )
    return RackStates(T0, names, columns)


def pool(name: str, model: str, hardware: str, desired: int, ready: int, **more: Any) -> PoolState:
    return PoolState(name, model, hardware, desired, ready, **more)


POOLS = PoolStates(
    T0,
    [
        pool(
            "llama-70b-gb200",
            "llama-3-1-70b",
            "NVIDIA GB200",
            8,
            8,
            min_available=2,
            num_requests_running=412,
            num_requests_waiting=3,
            kv_cache_usage=0.41,
            tokens_per_s=96_300.0,
            time_to_first_token=Percentiles(0.12, 0.2, 0.31),
            inter_token_latency=Percentiles(0.011, 0.014, 0.019),
            slo_attainment=0.998,
            autoscale=True,
        ),
        pool(
            "llama-70b-h100",
            "llama-3-1-70b",
            "NVIDIA H100 80GB HBM3",
            4,
            3,
            replicas_warming=1,
            min_available=2,
            num_requests_running=180,
            num_requests_waiting=41,
            kv_cache_usage=0.93,
            tokens_per_s=21_400.0,
            time_to_first_token=Percentiles(0.31, 0.62, 0.95),
            inter_token_latency=Percentiles(0.02, 0.03, 0.045),
            slo_attainment=0.87,
            requests_per_s=31.5,
            requests_failed=12.0,
        ),
        pool(
            "llama-8b-b200",
            "llama-3-1-8b",
            "NVIDIA B200",
            16,
            16,
            min_available=4,
            num_requests_running=950,
            kv_cache_usage=0.22,
            tokens_per_s=310_000.0,
            time_to_first_token=Percentiles(0.04, 0.07, 0.11),
            inter_token_latency=Percentiles(0.004, 0.005, 0.007),
            slo_attainment=1.0,
        ),
    ],
    [RouteState("llama-3-1-70b", {"llama-70b-gb200": 80.0, "llama-70b-h100": 20.0})],
)
FABRIC = FabricState(
    T0,
    [
        SwitchState("leaf01", 64, 64, 0.42, 0.0, 0.0, 0.0, 0),
        SwitchState("leaf02", 63, 64, 0.91, 1520.0, 88.0, 0.0, 3),
        SwitchState("spine01", 64, 64, 0.55, 12.0, 0.0, 0.0, 0),
    ],
    [
        PortState("leaf02", 40, 0.91, 1520.0, 88.0, "spine01/swp7"),
        PortState("leaf02", 41, 0.84, 310.0, 0.0, "spine02/swp7"),
        PortState("leaf01", 3, 0.42, 0.0, 0.0, "r001-n02/nic3"),
    ],
)
EVENTS = Events(
    [
        Event(T0 - 300, "info", "control", "command", "drain r004-n07 (grace 300 s)", "c-1"),
        Event(T0 - 240, "warning", "gpu/r004-n07/3", "thermal", "GPU 3 throttling at 88 °C"),
        Event(T0 - 200, "error", "node/r006-n02", "link-flap", "nic2 link flapped 3 times"),
        Event(T0 - 120, "critical", "gpu/r012-n03/5", "xid", "XID 79: GPU fell off the bus"),
        Event(T0 - 60, "info", "control", "control", "node r004-n07 drained"),
    ]
)
SUMMARY = Summary(
    T0,
    4321,
    10.0,
    gpus=2304,
    gpus_healthy=2136,
    gpus_cordoned=144,
    gpus_lost=24,
    nodes={"ready": 540, "cordoned": 36, "lost": 2},
    power_w=2_910_000.0,
    requests_per_s=812.0,
    tokens_per_s=427_700.0,
    goodput_rps=790.0,
    completed_per_s=812.0,
    ttft_p99_s=0.95,
    itl_p99_s=0.045,
)
NODES = NodesPage(
    total=576,
    offset=0,
    sort="node",
    nodes=[
        NodeRow(
            node=f"r001-n{n:02d}",
            rack="r001",
            kind="gpu",
            state=("ready", "cordoned", "draining", "drained", "lost", "failed")[n % 6],
            gpus=4,
            healthy=4 - (n % 6 == 5),
            allocated=4 if n % 3 else 0,
            utilization=(n * 17) % 100,
            temperature_c=40 + n,
            power_w=2900.0 + n * 10,
            last_xid=79 if n == 5 else 0,
            nic_gbps=12.5 * n,
            pool="llama-70b-gb200",
        )
        for n in range(1, 19)
    ],
)


def node_detail(step: int) -> NodeDetail:
    """One read of node r001-n02; `step` moves its gauges along."""
    devices = [
        GpuReadings(
            gpu=g,
            present=True,
            gauges={
                "DCGM_FI_DEV_GPU_UTIL": float((step * 9 + g * 20) % 100),
                "DCGM_FI_DEV_GPU_TEMP": 50.0 + (step + g) % 20,
                "DCGM_FI_DEV_POWER_USAGE": 700.0 + ((step * 40 + g * 90) % 500),
                "DCGM_FI_DEV_SM_CLOCK": 1980.0,
                "DCGM_FI_DEV_FB_USED": 150_000.0,
                "DCGM_FI_DEV_FB_FREE": 40_000.0,
                "DCGM_FI_DEV_XID_ERRORS": 0.0,
            },
        )
        for g in range(4)
    ]
    nics = [
        NicReadings(
            nic=n,
            present=True,
            gbps=110.0 + n,
            gauges={"link_state": 1.0, "temperature_c": 61.0},
            counters={
                "rx_bytes": 9_100_000_000_000,
                "tx_bytes": 8_700_000_000_000,
                "rx_prio3_pause": 12 * n,
                "np_ecn_marked_roce_packets": 3400,
                "np_cnp_sent": 3300,
                "rp_cnp_handled": 3100,
                "out_of_sequence": 0,
                "link_down_events_phy": n // 3,
            },
        )
        for n in range(4)
    ]
    events = [
        Event(T0 - 90, "warning", "gpu/r001-n02/1", "thermal", "GPU 1 throttling at 87 °C"),
    ]
    row = msgspec.structs.asdict(NODES.nodes[1])
    return NodeDetail(**row, intent="draining", devices=devices, nics=nics, events=events)


class Replay:
    """Answers the console's queries with fixed results through its own message path, in
    place of a broker and a core."""

    def __init__(self, app: AidcApp) -> None:
        self.app = app
        self.reads = 0

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False
    ) -> None:
        command = COMMAND.decode(payload)
        assert isinstance(command, Query)
        answers = {"nodes": NODES, "node": node_detail(self.reads), "events": EventsPage(0, [])}
        self.reads += 1
        reply = Reply(command.id, ok=True, result=msgspec.to_builtins(answers[command.what]))
        assert command.reply_to is not None
        self.app.bridge.feed(command.reply_to, encode(reply))


class Fed(AidcApp):
    """A console that is shown the constructed site as it starts, and answers its queries
    from the replay."""

    def __init__(self, rack_count: int) -> None:
        super().__init__(Endpoint("127.0.0.1", 1883), SITE, connect=False)
        self.rack_count = rack_count
        self.bridge.link.publish = Replay(self).publish  # type: ignore[method-assign]

    async def on_mount(self) -> None:
        await super().on_mount()
        feed_site(self, self.rack_count)


def fed(rack_count: int = 32) -> AidcApp:
    return Fed(rack_count)


def feed_site(app: AidcApp, rack_count: int) -> None:
    """The constructed site, as the core would publish it."""
    picture = app.bridge.picture
    picture.link.up, picture.link.note = True, "connected"
    feed = app.bridge.feed
    base = f"aidc/v1/{SITE}"
    feed(f"{base}/core/status", encode(CoreStatus(True, 1, T0, 10.0, "0.1.0")))
    feed(f"{base}/state/summary", encode(SUMMARY))
    feed(f"{base}/state/racks", encode(racks(rack_count)))
    feed(f"{base}/state/pools", encode(POOLS))
    feed(f"{base}/state/fabric", encode(FABRIC))
    feed(f"{base}/core/events", encode(EVENTS))
