"""A node agent: one MQTT connection speaking for a rack's nodes (or for one node), with its
death as the will, a birth on every connect, telemetry every interval, and the core's
assignments and commands applied to its devices."""

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

import aiomqtt
import numpy as np

from agents.groups import Devices, Group
from protocols import codec
from protocols.codec import arrays, encode
from protocols.columns import Columns, layout
from protocols.commands import AgentCommand, ClearFault, InjectFault, Rebirth, Reboot
from protocols.complaints import Complaints
from protocols.endpoint import Endpoint
from protocols.errors import MessageError
from protocols.faults import FAULT_DEVICES
from protocols.link import Link, LinkDown
from protocols.messages import Assignment, Birth, CoreStatus, Death, Telemetry
from protocols.topics import AgentTopic, TopicKind, agent_topic, core_status_topic, parse_topic

log = logging.getLogger("aidc.agents")

SOFTWARE = "aidc-agent 0.1.0"
ASSIGNMENT_TTL_INTERVALS = 5
"""With no assignment for this many intervals (no core), devices go back to idle."""
POWER_LOSS_S = 30.0
"""How long a power loss lasts unless its `duration_s` says otherwise."""


class Agent:
    """Speaks for nodes `first_node .. first_node + count - 1` of rack `rack` of `group`."""

    def __init__(
        self,
        site: str,
        group: Group,
        rack: int,
        first_node: int,
        count: int,
        endpoint: Endpoint,
        interval_s: float,
        complaints: Complaints,
        link_log: logging.Logger,
        own_login: bool = False,
    ) -> None:
        self.site = site
        self.group = group
        self.rack_index = rack
        self.rack = group.racks[rack]
        self.first_node = first_node
        self.nodes = group.nodes[rack][first_node : first_node + count]
        self.whole_rack = count == len(group.nodes[rack])
        self.id = self.rack if self.whole_rack else self.nodes[0]
        self.interval_s = interval_s
        self.seq = 0
        self.published = 0
        self.powered = True
        self.assigned_at = -float("inf")
        self._node_index = {node: i for i, node in enumerate(self.nodes)}
        self._complaints = complaints
        self._topics = {kind: agent_topic(kind, site, self.rack, self.id) for kind in AgentTopic}
        self._core_session: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._power_task: asyncio.Task[None] | None = None
        if own_login:  # the broker knows this agent by its id, as `aidc acl` sets it up
            endpoint = dataclasses.replace(endpoint, username=self.id)
        self.link = Link(
            endpoint,
            f"aidc-{site}-{self.id}",
            subscriptions=[
                (self._topics[AgentTopic.ASSIGN], 1),
                (self._topics[AgentTopic.AGENTCMD], 1),
                (core_status_topic(site), 1),
            ],
            will=lambda session: aiomqtt.Will(
                self._topics[AgentTopic.DEATH], encode(Death(self.id, session)), qos=1
            ),
            on_connect=self._born,
            logger=link_log,
        )

    @property
    def devices(self) -> list[Devices]:
        """The device kinds of this agent's nodes."""
        return self.group.devices

    def birth(self, session: int) -> Birth:
        """Who this agent speaks for, with every device."""
        inventories = self.group.inventories[self.rack_index]
        return Birth(
            agent=self.id,
            rack=self.rack,
            session=session,
            time=time.time(),
            interval_s=self.interval_s,
            nodes=inventories[self.first_node : self.first_node + len(self.nodes)],
            software=SOFTWARE,
        )

    async def _born(self, session: int) -> None:
        await self.link.publish(self._topics[AgentTopic.BIRTH], encode(self.birth(session)), qos=1)
        self.seq = 0

    def telemetry(self) -> Telemetry:
        """The current samples of every device that reports."""
        blocks: dict[str, Any] = {device.name: self._block(device) for device in self.devices}
        self.seq += 1
        return Telemetry(self.id, self.link.session, self.seq, time.time(), self.nodes, **blocks)

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

    def publish_telemetry(self) -> None:
        """Publish this interval's telemetry, if powered and connected (QoS 0: a gap in `seq`
        tells the core what was lost)."""
        if not (self.powered and self.link.connected.is_set()):
            return
        with contextlib.suppress(LinkDown):
            self.link.send(self._topics[AgentTopic.TELEMETRY], encode(self.telemetry()))
            self.published += 1

    async def on_message(self, message: aiomqtt.Message) -> None:
        """Apply what the core sent; reject anything malformed with a logged reason."""
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = b""
        topic = message.topic.value
        try:
            kind = parse_topic(topic).kind
            if kind == TopicKind.ASSIGN:
                self.apply(codec.ASSIGNMENT.decode(payload))
            elif kind == TopicKind.AGENTCMD:
                await self.command(codec.AGENT_COMMAND.decode(payload))
            elif kind == TopicKind.STATUS:
                await self._core_status(codec.CORE_STATUS.decode(payload))
        except (MessageError, ValueError) as error:
            self._complaints.reject("malformed", f"agent {self.id} rejected {topic}: {error}")
        except LinkDown:
            raise  # the link reconnects
        except Exception:  # a bug must not silently take the agent off the air
            log.exception("agent %s could not handle a message on %s; carrying on", self.id, topic)

    async def _core_status(self, status: CoreStatus) -> None:
        """A core that comes online, or back to a broker, learns the fleet from births: send
        ours again (once per core connection)."""
        seen = (status.session, status.connection)
        if status.online and seen != self._core_session and self.link.session:
            self._core_session = seen
            await self._born(self.link.session)

    def apply(self, assignment: Assignment) -> None:
        """Load the devices named in an assignment; ValueError if it is not for these nodes."""
        if assignment.agent != self.id:
            raise ValueError(f"assignment for agent {assignment.agent!r}")
        if assignment.session != self.link.session:
            return  # meant for an earlier connection: the core will catch up with our birth
        try:
            nodes = np.array([self._node_index[n] for n in assignment.nodes], dtype=np.intp)
        except KeyError as error:
            raise ValueError(f"assignment names node {error.args[0]!r}, not one of ours") from None
        for device in self.devices:
            load = arrays(assignment, device.name)
            if load is not None:
                self._load(device, load, nodes)
        self.assigned_at = time.monotonic()

    def _load(self, device: Devices, load: np.ndarray, nodes: np.ndarray) -> None:
        spec = layout(device.load_block)
        index = load[spec.names[1]]
        if index.size and int(index.max()) >= device.per_node:
            raise ValueError(f"{device.name} load names device {int(index.max())} of a node")
        rows = (nodes[load["node"]] + self.first_node) * device.per_node + index
        target = device.load[self.rack_index]
        for name in spec.names[2:]:
            target[name][rows] = load[name]

    def expire(self, now: float) -> None:
        """Idle the devices if the core has not assigned anything for a while."""
        if now - self.assigned_at > ASSIGNMENT_TTL_INTERVALS * self.interval_s:
            self.group.idle(self.rack_index, self.first_node, len(self.nodes))
            self.assigned_at = float("inf")  # idle until the next assignment

    async def command(self, command: AgentCommand) -> None:
        """Carry out an agent command; ValueError (logged by the caller) if it cannot be."""
        if isinstance(command, Rebirth):
            await self._born(self.link.session)
        elif isinstance(command, Reboot):
            for name in command.nodes:
                self._reboot(self._node(name))
        elif isinstance(command, InjectFault):
            self._inject(command)
        elif isinstance(command, ClearFault):
            node = self._node(command.target)
            for device in self._fault_devices(command.kind):
                device.bank.clear(self.rack_index, device.rows(node), command.kind)

    def _node(self, node: str) -> int:
        try:
            return self.first_node + self._node_index[node]
        except KeyError:
            raise ValueError(f"node {node!r} is not one of agent {self.id}'s") from None

    def _reboot(self, node: int) -> None:
        for device in self.devices:
            device.bank.reset(self.rack_index, device.rows(node))

    def _inject(self, fault: InjectFault) -> None:
        node = self._node(fault.target)
        if fault.kind == "power_loss":
            duration = fault.params.get("duration_s", POWER_LOSS_S)
            if isinstance(duration, bool) or not isinstance(duration, int | float):
                raise ValueError(f"power_loss duration_s must be a number, not {duration!r}")
            if self._power_task is None or self._power_task.done():
                self._power_task = asyncio.create_task(self.power_loss(min(duration, 3600.0)))
            return
        for device in self._fault_devices(fault.kind):
            device.bank.inject(self.rack_index, device.rows(node), fault.kind, fault.params)

    def _fault_devices(self, kind: str | None) -> list[Devices]:
        if kind is None:
            return self.devices
        names = FAULT_DEVICES.get(kind, ())
        found = [device for device in self.devices if device.name in names]
        if not found:
            raise ValueError(f"agent {self.id} has no devices that can have a {kind} fault")
        return found

    async def power_loss(self, duration_s: float) -> None:
        """The nodes lose power: the connection dies uncleanly (the broker sends our will),
        then after `duration_s` they boot again, with reset devices, and re-birth."""
        self.powered = False
        await self.link.abort()
        await self.stop_link()
        await asyncio.sleep(duration_s)
        for node in range(self.first_node, self.first_node + len(self.nodes)):
            self._reboot(node)
        self.powered = True
        self.start_link()

    def start_link(self) -> None:
        """Connect and stay connected until `stop_link`."""
        self._task = asyncio.get_running_loop().create_task(self.link.run(self.on_message))

    async def stop_link(self) -> None:
        """Disconnect (cleanly, unless `link.abort` came first) and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shut_down(self) -> bool:
        """A clean shutdown: publish our death, then disconnect; whether the death went out."""
        published = False
        if self.powered and self.link.connected.is_set():
            with contextlib.suppress(LinkDown):
                death = Death(self.id, self.link.session, clean=True)
                await self.link.publish(self._topics[AgentTopic.DEATH], encode(death), qos=1)
                published = True
        await self.stop_link()
        return published
