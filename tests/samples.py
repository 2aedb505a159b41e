"""One realistic sample of every message type, keyed by topic kind, for round trips,
fuzzing and broker tests."""

from typing import Any, TypeVar

import numpy as np

from protocols import commands as c
from protocols import messages as m
from protocols.columns import (
    Columns,
    GpuColumns,
    GpuLoad,
    LpuColumns,
    LpuLoad,
    NicColumns,
    NicLoad,
    PortColumns,
    PortLoad,
    RackColumns,
    layout,
)
from protocols.topics import (
    AgentTopic,
    StateView,
    agent_topic,
    command_topic,
    core_clock_topic,
    core_status_topic,
    events_topic,
    reply_topic,
    state_topic,
)

SITE = "dc1"
RACK = "r001"
AGENT = "r001"
NODES = ["r001-n01", "r001-n02"]

Block = TypeVar("Block", bound=Columns)


def block(kind: type[Block], rows_per_node: int, nodes: int, seed: int = 0) -> Block:
    """A column block with plausible random values, `rows_per_node` devices on each node."""
    rng = np.random.default_rng(seed)
    spec = layout(kind)
    rows = rows_per_node * nodes
    arrays: dict[str, Any] = {}
    for name, column in spec.columns.items():
        if name == "node":
            arrays[name] = np.repeat(np.arange(nodes), rows_per_node)
        elif column.kind == "index":
            arrays[name] = np.tile(np.arange(rows_per_node), nodes)
        elif column.kind == "counter":
            arrays[name] = rng.integers(0, 2**40, rows)
        elif column.dtype == "<u1":
            arrays[name] = rng.integers(0, 2, rows)
        else:
            arrays[name] = rng.uniform(0, 100, rows)
    return layout(kind).pack(arrays)


def gpu_node(node: str, gpus: int = 4) -> m.NodeInventory:
    """A GB200 NVL72 compute tray: four GPUs, four ConnectX-8 NICs."""
    return m.NodeInventory(
        node=node,
        kind="gpu",
        system="GB200 NVL72 compute tray",
        gpus=[
            m.GpuInfo(i, f"GPU-{node}-{i}", "NVIDIA GB200", 189_471, 1200.0, "r001-nvl")
            for i in range(gpus)
        ],
        nics=[m.NicInfo(i, "ConnectX-8", 800.0, gpu=i, peer=f"leaf1/{i}") for i in range(gpus)],
    )


TELEMETRY = m.Telemetry(
    agent=AGENT,
    session=3,
    seq=41,
    time=1_764_000_000.5,
    nodes=NODES,
    gpu=block(GpuColumns, 4, 2),
    nic=block(NicColumns, 4, 2, seed=1),
)

SAMPLES: dict[str, list[Any]] = {
    "birth": [
        m.Birth(
            agent=AGENT,
            rack=RACK,
            session=3,
            time=1_764_000_000.0,
            interval_s=1.0,
            nodes=[gpu_node(n) for n in NODES],
            software="aidc 0.1.0",
        ),
        m.Birth(
            agent="r002",
            rack="r002",
            session=1,
            time=1.0,
            interval_s=1.0,
            nodes=[gpu_node(n) for n in ("r002-n01", "r002-n02")],
            gateway="gw1-of-1",
        ),
        m.Birth(
            agent="lpu1-n01",
            rack="lpu1",
            session=1,
            time=1.0,
            interval_s=0.5,
            nodes=[
                m.NodeInventory(
                    node="lpu1-n01",
                    kind="lpu",
                    system="LPU node",
                    lpus=[m.LpuInfo(i, "LPU v1", 230.0) for i in range(8)],
                )
            ],
        ),
        m.Birth(
            agent="leaf1",
            rack="net1",
            session=1,
            time=1.0,
            interval_s=1.0,
            nodes=[
                m.NodeInventory(
                    node="leaf1",
                    kind="switch",
                    system="Spectrum-4 SN5600",
                    ports=[m.PortInfo(i, 800.0, f"r001-n01/nic{i}") for i in range(64)],
                )
            ],
        ),
    ],
    "death": [m.Death(agent=AGENT, session=3), m.Death(agent=AGENT, session=4, clean=True)],
    "telemetry": [
        TELEMETRY,
        m.Telemetry("leaf1", 1, 0, 2.0, ["leaf1"], port=block(PortColumns, 64, 1)),
        m.Telemetry("lpu1-n01", 1, 7, 2.0, ["lpu1-n01"], lpu=block(LpuColumns, 8, 1)),
        m.Telemetry(AGENT, 3, 42, 3.0, []),
        m.Telemetry(
            "gw1-of-1",
            1,
            8,
            3.0,
            [],
            gpu=block(GpuColumns, 4, 4),
            agents=["r001", "r002"],
            seqs=[8, 8],
            sim_time=1_764_000_003.0,
        ),
    ],
    "assign": [
        m.Assignment(
            AGENT,
            3,
            9,
            1_764_000_001.0,
            NODES,
            gpu=block(GpuLoad, 4, 2),
            nic=block(NicLoad, 4, 2),
        ),
        m.Assignment("leaf1", 1, 0, 2.0, ["leaf1"], port=block(PortLoad, 64, 1)),
        m.Assignment("lpu1-n01", 1, 0, 2.0, ["lpu1-n01"], lpu=block(LpuLoad, 8, 1)),
        m.Assignment("gw1-of-1", 1, 3, 2.0, [], gpu=block(GpuLoad, 4, 4), agents=["r001", "r002"]),
    ],
    "agentcmd": [
        c.InjectFault(id="f1", target="r001-n01", kind="xid", params={"code": 79, "gpu": 2}),
        c.ClearFault(id="f2", target="r001-n01"),
        c.Reboot(id="b1", nodes=["r001-n01"]),
        c.Rebirth(id="rb1"),
    ],
    "clock": [m.CoreClock(1_764_000_005.0, 60.0, 5), m.CoreClock(5.0, 0.0)],
    "status": [
        m.CoreStatus(online=True, session=2, time=5.0, speed=60.0, version="0.1.0"),
        m.CoreStatus(online=False, session=2),
    ],
    "events": [
        m.Events(
            [
                m.Event(5.0, "critical", "gpu/r001-n01/2", "xid", "XID 79: GPU fell off the bus"),
                m.Event(6.0, "info", "node/r001-n01", "drain", "drained", command="d-1"),
            ]
        )
    ],
    "summary": [
        m.Summary(
            time=5.0,
            tick=5,
            speed=1.0,
            gpus=8,
            gpus_healthy=7,
            gpus_lost=1,
            nodes={"ready": 1, "draining": 1},
            power_w=8000.0,
            tokens_per_s=12_000.0,
            ttft_p99_s=0.4,
            itl_p99_s=0.03,
        )
    ],
    "racks": [m.RackStates(5.0, ["r001", "r002", "r003"], block(RackColumns, 1, 3))],
    "pools": [
        m.PoolStates(
            5.0,
            [
                m.PoolState(
                    "llama-70b-h100",
                    "llama-3-1-70b",
                    "hgx-h100",
                    replicas_desired=4,
                    replicas_ready=3,
                    time_to_first_token=m.Percentiles(0.1, 0.2, 0.4),
                )
            ],
            [m.RouteState("llama-3-1-70b", {"llama-70b-h100": 70.0, "llama-70b-lpu": 30.0})],
        )
    ],
    "fabric": [
        m.FabricState(
            5.0,
            [m.SwitchState("leaf1", 63, 64, 91.0, link_flaps=2)],
            [m.PortState("leaf1", 17, 91.0, 1200.0, peer="r001-n01/nic1")],
        )
    ],
    "cmd": [
        c.Cordon(id="c-1", nodes=["r001-n01"], reason="maintenance"),
        c.Uncordon(id="u-1", nodes=["r001-n01", "r001-n02"]),
        c.Drain(id="d-1", nodes=["r001-n01"], grace_s=60, force=True),
        c.Scale(id="s-1", pool="llama-70b-h100", replicas=6),
        c.Route(id="rt-1", model="llama-3-1-70b", weights={"a": 33.34, "b": 33.33, "c": 33.33}),
        c.Autoscale(id="a-1", pool="llama-70b-h100", enabled=True, target_ttft_s=0.5),
        c.InjectFault(id="f-1", target="leaf1", kind="link_flap", params={"port": 17}),
        c.ClearFault(id="f-2", target="leaf1", kind="link_flap"),
        c.Reboot(id="b-1", nodes=["r001-n01"]),
        c.Query(id="q-1", what="nodes", rack="r001", sort="temperature_c", limit=50),
    ],
    "reply": [
        c.Reply(id="d-1", ok=True, result={"nodes": {"r001-n01": "draining"}}),
        c.Reply(id="d-2", ok=False, error="drain would leave pool llama-70b-h100 with 1 of 2"),
    ],
}


def sample_topic(kind: str, site: str = SITE, command_id: str = "d-1") -> str:
    """A topic on which a message of `kind` travels."""
    if kind in AgentTopic.__members__.values():
        return agent_topic(AgentTopic(kind), site, RACK, AGENT)
    if kind in StateView.__members__.values():
        return state_topic(site, StateView(kind))
    return {
        "status": core_status_topic(site),
        "clock": core_clock_topic(site),
        "events": events_topic(site),
        "cmd": command_topic(site),
        "reply": reply_topic(site, command_id),
    }[kind]
