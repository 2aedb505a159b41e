"""A node agent: the nodes of a rack (or one node) as the core knows them, with their own
birth, session and seq; it builds their telemetry and applies the core's assignments and
commands to their devices. A connection (agents.connections) carries its messages."""

import time
from typing import Any

import numpy as np

from agents.batch import load_devices
from agents.groups import Devices, Group
from protocols.codec import arrays
from protocols.columns import Columns, layout
from protocols.commands import ClearFault, InjectFault
from protocols.faults import FAULT_DEVICES
from protocols.messages import Assignment, Birth, Telemetry

SOFTWARE = "aidc-agent 0.1.0"
ASSIGNMENT_TTL_INTERVALS = 5
"""With no assignment for this many intervals (no core), devices go back to idle."""
ASSIGNMENT_TTL_MIN_S = 10.0
"""...and never sooner than this: the core sends a load that has not changed only every few
seconds (sim.assignments.KEEPALIVE_S), so a fast interval must not idle between them."""
POWER_LOSS_S = 30.0
"""How long a power loss lasts unless its `duration_s` says otherwise."""


class Agent:
    """Speaks for nodes `first_node .. first_node + count - 1` of rack `rack` of `group`."""

    def __init__(
        self, group: Group, rack: int, first_node: int, count: int, interval_s: float
    ) -> None:
        self.group = group
        self.rack_index = rack
        self.rack = group.racks[rack]
        self.first_node = first_node
        self.nodes = group.nodes[rack][first_node : first_node + count]
        self.whole_rack = count == len(group.nodes[rack])
        self.id = self.rack if self.whole_rack else self.nodes[0]
        self.interval_s = interval_s
        self.ttl_s = max(ASSIGNMENT_TTL_INTERVALS * interval_s, ASSIGNMENT_TTL_MIN_S)
        self.seq = 0
        self.published = 0
        self.powered = True
        self.assigned_at = -float("inf")
        self._node_index = {node: i for i, node in enumerate(self.nodes)}
        self.gpus = sum(count * d.per_node for d in group.devices if d.name == "gpu")

    @property
    def devices(self) -> list[Devices]:
        """The device kinds of this agent's nodes."""
        return self.group.devices

    def birth(self, session: int, gateway: str | None = None) -> Birth:
        """Who this agent speaks for, with every device; `gateway` if one speaks for it."""
        inventories = self.group.inventories[self.rack_index]
        return Birth(
            agent=self.id,
            rack=self.rack,
            session=session,
            time=time.time(),
            interval_s=self.interval_s,
            nodes=inventories[self.first_node : self.first_node + len(self.nodes)],
            software=SOFTWARE,
            gateway=gateway,
        )

    def telemetry(self, session: int, sim_time: float) -> Telemetry:
        """The current samples of every device that reports, as this agent's next message."""
        blocks: dict[str, Any] = {device.name: self._block(device) for device in self.devices}
        self.seq += 1
        self.published += 1
        return Telemetry(
            self.id, session, self.seq, time.time(), self.nodes, **blocks, sim_time=sim_time
        )

    def _block(self, device: Devices) -> Columns:
        wire = device.bank.wire[self.rack_index]
        spec = layout(device.block)
        if self.whole_rack and device.all_present[self.rack_index]:
            return spec.pack_record(wire)
        first = self.first_node * device.per_node
        rows = slice(first, first + len(self.nodes) * device.per_node)
        reporting = device.present[self.rack_index, rows]
        columns = {name: wire[name][rows][reporting] for name in spec.names}
        columns["node"] = columns["node"] - self.first_node
        return spec.pack(columns)

    def apply(self, assignment: Assignment) -> None:
        """Load the devices named in an assignment to this agent alone; ValueError if it
        names nodes or devices that are not this agent's."""
        try:
            nodes = np.array([self._node_index[n] for n in assignment.nodes], dtype=np.intp)
        except KeyError as error:
            raise ValueError(f"assignment names node {error.args[0]!r}, not one of ours") from None
        for device in self.devices:
            load = arrays(assignment, device.name)
            if load is not None:
                node = nodes[load["node"]] + self.first_node
                load_devices(device, load, self.rack_index, node)
        self.assigned_at = time.monotonic()

    def expire(self, now: float) -> None:
        """Idle the devices if the core has not assigned anything for a while."""
        if now - self.assigned_at > self.ttl_s:
            self.group.idle(self.rack_index, self.first_node, len(self.nodes))
            self.assigned_at = float("inf")  # idle until the next assignment

    def reboot(self, nodes: list[str]) -> None:
        """Reset the devices of these nodes (ValueError if one is not this agent's)."""
        for node in [self._node(name) for name in nodes]:
            for device in self.devices:
                device.bank.reset(self.rack_index, device.rows(node))

    def reboot_all(self) -> None:
        """Reset every device of this agent's nodes, as booting after a power loss does."""
        self.reboot(self.nodes)

    def inject(self, fault: InjectFault) -> None:
        """Inject a device fault (not a power loss: the connection carries that out)."""
        node = self._node(fault.target)
        for device in self._fault_devices(fault.kind):
            device.bank.inject(self.rack_index, device.rows(node), fault.kind, fault.params)

    def clear(self, command: ClearFault) -> None:
        """Clear a node's faults (of one kind, or all)."""
        node = self._node(command.target)
        for device in self._fault_devices(command.kind):
            device.bank.clear(self.rack_index, device.rows(node), command.kind)

    def check_node(self, node: str) -> None:
        """ValueError unless `node` is one of this agent's."""
        self._node(node)

    def _node(self, node: str) -> int:
        try:
            return self.first_node + self._node_index[node]
        except KeyError:
            raise ValueError(f"node {node!r} is not one of agent {self.id}'s") from None

    def _fault_devices(self, kind: str | None) -> list[Devices]:
        if kind is None:
            return self.devices
        names = FAULT_DEVICES.get(kind, ())
        found = [device for device in self.devices if device.name in names]
        if not found:
            raise ValueError(f"agent {self.id} has no devices that can have a {kind} fault")
        return found


def power_loss_s(fault: InjectFault) -> float:
    """How long a power_loss fault lasts; ValueError if its `duration_s` is not a number."""
    duration = fault.params.get("duration_s", POWER_LOSS_S)
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError(f"power_loss duration_s must be a number, not {duration!r}")
    return min(float(duration), 3600.0)
