"""Message schemas of agents and the core (operator commands live in protocols.commands).

High-rate messages (Telemetry, Assignment) are `array_like` and carry device arrays as
column blocks. Every new field gets a default, so an older decoder reads a newer message.
Times are Unix seconds of the simulated clock, but for `Telemetry.time`, the agents' wall
clock (telemetry carries both).
"""

from typing import Annotated, Literal

from msgspec import Meta, Struct

from protocols.columns import (
    GpuColumns,
    GpuLoad,
    LpuColumns,
    LpuLoad,
    NicColumns,
    NicLoad,
    PortColumns,
    PortLoad,
    RackColumns,
)
from protocols.ids import ID_MAX_LENGTH, CommandId, EntityId
from protocols.limits import (
    MAX_DEVICES_PER_NODE,
    MAX_LIST,
    MAX_NODES_PER_AGENT,
    MAX_RACKS,
    MAX_TEXT,
)

Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Count = Annotated[int, Meta(ge=0)]
Seq = Annotated[int, Meta(ge=0)]
AgentRefs = Annotated[
    list[Annotated[str, Meta(max_length=ID_MAX_LENGTH)]], Meta(max_length=MAX_RACKS)
]
"""The agents (racks) a gateway's message speaks for, in the order its columns use them;
checked, as NodeRefs are, against the births."""
NodeRefs = Annotated[
    list[Annotated[str, Meta(max_length=ID_MAX_LENGTH)]], Meta(max_length=MAX_NODES_PER_AGENT)
]
"""Node ids in high-rate messages: the receiver checks them against the sender's Birth;
a regex per id here would cost more than decoding all the columns."""
NodeKind = Literal["gpu", "lpu", "switch"]
Severity = Literal["info", "warning", "error", "critical"]
NodeState = Literal["ready", "cordoned", "draining", "drained", "lost", "failed"]


class GpuInfo(Struct, frozen=True, gc=False):
    """One GPU as nvidia-smi would list it."""

    index: Count
    uuid: Text
    model: Text
    memory_mib: Count
    power_limit_w: float
    nvlink_domain: Text = ""
    """GPUs that share this id share one NVLink domain (an NVL72 rack)."""


class NicInfo(Struct, frozen=True, gc=False):
    """One ConnectX NIC port on the back-end fabric."""

    index: Count
    model: Text
    speed_gbps: float
    gpu: int = -1
    """Index of the GPU this NIC serves (PCIe affinity), -1 for none."""
    peer: Text = ""
    """`switch/port` this NIC is cabled to."""


class LpuInfo(Struct, frozen=True, gc=False):
    """One inference chip."""

    index: Count
    model: Text
    sram_mb: float


class PortInfo(Struct, frozen=True, gc=False):
    """One switch port."""

    index: Count
    speed_gbps: float
    peer: Text = ""
    """`node/nicN` or `switch/port` on the other end of the cable."""


class NodeInventory(Struct, frozen=True, gc=False):
    """What one node is: its kind, system and devices."""

    node: EntityId
    kind: NodeKind
    system: Text
    gpus: Annotated[list[GpuInfo], Meta(max_length=MAX_DEVICES_PER_NODE)] = []
    nics: Annotated[list[NicInfo], Meta(max_length=MAX_DEVICES_PER_NODE)] = []
    lpus: Annotated[list[LpuInfo], Meta(max_length=MAX_DEVICES_PER_NODE)] = []
    ports: Annotated[list[PortInfo], Meta(max_length=MAX_DEVICES_PER_NODE)] = []


class Birth(Struct, frozen=True, gc=False):
    """An agent's birth: the nodes it speaks for, sent on every (re)connect.

    `session` increases with every connection and matches the Death registered as its will.
    """

    agent: EntityId
    rack: EntityId
    session: Seq
    time: float
    interval_s: Annotated[float, Meta(gt=0)]
    nodes: Annotated[list[NodeInventory], Meta(min_length=1, max_length=MAX_NODES_PER_AGENT)]
    software: Text = ""
    gateway: EntityId | None = None
    """The gateway connection that speaks for this agent (its topics' agent level), if any:
    the gateway's death is this agent's too, when it has the same session."""


class Death(Struct, frozen=True, gc=False):
    """An agent's death: the MQTT will (`clean` false) or a clean shutdown (`clean` true)."""

    agent: EntityId
    session: Seq
    clean: bool = False


class Telemetry(Struct, frozen=True, gc=False, array_like=True):
    """One agent's samples of one interval, as column blocks; or, from a gateway (`agent`
    is then the gateway and `agents` lists the racks it speaks for), several racks' samples.

    `seq` increases by one per message within a session, so a gap means lost messages; in a
    gateway's batch, `seqs` holds each listed agent's own seq. `time` is the wall clock when
    the samples were taken, `sim_time` the simulated one the agents' physics had reached.
    """

    agent: EntityId
    session: Seq
    seq: Seq
    time: float
    nodes: NodeRefs
    gpu: GpuColumns | None = None
    nic: NicColumns | None = None
    port: PortColumns | None = None
    lpu: LpuColumns | None = None
    agents: AgentRefs = []
    """A gateway's batch: the agents it holds, each with the nodes of its birth; the blocks'
    `node` indexes those nodes, agent after agent, and `nodes` is empty."""
    seqs: Annotated[list[Seq], Meta(max_length=MAX_RACKS)] = []
    sim_time: float = 0.0


class Assignment(Struct, frozen=True, gc=False, array_like=True):
    """The load the core assigns to one agent's devices until the next assignment; or, to a
    gateway, to the devices of the agents it lists (`node` indexes their nodes as
    Telemetry's does). Only devices whose load changed need be listed.

    `time` is the core's simulated time (its clock itself goes out as CoreClock).
    """

    agent: EntityId
    session: Seq
    """The birth session this answers; an agent ignores assignments for an older one."""
    seq: Seq
    time: float
    nodes: NodeRefs
    gpu: GpuLoad | None = None
    nic: NicLoad | None = None
    port: PortLoad | None = None
    lpu: LpuLoad | None = None
    agents: AgentRefs = []


class CoreClock(Struct, frozen=True, gc=False):
    """The core's simulated clock, every tick (retained): agents step their physics by it."""

    time: float
    speed: float
    """Simulated seconds per real one; 0 on a manual clock, which moves only as it ticks."""
    tick: Seq = 0


class CoreStatus(Struct, frozen=True, gc=False):
    """The core's liveness, retained; its will publishes `online=False`."""

    online: bool
    session: Seq
    time: float = 0.0
    speed: float = 1.0
    version: Text = ""
    replay: Text = ""
    """Set by `aidc replay`, which publishes the recorded statuses: what it replays (the file
    and the pace); empty from a live core."""
    connection: Seq = 0
    """How many times this core has connected to the broker: agents send their births again
    when it changes, since a broker that restarted has forgotten them."""


class Summary(Struct, frozen=True, gc=False):
    """The fleet in one line, every tick."""

    time: float
    tick: Seq
    speed: float
    gpus: Count = 0
    gpus_healthy: Count = 0
    gpus_cordoned: Count = 0
    gpus_lost: Count = 0
    lpus: Count = 0
    lpus_healthy: Count = 0
    nodes: dict[NodeState, Count] = {}
    power_w: float = 0.0
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0
    goodput_rps: float = 0.0
    """Requests per second that met both their TTFT and ITL SLOs."""
    ttft_p99_s: float = 0.0
    itl_p99_s: float = 0.0
    ingest_per_s: float = 0.0
    """Telemetry messages the core ingested per second."""
    rejected: Count = 0
    """Messages the core has rejected as malformed or unknown since it started."""
    completed_per_s: float = 0.0
    """Requests per second that finished; `goodput_rps` is the part that met the SLOs, so it
    never exceeds this (arrivals can: a tick may finish requests that came before it)."""
    gpu_samples_per_s: float = 0.0
    """GPU samples the core ingested per second."""
    gpu_samples: Count = 0
    """GPU samples the core has ingested since it started: over a window, its difference
    divided by the window's time is the ingest rate, however unevenly the ticks fell."""
    telemetry_age_p50_s: float = 0.0
    telemetry_age_p99_s: float = 0.0
    """How old, in wall seconds, the live nodes' latest samples were when the tick used them."""
    telemetry_dropped: Count = 0
    """Telemetry messages the core shed unread (its queue was full) since it started."""
    tick_ms: float = 0.0
    """Wall time the tick took: the world's step and building the views."""
    assign_ms: float = 0.0
    """Wall time sending the agents their load took."""


class RackStates(Struct, frozen=True, gc=False, array_like=True):
    """Per-rack aggregates, every tick."""

    time: float
    racks: Annotated[list[EntityId], Meta(max_length=MAX_RACKS)]
    columns: RackColumns


class Percentiles(Struct, frozen=True, gc=False, array_like=True):
    """p50, p90 and p99 of a latency, in seconds."""

    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0


class PoolState(Struct, frozen=True, gc=False):
    """One pool (a model on a hardware kind) as vLLM would report it, plus its control state."""

    pool: EntityId
    model: EntityId
    hardware: Text
    replicas_desired: Count = 0
    replicas_ready: Count = 0
    replicas_warming: Count = 0
    min_available: Count = 0
    num_requests_running: Count = 0
    num_requests_waiting: Count = 0
    kv_cache_usage: float = 0.0
    """Fraction of KV-cache blocks in use, 0..1."""
    tokens_per_s: float = 0.0
    time_to_first_token: Percentiles = Percentiles()
    inter_token_latency: Percentiles = Percentiles()
    e2e_request_latency: Percentiles = Percentiles()
    slo_attainment: float = 1.0
    autoscale: bool = False
    requests_per_s: float = 0.0
    """Requests arriving, per second."""
    goodput_rps: float = 0.0
    """Requests per second completed within both the TTFT and the ITL SLO."""
    requests_failed: float = 0.0
    """Requests lost with replicas whose devices failed, since the core started."""
    has_hardware: bool = True
    """Whether the site has any device of the pool's hardware; a pool without is left out of
    desired totals and shows no SLO figure."""


class RouteState(Struct, frozen=True, gc=False):
    """A model's traffic split across pools, in percent."""

    model: EntityId
    weights: dict[EntityId, float]


class PoolStates(Struct, frozen=True, gc=False):
    """Every pool and route, every tick."""

    time: float
    pools: Annotated[list[PoolState], Meta(max_length=MAX_LIST)]
    routes: Annotated[list[RouteState], Meta(max_length=MAX_LIST)] = []


class SwitchState(Struct, frozen=True, gc=False):
    """One switch's health and load."""

    switch: EntityId
    ports_up: Count
    ports: Count
    max_utilization: float = 0.0
    ecn_marks_per_s: float = 0.0
    pauses_per_s: float = 0.0
    drops_per_s: float = 0.0
    link_flaps: Count = 0


class PortState(Struct, frozen=True, gc=False):
    """One switch port, for the list of hottest ports."""

    switch: EntityId
    port: Count
    utilization: float
    ecn_marks_per_s: float = 0.0
    pauses_per_s: float = 0.0
    peer: Text = ""


class FabricState(Struct, frozen=True, gc=False):
    """The Spectrum-X fabric: every switch, and the hottest ports."""

    time: float
    switches: Annotated[list[SwitchState], Meta(max_length=MAX_LIST)]
    hottest: Annotated[list[PortState], Meta(max_length=MAX_LIST)] = []


class Event(Struct, frozen=True, gc=False):
    """Something that happened: when, how bad, to what, and a sentence."""

    time: float
    severity: Severity
    subject: Text
    """What it happened to: `node/r012-n03`, `gpu/r012-n03/3`, `pool/llama-70b-h100`, ..."""
    kind: EntityId
    """Short machine-readable class: `xid`, `thermal`, `drain`, `link-flap`, ..."""
    message: Text
    command: CommandId | None = None
    """The operator command that caused it, if any."""


class Events(Struct, frozen=True, gc=False):
    """Events of one tick."""

    events: Annotated[list[Event], Meta(max_length=MAX_LIST)]
