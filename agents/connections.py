"""The MQTT connections a fleet speaks through: one per agent (a rack, or a node), or a
gateway that speaks for many racks at once, as Sparkplug B's edge node does for its devices.

Either way each agent keeps its own birth, session and seq; a connection's will is the death
of every agent it speaks for. A gateway sends its racks' telemetry in batches and takes its
racks' loads in one assignment message per chunk of racks the core chose."""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt

from agents.agent import Agent, power_loss_s
from agents.batch import load_devices, pack_racks
from agents.clock import FleetClock
from agents.groups import Group
from protocols import codec
from protocols.codec import arrays, encode
from protocols.columns import MAX_ROWS, layout
from protocols.commands import AgentCommand, ClearFault, Rebirth, Reboot
from protocols.complaints import Complaints
from protocols.endpoint import Endpoint
from protocols.errors import MessageError
from protocols.limits import KIB
from protocols.link import Link, LinkDown
from protocols.messages import Assignment, CoreStatus, Death, Telemetry
from protocols.topics import (
    WILDCARD,
    AgentTopic,
    TopicKind,
    agent_filter,
    agent_topic,
    core_clock_topic,
    core_status_topic,
    parse_topic,
)

log = logging.getLogger("aidc.agents")

BATCH_BYTES = 256 * KIB
"""The most bytes of column data a gateway puts in one telemetry message (13 NVL72 racks).
Brokers' default limits: EMQX 1 MB (`mqtt.max_packet_size`), AWS IoT Core 128 KB, mosquitto
none; 256 KiB stays well under EMQX's. The cost per GPU sample stops falling long before it
(BENCHMARKS.md, "Gateway batches")."""
BIRTHS_AT_ONCE = 64
"""Births a gateway has in flight at once when it (re)connects."""
Publisher = Callable[[], None]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every connection of a fleet shares."""

    site: str
    endpoint: Endpoint
    complaints: Complaints
    clock: FleetClock
    link_log: logging.Logger
    own_login: bool = False
    """Log in with the connection's id as user name, as `aidc acl` sets the broker up."""


class Connection:
    """One MQTT connection, speaking for `agents` under the id `id` (its topics' agent level)."""

    def __init__(
        self, settings: Settings, id: str, agents: list[Agent], *, hears_clock: bool
    ) -> None:
        self.id = id
        self.agents = agents
        self.settings = settings
        self.published = 0
        """Telemetry messages sent."""
        self._core_session: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        endpoint = settings.endpoint
        if settings.own_login:
            endpoint = dataclasses.replace(endpoint, username=id)
        subscriptions = [(core_status_topic(settings.site), 1)]
        if hears_clock:
            subscriptions.append((core_clock_topic(settings.site), 0))
        self.link = Link(
            endpoint,
            f"aidc-{settings.site}-{id}",
            subscriptions=[*self._subscriptions(), *subscriptions],
            will=lambda session: aiomqtt.Will(
                self._own_topic(AgentTopic.DEATH), encode(Death(self.id, session)), qos=1
            ),
            on_connect=self._born,
            logger=settings.link_log,
        )

    def _subscriptions(self) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _own_topic(self, kind: AgentTopic) -> str:
        raise NotImplementedError

    def topic(self, kind: AgentTopic, agent: Agent) -> str:
        """The topic of one of our agents' messages of `kind`."""
        return agent_topic(kind, self.settings.site, agent.rack, self.id)

    @property
    def gateway(self) -> str | None:
        """The id births name as their gateway, if this connection is one."""
        return None

    def publishers(self) -> list[Publisher]:
        """What to call once per interval, each at its own moment, to send the telemetry."""
        raise NotImplementedError

    def apply(self, assignment: Assignment) -> None:
        """Load our devices as an assignment says (ValueError if it is not for us)."""
        raise NotImplementedError

    async def _born(self, session: int) -> None:
        """Every agent's birth (after every connect): a few at a time."""
        for start in range(0, len(self.agents), BIRTHS_AT_ONCE):
            batch = self.agents[start : start + BIRTHS_AT_ONCE]
            await asyncio.gather(*(self.publish_birth(agent) for agent in batch))
        for agent in self.agents:
            agent.seq = 0

    async def publish_birth(self, agent: Agent) -> None:
        """One agent's birth, for the current session."""
        birth = agent.birth(self.link.session, self.gateway)
        await self.link.publish(self.topic(AgentTopic.BIRTH, agent), encode(birth), qos=1)

    def _send(self, topic: str, message: Telemetry) -> None:
        with contextlib.suppress(LinkDown):
            self.link.send(topic, encode(message))
            self.published += 1

    async def on_message(self, message: aiomqtt.Message) -> None:
        """Apply what the core sent; reject anything malformed with a logged reason."""
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = b""
        topic = message.topic.value
        try:
            parsed = parse_topic(topic)
            if parsed.kind == TopicKind.ASSIGN:
                assignment = codec.ASSIGNMENT.decode(payload)
                if assignment.agent != self.id:
                    raise ValueError(f"assignment for agent {assignment.agent!r}")
                if assignment.session == self.link.session:  # else: an earlier connection's
                    self.apply(assignment)
            elif parsed.kind == TopicKind.AGENTCMD:
                await self.command(self._agent_of(parsed.rack), codec.AGENT_COMMAND.decode(payload))
            elif parsed.kind == TopicKind.STATUS:
                await self._core_status(codec.CORE_STATUS.decode(payload))
            elif parsed.kind == TopicKind.CLOCK:
                clock = codec.CORE_CLOCK.decode(payload)
                self.settings.clock.heard(clock.time, clock.speed, time.monotonic())
        except (MessageError, ValueError) as error:
            self.settings.complaints.reject(
                "malformed", f"agent {self.id} rejected {topic}: {error}"
            )
        except LinkDown:
            raise  # the link reconnects
        except Exception:  # a bug must not silently take the agent off the air
            log.exception("agent %s could not handle a message on %s; carrying on", self.id, topic)

    def _agent_of(self, rack: str) -> Agent:
        raise NotImplementedError

    async def _core_status(self, status: CoreStatus) -> None:
        """A core that comes online, or back to a broker, learns the fleet from births: send
        ours again (once per core connection). One that goes offline stops our clock."""
        if not status.online:
            self.settings.clock.forget()
            return
        seen = (status.session, status.connection)
        if seen != self._core_session and self.link.session:
            self._core_session = seen
            await self._born(self.link.session)

    async def command(self, agent: Agent, command: AgentCommand) -> None:
        """Carry out an agent command; ValueError (logged by the caller) if it cannot be."""
        if isinstance(command, Rebirth):
            await self.publish_birth(agent)
        elif isinstance(command, Reboot):
            agent.reboot(command.nodes)
        elif isinstance(command, ClearFault):
            agent.clear(command)
        elif command.kind == "power_loss":
            agent.check_node(command.target)
            self._lose_power(agent, power_loss_s(command))
        else:
            agent.inject(command)

    def _lose_power(self, agent: Agent, duration_s: float) -> None:
        if agent.powered:
            task = asyncio.create_task(self.power_loss(agent, duration_s))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def power_loss(self, agent: Agent, duration_s: float) -> None:
        """The agent's nodes lose power for `duration_s`, then boot with reset devices."""
        raise NotImplementedError

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

    async def shut_down(self) -> int:
        """A clean shutdown: publish the death, then disconnect; how many agents it covered."""
        for power_loss in list(self._tasks):
            power_loss.cancel()
        covered = 0
        if self.link.connected.is_set():
            with contextlib.suppress(LinkDown):
                covered = await self._publish_deaths()
        await self.stop_link()
        return covered

    async def _publish_deaths(self) -> int:
        raise NotImplementedError


class AgentConnection(Connection):
    """The connection of one agent: its own birth, will, telemetry and assignments."""

    def __init__(self, settings: Settings, agent: Agent, *, hears_clock: bool) -> None:
        self.agent = agent
        super().__init__(settings, agent.id, [agent], hears_clock=hears_clock)

    def _subscriptions(self) -> list[tuple[str, int]]:
        return [(self._own_topic(AgentTopic.ASSIGN), 1), (self._own_topic(AgentTopic.AGENTCMD), 1)]

    def _own_topic(self, kind: AgentTopic) -> str:
        return self.topic(kind, self.agent)

    def _agent_of(self, rack: str) -> Agent:
        return self.agent

    def publishers(self) -> list[Publisher]:
        return [self.publish_telemetry]

    def publish_telemetry(self) -> None:
        """This interval's telemetry, if powered and connected (QoS 0: a gap in `seq` tells
        the core what was lost)."""
        if self.agent.powered and self.link.connected.is_set():
            message = self.agent.telemetry(self.link.session, self.settings.clock.sim_time)
            self._send(self._own_topic(AgentTopic.TELEMETRY), message)

    def apply(self, assignment: Assignment) -> None:
        self.agent.apply(assignment)

    async def power_loss(self, agent: Agent, duration_s: float) -> None:
        """The connection dies uncleanly (the broker sends our will), then after
        `duration_s` the nodes boot again, with reset devices, and re-birth."""
        agent.powered = False
        await self.link.abort()
        await self.stop_link()
        await asyncio.sleep(duration_s)
        agent.reboot_all()
        agent.powered = True
        self.start_link()

    async def _publish_deaths(self) -> int:
        if not self.agent.powered:
            return 0
        death = Death(self.id, self.link.session, clean=True)
        await self.link.publish(self._own_topic(AgentTopic.DEATH), encode(death), qos=1)
        return 1


def first_nodes(agents: Sequence[Agent]) -> npt.NDArray[np.intp]:
    """Where each agent's nodes begin when their nodes are numbered agent after agent."""
    counts = [len(agent.nodes) for agent in agents]
    return np.cumsum([0, *counts[:-1]], dtype=np.intp)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Racks of one group that travel in one telemetry message."""

    group: Group
    racks: slice
    agents: list[Agent]
    first_nodes: npt.NDArray[np.intp]
    """Where each rack's nodes begin in the message's node numbering."""


@dataclasses.dataclass(frozen=True)
class Listing:
    """Where the agents an assignment lists keep their devices, by node of the message."""

    agents: list[str]
    first_nodes: npt.NDArray[np.intp]
    group: npt.NDArray[np.intp]
    rack: npt.NDArray[np.intp]
    nodes: int


class Gateway(Connection):
    """One connection for many racks: its will is a death for all of them; telemetry goes in
    batches of BATCH_BYTES, and the core's assignments list the racks they load."""

    def __init__(
        self, settings: Settings, id: str, agents: list[Agent], *, hears_clock: bool
    ) -> None:
        if any(not agent.whole_rack for agent in agents):
            raise ValueError("a gateway speaks for whole racks")
        super().__init__(settings, id, agents, hears_clock=hears_clock)
        self._by_id = {agent.id: agent for agent in agents}
        self._groups: list[Group] = []
        for agent in agents:
            if agent.group not in self._groups:
                self._groups.append(agent.group)
        self.batches = [b for group in self._groups for b in self._batches(group)]
        self._seq = 0
        self._listings: dict[str, Listing] = {}

    def _subscriptions(self) -> list[tuple[str, int]]:
        site = self.settings.site
        return [
            (agent_filter(AgentTopic.ASSIGN, site, self.id, self.id), 1),
            (agent_filter(AgentTopic.AGENTCMD, site, WILDCARD, self.id), 1),
        ]

    def _own_topic(self, kind: AgentTopic) -> str:
        return agent_topic(kind, self.settings.site, self.id, self.id)

    @property
    def gateway(self) -> str | None:
        return self.id

    def _agent_of(self, rack: str) -> Agent:
        try:
            return self._by_id[rack]
        except KeyError:
            raise ValueError(f"rack {rack!r} is not one gateway {self.id} speaks for") from None

    def _batches(self, group: Group) -> list[Batch]:
        """The group's racks of this gateway in runs that fit BATCH_BYTES and MAX_ROWS."""
        mine = [a for a in self.agents if a.group is group]
        rack_bytes = sum(
            layout(d.block).row_bytes * d.per_node * len(group.nodes[0]) for d in group.devices
        )
        rack_rows = max(d.per_node * len(group.nodes[0]) for d in group.devices)
        per_batch = max(1, min(BATCH_BYTES // max(rack_bytes, 1), MAX_ROWS // max(rack_rows, 1)))
        batches = []
        for start in range(0, len(mine), per_batch):
            agents = mine[start : start + per_batch]
            first, last = agents[0].rack_index, agents[-1].rack_index
            if last - first + 1 != len(agents):
                raise ValueError("a gateway's racks of a group must be the group's, in order")
            batches.append(Batch(group, slice(first, last + 1), agents, first_nodes(agents)))
        return batches

    def publishers(self) -> list[Publisher]:
        return [functools.partial(self.publish_batch, batch) for batch in self.batches]

    def publish_batch(self, batch: Batch) -> None:
        """One batch's telemetry, if connected."""
        if self.link.connected.is_set() and (message := self.telemetry(batch)):
            self._send(self._own_topic(AgentTopic.TELEMETRY), message)

    def telemetry(self, batch: Batch) -> Telemetry | None:
        """The next telemetry message of a batch's racks that have power (None if none has)."""
        racks: slice | npt.NDArray[np.intp] = batch.racks
        agents, starts = batch.agents, batch.first_nodes
        if not all(agent.powered for agent in agents):
            agents = [agent for agent in batch.agents if agent.powered]
            if not agents:
                return None
            starts = first_nodes(agents)
            racks = np.array([a.rack_index for a in agents], dtype=np.intp)
        blocks: dict[str, Any] = {
            device.name: pack_racks(device, racks, starts) for device in batch.group.devices
        }
        for agent in agents:
            agent.seq += 1
            agent.published += 1
        self._seq += 1
        return Telemetry(
            self.id,
            self.link.session,
            self._seq,
            time.time(),
            [],
            **blocks,
            agents=[a.id for a in agents],
            seqs=[a.seq for a in agents],
            sim_time=self.settings.clock.sim_time,
        )

    def apply(self, assignment: Assignment) -> None:
        """Load the devices of the racks an assignment lists."""
        listing = self._listing(assignment.agents)
        for group_index, group in enumerate(self._groups):
            for device in group.devices:
                load = arrays(assignment, device.name, listing.nodes)
                if load is None or not load["node"].size:
                    continue
                node = load["node"].astype(np.intp)
                agent = np.searchsorted(listing.first_nodes, node, side="right") - 1
                rows = np.flatnonzero(listing.group[agent] == group_index)
                if rows.size:
                    local = node[rows] - listing.first_nodes[agent[rows]]
                    load_devices(device, load, listing.rack[agent[rows]], local, rows)
        now = time.monotonic()
        for name in assignment.agents:
            self._by_id[name].assigned_at = now

    def _listing(self, names: Sequence[str]) -> Listing:
        """Where the listed agents' nodes are; cached, as the core lists the same racks in the
        same chunks tick after tick. ValueError if one is not ours."""
        if not names:
            return Listing([], np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.intp), 0)
        cached = self._listings.get(names[0])
        if cached is not None and cached.agents == names:
            return cached
        try:
            agents = [self._by_id[name] for name in names]
        except KeyError as error:
            raise ValueError(f"assignment names agent {error.args[0]!r}, not one of ours") from None
        listing = Listing(
            list(names),
            first_nodes(agents),
            np.array([self._groups.index(a.group) for a in agents], dtype=np.intp),
            np.array([a.rack_index for a in agents], dtype=np.intp),
            sum(len(a.nodes) for a in agents),
        )
        self._listings[names[0]] = listing
        return listing

    async def power_loss(self, agent: Agent, duration_s: float) -> None:
        """The rack loses power but the gateway stays up: it says the rack died, sends
        nothing of it for `duration_s`, then boots it with reset devices and a birth."""
        agent.powered = False
        death = Death(agent.id, self.link.session)
        with contextlib.suppress(LinkDown):
            await self.link.publish(self.topic(AgentTopic.DEATH, agent), encode(death), qos=1)
        await asyncio.sleep(duration_s)
        agent.reboot_all()
        agent.powered = True
        agent.seq = 0
        with contextlib.suppress(LinkDown):
            await self.publish_birth(agent)

    async def _publish_deaths(self) -> int:
        death = Death(self.id, self.link.session, clean=True)
        await self.link.publish(self._own_topic(AgentTopic.DEATH), encode(death), qos=1)
        return len(self.agents)
