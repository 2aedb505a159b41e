"""What the core knows of the fleet, learned only from births, deaths and telemetry:
racks, agents, nodes and every device's latest samples, as structure-of-arrays tables."""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from numba import njit

from protocols.codec import arrays
from protocols.columns import (
    Columns,
    GpuColumns,
    LpuColumns,
    NicColumns,
    PortColumns,
    Record,
    layout,
)
from protocols.errors import MessageError
from protocols.messages import Birth, Death, NodeInventory, NodeKind, Telemetry
from sim.tables import IdOrder, Table

DEVICE_BLOCKS: dict[str, type[Columns]] = {
    "gpu": GpuColumns,
    "nic": NicColumns,
    "port": PortColumns,
    "lpu": LpuColumns,
}
"""Device kinds by their Telemetry field."""
NODE_KINDS: dict[NodeKind, int] = {"gpu": 0, "lpu": 1, "switch": 2}
UUID_BYTES = 40
"""A GPU UUID as nvidia-smi prints it (`GPU-` and 36 characters); a longer one is cut."""


def _inventory(node: NodeInventory, rack: str) -> dict[str, list[tuple[str, str, str]]]:
    """Each kind of device of a node as (model name, domain, cabled peer): GPUs of one NVLink
    domain can form a tensor-parallel replica; an LPU replica spans the chips of its rack."""
    return {
        "gpu": [(g.model, g.nvlink_domain or node.node, "") for g in node.gpus],
        "nic": [(n.model, node.node, n.peer) for n in node.nics],
        "port": [("switch port", node.node, p.peer) for p in node.ports],
        "lpu": [(c.model, rack, "") for c in node.lpus],
    }


@njit(cache=True)
def _scatter(rows: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    for lane in range(values.shape[0]):  # lane by lane: each lane of `out` is contiguous
        for j in range(rows.shape[0]):
            out[lane, rows[j]] = values[lane, j]


def scatter(
    rows: npt.NDArray[np.intp], values: npt.NDArray[np.generic], out: npt.NDArray[np.generic]
) -> None:
    """`out[:, rows] = values`: one sample column per row, every field at once."""
    if values.ndim != 2 or out.ndim != 2 or values.shape != (out.shape[0], rows.shape[0]):
        raise ValueError(
            f"values {values.shape} do not match rows {rows.shape} and out {out.shape}"
        )
    if rows.size and (rows.min() < 0 or rows.max() >= out.shape[1]):
        raise ValueError("a row is outside the table")
    _scatter(rows, values, out)


class DeviceTable:
    """Every device of one kind: its node and slot, and its latest gauges and counters;
    `samples` counts the samples stored (modulo 256), so a scan that finds it unchanged knows
    the device has sent nothing new."""

    def __init__(
        self, block: type[Columns], extra: Mapping[str, npt.DTypeLike] | None = None
    ) -> None:
        spec = layout(block)
        self.row_bytes = spec.row_bytes
        """What one device's sample takes in a telemetry block."""
        self.index_column = spec.names[1]
        self.gauges = [n for n, c in spec.columns.items() if c.kind == "gauge"]
        self.counters = [n for n, c in spec.columns.items() if c.kind == "counter"]
        self.table = Table(
            {
                "node": np.int32,
                "slot": np.int32,
                "model": np.int32,
                "domain": np.int32,
                "peer": np.int32,
                "present": np.bool_,
                "seen": np.float64,
                "samples": np.uint8,
                "gauges": np.float32,
                "counters": np.uint64,
            }
            | dict(extra or {}),
            width={"gauges": len(self.gauges), "counters": len(self.counters)},
        )

    def gauge(self, name: str) -> npt.NDArray[np.float32]:
        """One gauge of every device."""
        gauges: npt.NDArray[np.float32] = self.table["gauges"][self.gauges.index(name)]
        return gauges

    def ingest(self, rows: npt.NDArray[np.intp], record: Record, now: float) -> None:
        """Store one telemetry block's samples in `rows`: column by column as slices when the
        rows run on from one another (a gateway's batch of racks born in order), else with
        the scatter kernel."""
        span = _run(rows)
        table = self.table
        if span is None:
            self._scatter(rows, record)
        else:
            gauges, counters = table["gauges"], table["counters"]
            for lane, name in enumerate(self.gauges):
                gauges[lane, span] = record[name]
            for lane, name in enumerate(self.counters):
                counters[lane, span] = record[name]
        where = rows if span is None else span
        table["present"][where] = True
        table["seen"][where] = now
        table["samples"][where] += 1

    def _scatter(self, rows: npt.NDArray[np.intp], record: Record) -> None:
        gauges = np.stack([record[n] for n in self.gauges]).astype(np.float32, copy=False)
        scatter(rows, gauges, self.table["gauges"])
        if self.counters:
            counters = np.stack([record[n] for n in self.counters]).astype(np.uint64, copy=False)
            scatter(rows, counters, self.table["counters"])


def _run(rows: npt.NDArray[np.intp]) -> slice | None:
    """`rows` as a slice if they count up one by one, else None."""
    if not rows.size or rows[-1] - rows[0] != rows.size - 1 or not _counts_up(rows):
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1)


@njit(cache=True)
def _counts_up(rows: np.ndarray) -> bool:
    for j in range(1, rows.shape[0]):  # noqa: SIM110 - numba compiles loops, not generators
        if rows[j] != rows[j - 1] + 1:
            return False
    return True


@dataclass
class AgentView:
    """What the core remembers of one agent between its messages."""

    nodes: list[str]
    node_rows: npt.NDArray[np.intp]
    device_rows: dict[str, npt.NDArray[np.intp]]
    """Rows of every device of the agent's nodes, by kind."""
    device_nodes: dict[str, npt.NDArray[np.intp]]
    """For each of those rows, its node's place in `nodes`."""
    session: int
    seq: int = 0
    gaps: int = 0
    alive: bool = True
    interval_s: float = 1.0
    rack: str = ""
    connection: str = ""
    """Who speaks for it on the wire (its topics' agent level): itself, or its gateway."""


Speakers = tuple[list[AgentView], npt.NDArray[np.intp], dict[str, npt.NDArray[np.intp]]]
"""The agents a message speaks for, their node rows, and their device rows by kind."""


@dataclass
class Counts:
    """Messages ingested and rejected, by reason."""

    ingested: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        """Count one rejection."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class FleetState:
    """Racks, agents, nodes and devices, as births, deaths and telemetry describe them."""

    def __init__(self) -> None:
        self.racks = Table({})
        self.models = Table({})
        """Device model names, interned: the `model` column of the device tables."""
        self.domains = Table({})
        """NVLink domains (LPU racks), interned: the `domain` column of the device tables."""
        self.peers = Table({})
        """What a NIC or switch port is cabled to (`leaf01/17`), interned: the `peer` column."""
        self.nodes = Table(
            {
                "rack": np.int32,
                "kind": np.uint8,
                "alive": np.bool_,
                "seen": np.float64,
                "interval": np.float64,
                "sampled": np.float64,
                "stepped": np.float64,
            }
            | {f"first_{kind}": np.int32 for kind in DEVICE_BLOCKS}
            | {f"{kind}s": np.int32 for kind in DEVICE_BLOCKS}
        )
        self.devices = {
            kind: DeviceTable(block, {"uuid": f"S{UUID_BYTES}"} if kind == "gpu" else None)
            for kind, block in DEVICE_BLOCKS.items()
        }
        """Every device by kind; GPUs also keep their `uuid` (UTF-8 bytes) for exporters."""
        self.agents: dict[str, AgentView] = {}
        self.gateways: dict[str, set[str]] = {}
        """The agents each gateway connection speaks for, by its id."""
        self.agent_changes = 0
        """How often an agent was born, died or came back: what was planned per agent (the
        assignment messages) is stale once it changes."""
        self.counts = Counts()
        self._batches: dict[tuple[str, int, str], tuple[int, list[str], Speakers]] = {}
        """The speakers of each gateway batch (by gateway, session and first agent), as of
        `agent_changes`: a batch names the same racks tick after tick."""
        self.node_order = IdOrder(self.nodes)
        self.domain_order = IdOrder(self.domains)
        """Nodes and domains ranked by id, for a placement that is the same whatever order
        the births came in."""
        self.layout_changes = 0
        """How often births have added devices or moved one to another domain: what was
        derived from the devices' nodes and domains is stale once it changes."""

    def on_birth(self, birth: Birth, now: float) -> None:
        """Learn an agent's nodes and devices (again, after a reconnect)."""
        rack = int(self.racks.add([birth.rack])[0])
        node_rows = self.nodes.add([n.node for n in birth.nodes])
        self.nodes["rack"][node_rows] = rack
        self.nodes["kind"][node_rows] = [NODE_KINDS[n.kind] for n in birth.nodes]
        inventories = [_inventory(node, birth.rack) for node in birth.nodes]
        for kind in DEVICE_BLOCKS:
            devices = [inventory[kind] for inventory in inventories]
            self._make_room(kind, node_rows, np.array([len(d) for d in devices], np.int32))
            listed = [device for node in devices for device in node]
            if not listed:
                continue
            models, domains, peers = (list(column) for column in zip(*listed, strict=True))
            table = self.devices[kind].table
            rows = self.device_rows(node_rows, kind)
            table["present"][rows] = True  # as born, until telemetry says otherwise
            table["model"][rows] = self.models.add(models)
            domain_rows = self.domains.add(domains)
            if not np.array_equal(table["domain"][rows], domain_rows):
                self.layout_changes += 1
            table["domain"][rows] = domain_rows
            table["peer"][rows] = self.peers.add(peers)
        gpus = self.device_rows(node_rows, "gpu")
        self.devices["gpu"].table["uuid"][gpus] = [
            g.uuid.encode()[:UUID_BYTES] for node in birth.nodes for g in node.gpus
        ]
        self.nodes["alive"][node_rows] = True
        self.nodes["seen"][node_rows] = now
        self.nodes["interval"][node_rows] = birth.interval_s
        connection = birth.gateway or birth.agent
        before = self.agents.get(birth.agent)
        if before is not None and before.connection != connection:
            self.gateways.get(before.connection, set()).discard(birth.agent)
        if birth.gateway:
            self.gateways.setdefault(birth.gateway, set()).add(birth.agent)
        places = np.arange(node_rows.size)
        self.agents[birth.agent] = AgentView(
            [n.node for n in birth.nodes],
            node_rows,
            {kind: self.device_rows(node_rows, kind) for kind in DEVICE_BLOCKS},
            {kind: np.repeat(places, self.nodes[f"{kind}s"][node_rows]) for kind in DEVICE_BLOCKS},
            birth.session,
            interval_s=birth.interval_s,
            rack=birth.rack,
            connection=connection,
        )
        self.agent_changes += 1

    def _make_room(
        self, kind: str, node_rows: npt.NDArray[np.intp], counts: npt.NDArray[np.int32]
    ) -> None:
        """Give each node whose count of `kind` devices changed (a first birth, or a rebirth
        with other hardware) fresh rows for them, numbered by slot."""
        changed = self.nodes[f"{kind}s"][node_rows] != counts
        if not changed.any():
            return
        nodes, counts = node_rows[changed], counts[changed]
        table = self.devices[kind].table
        rows = table.add_anonymous(int(counts.sum()))
        firsts = rows[0] + np.cumsum(counts) - counts if rows.size else np.zeros_like(counts)
        self.nodes[f"first_{kind}"][nodes] = firsts
        self.nodes[f"{kind}s"][nodes] = counts
        table["node"][rows] = np.repeat(nodes, counts)
        table["slot"][rows] = rows - np.repeat(firsts, counts)
        self.layout_changes += 1

    def on_death(self, death: Death) -> int:
        """An agent, or a gateway and every agent it speaks for in that session, died (the
        will) or stopped; how many agents died (0 for a death of an older session)."""
        names = self.gateways.get(death.agent, set()) | {death.agent}
        dying = [
            agent
            for name in names
            if (agent := self.agents.get(name)) is not None
            and agent.session == death.session
            and agent.alive
        ]
        for agent in dying:
            agent.alive = False
            self.nodes["alive"][agent.node_rows] = False
            for kind, devices in self.devices.items():
                devices.table["present"][agent.device_rows[kind]] = False
        self.agent_changes += bool(dying)
        return len(dying)

    def telemetry_bytes_per_s(self, fastest_s: float) -> float:
        """The device columns a second that the living nodes' births promise to send, with no
        node counted as sampling more often than every `fastest_s` seconds."""
        alive = self.nodes["alive"]
        per_s = 1.0 / np.maximum(self.nodes["interval"][alive], fastest_s)
        return sum(
            float(self.nodes[f"{kind}s"][alive] @ per_s) * devices.row_bytes
            for kind, devices in self.devices.items()
        )

    def device_rows(self, node_rows: npt.NDArray[np.intp], kind: str) -> npt.NDArray[np.intp]:
        """Rows of every device of `kind` on these nodes, node by node."""
        firsts = self.nodes[f"first_{kind}"][node_rows].astype(np.intp)
        counts = self.nodes[f"{kind}s"][node_rows]
        ends = np.cumsum(counts, dtype=np.intp)
        if not ends.size or not ends[-1]:
            return np.empty(0, np.intp)
        # each node's devices: its first row, then one more per device
        return np.repeat(firsts - (ends - counts), counts) + np.arange(ends[-1])

    def on_telemetry(self, message: Telemetry, now: float) -> str | None:
        """Store a telemetry message (one agent's, or a gateway's batch of several); the reason
        it was rejected, or None."""
        speakers = self._speakers(message)
        if isinstance(speakers, str):
            return speakers
        agents, node_rows, device_rows = speakers
        try:
            blocks = {kind: arrays(message, kind, node_rows.size) for kind in DEVICE_BLOCKS}
        except MessageError as error:
            return self._reject("malformed", str(error))
        for kind, record in blocks.items():
            if record is None:
                continue
            devices = self.devices[kind]
            nodes = node_rows[record["node"]]
            slots = record[devices.index_column].astype(np.intp)
            if slots.size and bool(np.any(slots >= self.nodes[f"{kind}s"][nodes])):
                return self._reject(
                    "unknown device", f"telemetry of {message.agent} names an unknown {kind}"
                )
            devices.table["present"][device_rows[kind]] = False
            devices.ingest(self.nodes[f"first_{kind}"][nodes] + slots, record, now)
        seqs = message.seqs if message.agents else [message.seq]
        for agent, seq in zip(agents, seqs, strict=True):
            if agent.seq and seq > agent.seq + 1:
                agent.gaps += seq - agent.seq - 1
            agent.seq = seq
            if not agent.alive:
                agent.alive = True
                self.agent_changes += 1
        self.nodes["seen"][node_rows] = now
        self.nodes["sampled"][node_rows] = message.time
        self.nodes["stepped"][node_rows] = message.sim_time
        self.nodes["alive"][node_rows] = True
        self.counts.ingested += 1
        return None

    def _speakers(self, message: Telemetry) -> str | Speakers:
        """The agents a message speaks for, their node rows and device rows (in the order its
        columns number them); or why it may not speak for them."""
        if not message.agents:
            agent = self.agents.get(message.agent)
            if agent is None:
                return self._reject(
                    "unknown agent", f"telemetry from unknown agent {message.agent}"
                )
            if message.session != agent.session:
                return self._reject(
                    "stale session", f"telemetry of an old session of {message.agent}"
                )
            if message.nodes == agent.nodes:
                return [agent], agent.node_rows, agent.device_rows
            rows = [self.nodes.rows.get(n, -1) for n in message.nodes]
            if -1 in rows or not set(message.nodes) <= set(agent.nodes):
                return self._reject(
                    "unknown node",
                    f"telemetry of {message.agent} names an unknown node, or another agent's",
                )
            node_rows = np.array(rows, np.intp)
            return [agent], node_rows, {k: self.device_rows(node_rows, k) for k in DEVICE_BLOCKS}
        if len(message.seqs) != len(message.agents) or message.nodes:
            return self._reject(
                "malformed",
                f"batch of {message.agent} has {len(message.seqs)} seqs for "
                f"{len(message.agents)} agents, or lists nodes",
            )
        key = (message.agent, message.session, message.agents[0])
        cached = self._batches.get(key)
        if cached is not None and cached[0] == self.agent_changes and cached[1] == message.agents:
            return cached[2]
        agents = []
        for name in message.agents:
            agent = self.agents.get(name)
            if agent is None:
                return self._reject(
                    "unknown agent", f"batch of {message.agent} names unknown agent {name}"
                )
            if agent.connection != message.agent:
                return self._reject(
                    "identity", f"batch of {message.agent} speaks for {name}, not one of its agents"
                )
            if agent.session != message.session:
                return self._reject("stale session", f"batch of an old session of {message.agent}")
            agents.append(agent)
        node_rows = np.concatenate([a.node_rows for a in agents])
        device_rows = {
            kind: np.concatenate([a.device_rows[kind] for a in agents]) for kind in DEVICE_BLOCKS
        }
        if len(self._batches) >= len(self.agents) + 1:  # batches of gateways long gone
            self._batches.clear()
        self._batches[key] = (
            self.agent_changes,
            list(message.agents),
            (agents, node_rows, device_rows),
        )
        return agents, node_rows, device_rows

    def _reject(self, reason: str, sentence: str) -> str:
        self.counts.reject(reason)
        return sentence
