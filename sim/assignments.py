"""The assignment messages of a tick: one per connection, or per chunk of a gateway's agents
that fits a message, carrying only the loads that changed beyond a threshold since they were
last sent, and every load of a chunk once per keep-alive period."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from protocols.columns import MAX_ROWS, Columns, layout
from protocols.limits import KIB
from protocols.messages import Assignment
from sim.fleet_state import AgentView, FleetState

CHUNK_BYTES = 256 * KIB
"""The most bytes of load columns in one message to a gateway: as its telemetry batches,
well under EMQX's 1 MB default packet limit (agents.connections.BATCH_BYTES)."""
RELATIVE_CHANGE = 0.02
ABSOLUTE_CHANGE = 0.005
"""A load is sent again once it moves by more than 2% of itself, or 0.005 in its unit (half
a percent of a 0..1 ratio): an assumption, smaller than the noise the agents add to what they
report (agents.gpu: 1-2% on utilisation and power)."""
KEEPALIVE_S = 3.0
"""Every chunk's loads go out whole at least this often (real seconds), changed or not, so a
lost message heals and agents know the core is there (they idle after
agents.agent.ASSIGNMENT_TTL_MIN_S without one)."""

Loads = Mapping[str, tuple[type[Columns], Mapping[str, npt.NDArray[Any]]]]
"""Per device kind: its load block, and each load column over every device of the kind."""


@dataclass
class Chunk:
    """Agents that share one assignment message, and their devices in its numbering."""

    connection: str
    rack: str
    """The rack level of the message's topic (the agent's rack, or the gateway's id)."""
    session: int
    agents: list[AgentView]
    names: list[str]
    gateway: bool
    start: dict[str, int]
    stop: dict[str, int]
    """This chunk's span of the plan's device rows, by kind."""


@njit(cache=True)
def mark_moved(flags: np.ndarray, rows: np.ndarray, new: np.ndarray, last: np.ndarray) -> None:
    """Flag each j whose load `new[rows[j]]` (as float32, as it is sent) moved from what was
    last sent, `last[rows[j]]`, past the threshold, or whose load was never sent (NaN)."""
    for j in range(rows.shape[0]):
        row = rows[j]
        old = np.float64(last[row])
        value = np.float64(np.float32(new[row]))
        if np.isnan(old) or abs(value - old) > ABSOLUTE_CHANGE + RELATIVE_CHANGE * abs(old):
            flags[j] = True


class Assigner:
    """Plans the messages per connection as the agents come and go, and sends what changed."""

    def __init__(self, fleet: FleetState, keepalive_ticks: int) -> None:
        self.fleet = fleet
        self.keepalive_ticks = max(1, keepalive_ticks)
        self._planned_at = -1
        self._chunks: list[Chunk] = []
        self._rows: dict[str, npt.NDArray[np.intp]] = {}
        self._node: dict[str, npt.NDArray[np.intp]] = {}
        self._last: dict[str, npt.NDArray[np.float32]] = {}
        """What each device was last sent, by kind: (load columns, devices); NaN if nothing."""
        self._sessions: dict[str, int] = {}
        self.sent_rows = 0
        """Device loads sent in the last tick's messages."""

    def messages(self, tick: int, now: float, loads: Loads) -> Iterator[tuple[Chunk, Assignment]]:
        """Every message this tick needs, with the chunk it goes to."""
        self._plan(loads)
        self.sent_rows = 0
        changed = {
            kind: self._changed(kind, block, values) for kind, (block, values) in loads.items()
        }
        counts = {
            kind: np.concatenate([[0], np.cumsum(flags, dtype=np.intp)])
            for kind, flags in changed.items()
        }
        for index, chunk in enumerate(self._chunks):
            due = (index + tick) % self.keepalive_ticks == 0
            if not due and not any(
                counts[k][chunk.stop[k]] > counts[k][chunk.start[k]] for k in loads
            ):
                continue
            blocks: dict[str, Any] = {}
            for kind, (block, values) in loads.items():
                span = slice(chunk.start[kind], chunk.stop[kind])
                rows, node = self._rows[kind][span], self._node[kind][span]
                if not due:
                    rows, node = rows[changed[kind][span]], node[changed[kind][span]]
                if rows.size:
                    blocks[kind] = self._block(block, kind, values, rows, node)
            if chunk.gateway:
                message = Assignment(
                    chunk.connection, chunk.session, tick, now, [], agents=chunk.names, **blocks
                )
            else:
                (agent,) = chunk.agents
                message = Assignment(
                    chunk.connection, chunk.session, tick, now, agent.nodes, **blocks
                )
            yield chunk, message

    def _block(
        self,
        block: type[Columns],
        kind: str,
        values: Mapping[str, npt.NDArray[Any]],
        rows: npt.NDArray[np.intp],
        node: npt.NDArray[np.intp],
    ) -> Columns:
        spec = layout(block)
        fields = spec.names[2:]
        self._last[kind][:, rows] = [values[f][rows] for f in fields]
        self.sent_rows += rows.size
        table = self.fleet.devices[kind].table
        return spec.pack(
            {spec.names[0]: node, spec.names[1]: table["slot"][rows]}
            | {f: values[f][rows] for f in fields}
        )

    def _changed(
        self, kind: str, block: type[Columns], values: Mapping[str, npt.NDArray[Any]]
    ) -> npt.NDArray[np.bool_]:
        """Per planned device row of `kind`: whether its load moved past the threshold."""
        rows = self._rows[kind]
        flags = np.zeros(rows.size, np.bool_)
        for lane, name in enumerate(layout(block).names[2:]):
            mark_moved(flags, rows, values[name], self._last[kind][lane])
        return flags

    def _plan(self, loads: Loads) -> None:
        """Chunks for the live agents, rebuilt only when agents were born or died."""
        if self._planned_at == self.fleet.agent_changes:
            return
        self._planned_at = self.fleet.agent_changes
        for kind, (block, _) in loads.items():
            fields = layout(block).names[2:]
            size = len(self.fleet.devices[kind].table)
            last = self._last.get(kind)
            grown = np.full((len(fields), size), np.nan, np.float32)
            if last is not None:
                grown[:, : last.shape[1]] = last[:, :size]
            self._last[kind] = grown
        by_connection: dict[str, list[tuple[str, AgentView]]] = {}
        for name, agent in self.fleet.agents.items():
            if agent.alive:
                by_connection.setdefault(agent.connection, []).append((name, agent))
                if self._sessions.get(name) != agent.session:  # newly born: send it all
                    self._sessions[name] = agent.session
                    for kind in self._last:
                        self._last[kind][:, agent.device_rows[kind]] = np.nan
        chunks: list[tuple[str, str, bool, list[tuple[str, AgentView]]]] = []
        for connection, members in by_connection.items():
            gateway = connection in self.fleet.gateways
            if not gateway:
                ((name, agent),) = members
                chunks.append((connection, agent.rack, False, members))
                continue
            session = max(agent.session for _, agent in members)
            members = [(n, a) for n, a in members if a.session == session]
            for part in self._split(members, loads):
                chunks.append((connection, connection, True, part))
        self._build(chunks)

    def _split(
        self, members: list[tuple[str, AgentView]], loads: Loads
    ) -> Iterator[list[tuple[str, AgentView]]]:
        """A gateway's agents in runs whose devices fit CHUNK_BYTES and MAX_ROWS per kind."""
        row_bytes = {kind: layout(block).row_bytes for kind, (block, _) in loads.items()}
        part: list[tuple[str, AgentView]] = []
        size = 0
        rows = dict.fromkeys(loads, 0)
        for name, agent in members:
            more = {k: agent.device_rows[k].size for k in loads}
            extra = sum(more[k] * row_bytes[k] for k in loads)
            if part and (
                size + extra > CHUNK_BYTES or any(rows[k] + more[k] > MAX_ROWS for k in loads)
            ):
                yield part
                part, size, rows = [], 0, dict.fromkeys(loads, 0)
            part.append((name, agent))
            size += extra
            rows = {k: rows[k] + more[k] for k in loads}
        if part:
            yield part

    def _build(self, chunks: list[tuple[str, str, bool, list[tuple[str, AgentView]]]]) -> None:
        """The chunks, and the plan's device rows with their node in their chunk's message:
        per agent, its devices' node places shifted by where its nodes begin in the message."""
        members = [agent for *_, part in chunks for _, agent in part]
        first_nodes: list[int] = []
        for *_, part in chunks:
            counts = [len(agent.node_rows) for _, agent in part]
            first_nodes += np.cumsum([0, *counts[:-1]]).tolist()
        offset = dict.fromkeys(self._last, 0)
        sizes: dict[str, list[int]] = {}
        for kind in self._last:
            sizes[kind] = [agent.device_rows[kind].size for agent in members]
            self._rows[kind] = _joined([agent.device_rows[kind] for agent in members])
            self._node[kind] = _joined([agent.device_nodes[kind] for agent in members]) + np.repeat(
                np.array(first_nodes, np.intp), sizes[kind]
            )
        self._chunks = []
        done = 0
        for connection, rack, gateway, part in chunks:
            start = dict(offset)
            for kind in offset:
                offset[kind] += sum(sizes[kind][done : done + len(part)])
            done += len(part)
            self._chunks.append(
                Chunk(
                    connection,
                    rack,
                    part[0][1].session,
                    [agent for _, agent in part],
                    [name for name, _ in part],
                    gateway,
                    start,
                    dict(offset),
                )
            )


def _joined(arrays: list[npt.NDArray[np.intp]]) -> npt.NDArray[np.intp]:
    """The arrays end to end, as row indices (empty if none)."""
    return np.concatenate(arrays).astype(np.intp, copy=False) if arrays else np.zeros(0, np.intp)
