"""The core service: the world on an MQTT broker. It ingests births, deaths and telemetry,
ticks, assigns load back to the agents, publishes what dashboards read, and answers commands."""

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import numpy as np
import numpy.typing as npt

from protocols import codec
from protocols.codec import encode, encode_json, is_json
from protocols.columns import Columns, GpuLoad, LpuLoad, NicLoad, PortLoad
from protocols.commands import (
    AgentCommand,
    OperatorCommand,
    Query,
    Rebirth,
    Reply,
    reply_destination,
)
from protocols.complaints import Complaints
from protocols.endpoint import Endpoint
from protocols.errors import MessageError
from protocols.limits import MIB
from protocols.link import Link, LinkDown
from protocols.messages import (
    CoreClock,
    CoreStatus,
    Death,
    Event,
    Events,
    FabricState,
    PoolStates,
    RackStates,
    Severity,
    Summary,
    Telemetry,
)
from protocols.queries import Answer, EventsPage, NodeDetail
from protocols.topics import (
    AgentTopic,
    StateView,
    Topic,
    TopicKind,
    agent_filter,
    agent_topic,
    command_topic,
    core_clock_topic,
    core_status_topic,
    events_topic,
    parse_topic,
    state_topic,
)
from sim import defaults
from sim.assignments import KEEPALIVE_S, Assigner
from sim.clock import Clock, RealClock
from sim.control import ControlPlane
from sim.fabric import Fabric
from sim.fleet_state import FleetState
from sim.journal import Journal, summary
from sim.pools import Pools, PoolSpec
from sim.traffic import Traffic, TrafficProfile
from sim.views import Pace, Views
from sim.world import TickReport, World

log = logging.getLogger("aidc.core")
REBIRTH_EVERY_S = 5.0
"""How often the core may ask one agent to publish its birth again."""
NODE_EVENTS = 20
"""A node's detail carries its latest events, up to this many."""

VERSION = "0.1.0"
NVLINK_BUSY_BPS = 1e11
"""NVLink traffic of a busy GPU each way: tensor-parallel all-reduces."""
RECENT_EVENTS = 1000
"""Events a `query what=events` can read back."""
BIRTHS_SETTLE_S = 5.0
"""Wall seconds without a new birth after which the fleet counts as arrived, and a pool still
short of room is warned about (before, its room may still be on its way)."""
CONTROL_WAIT_S = 10.0
"""How long a reconnected core waits for its command connection before it says it is online."""
INBOX_BYTES = 64 * MIB
"""The least telemetry the core's fleet connection holds unread before it sheds the oldest:
about 2,600 NVL72 racks' messages (19 KB each, and 6 KiB of MQTT 5 properties), 1.9 s of a
100k-GPU site's telemetry."""
INBOX_HOLD_S = 1.0
"""A bigger fleet's connection holds this many seconds of the telemetry its births promise
(about 260 MB at a million GPUs, where INBOX_BYTES is 0.25 s): a tick, a fan-out, a burst of
births or a garbage collection stalls reading for a fraction of a second. A sample held
longer, with the interval it waited for, is older than the 2 s age goal (issue 16)."""
SHED_WARNING_EVERY_S = 10.0
"""The core warns that it sheds telemetry at most this often (wall seconds), with the count."""


@dataclass(frozen=True)
class TickViews:
    """The summary, rack and pool views of a tick, as dashboards were sent them."""

    summary: Summary
    racks: RackStates
    pools: PoolStates


class CoreService:
    """One site's core: its world, its link to the broker, and the loop that ticks it."""

    def __init__(
        self,
        endpoint: Endpoint,
        site: str,
        *,
        seed: int = 0,
        tick_s: float = 1.0,
        clock: Clock | None = None,
        state_db: str | Path = ":memory:",
        pools: Sequence[PoolSpec] = defaults.POOLS,
        traffic: Mapping[str, TrafficProfile] = defaults.TRAFFIC,
        inbox_bytes: int = INBOX_BYTES,
    ) -> None:
        self.site = site
        self.tick_s = tick_s
        self.clock = clock or RealClock()
        self.fleet = FleetState()
        self.pools = Pools(self.fleet)
        for spec in pools:
            self.pools.add(spec)
        self._to_agents: list[tuple[str, AgentCommand]] = []
        self._rebirths_asked: dict[str, float] = {}
        """When each agent was last asked for its birth (monotonic seconds)."""
        self.control = ControlPlane(
            self.fleet,
            self.pools,
            Journal(state_db),
            lambda a, c: self._to_agents.append((a, c)),
            speed=self.clock.speed or 1.0,
        )
        rng = np.random.default_rng(seed)
        models = list(traffic)
        self.world = World(
            self.fleet, self.pools, self.control, Traffic(list(traffic.values()), rng), models, rng
        )
        self.views = Views(self.world)
        self.fabric = Fabric(self.fleet, self.pools)
        self.complaints = Complaints(log)
        self.session = int(time.time() * 1000)
        """Changes every start, so agents know a new core needs their births."""
        self.tick = 0
        self.events: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._pending_events: list[Event] = []
        self._said: set[str] = set()
        self._last_birth = time.monotonic()
        self._ingested = 0
        self._gpu_samples = 0
        self.gpu_samples_total = 0
        """GPU samples ingested since the start (the summary's `gpu_samples`)."""
        self._tick_ms = self._assign_ms = 0.0
        self.assigner = Assigner(self.fleet, round(KEEPALIVE_S / tick_s))
        self._last_report = TickReport(self.clock.now())
        self._last_fabric = FabricState(self.clock.now(), [])
        self.views_sent: TickViews | None = None
        """The latest tick's views (for the metrics exporter; replaced, never changed)."""
        self.commands: Counter[tuple[str, bool]] = Counter()
        """Operator commands answered since the start, by op and whether they were applied
        (queries are reads, not counted)."""
        status = core_status_topic(site)
        self.link = Link(
            endpoint,
            f"aidc-core-{site}",
            subscriptions=[
                (agent_filter(AgentTopic.BIRTH, site), 1),
                (agent_filter(AgentTopic.DEATH, site), 1),
                (agent_filter(AgentTopic.TELEMETRY, site), 0),
            ],
            will=lambda _: aiomqtt.Will(
                status, encode(CoreStatus(False, self.session)), qos=1, retain=True
            ),
            on_connect=self._online,
            persistent=True,
            inbox_bytes=inbox_bytes,
        )
        self._inbox_floor, self._inbox_sized_at = inbox_bytes, -1
        self._shed_seen: tuple[int, Counter[str]] = (0, Counter())
        """The telemetry shed, in all and by agent, when the core last warned of it."""
        self._shed_since, self._shed_warned_at = time.monotonic(), -float("inf")
        self.control_link = Link(
            endpoint,
            f"aidc-core-{site}-control",
            subscriptions=[(command_topic(site), 1)],
            persistent=True,
        )
        """Operator commands and their replies, on a connection of their own: a broker holds a
        bounded queue per connection (mosquitto drops QoS 1 messages beyond 1000 by default),
        and the fleet's births after a broker restart fill the main one's."""

    async def _online(self, connection: int) -> None:
        """Say the core is online once it hears commands again (or CONTROL_WAIT_S has
        passed), so an operator who waits for that status is heard."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONTROL_WAIT_S):
                await self.control_link.connected.wait()
        status = CoreStatus(
            True, self.session, self.clock.now(), self.clock.speed, VERSION, connection=connection
        )
        await self.link.publish(core_status_topic(self.site), encode(status), qos=1, retain=True)

    async def run(self) -> None:
        """Connect and tick until cancelled; then say the core is offline."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.control_link.run(self._on_message))
                await self.control_link.connected.wait()  # state only from a core that listens
                group.create_task(self.link.run(self._on_message))
                group.create_task(self._ticks())
        finally:
            await asyncio.shield(self._offline())

    async def _offline(self) -> None:
        """A clean stop: the retained status says offline (the will covers a crash)."""
        status = CoreStatus(False, self.session, self.clock.now(), self.clock.speed, VERSION)
        await self._send(core_status_topic(self.site), encode(status), qos=1, retain=True)

    async def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        topic = message.topic.value
        now = self.clock.now()
        try:
            parsed = parse_topic(topic)
            kind = parsed.kind
            if kind == TopicKind.TELEMETRY:
                telemetry = codec.TELEMETRY.decode(payload)
                if self._speaks_for_itself(topic, parsed, telemetry.agent):
                    await self._ingest(parsed.rack, telemetry, now)
            elif kind == TopicKind.BIRTH:
                birth = codec.BIRTH.decode(payload)
                if self._speaks_for_itself(topic, parsed, birth.gateway or birth.agent, birth.rack):
                    self.fleet.on_birth(birth, now)
                    self._last_birth = time.monotonic()
            elif kind == TopicKind.DEATH:
                death = codec.DEATH.decode(payload)
                if self._speaks_for_itself(topic, parsed, self._connection_of(death.agent)):
                    self._died(death)
            elif kind == TopicKind.CMD:
                await self._command(payload, now)
        except (MessageError, ValueError) as error:
            self.complaints.reject("malformed", f"{topic}: {error}")
        except Exception:  # a bug must not take the control plane down with it
            log.exception("could not handle a message on %s; carrying on", topic)

    async def _ingest(self, rack: str, telemetry: Telemetry, now: float) -> None:
        """Store a telemetry message, or count why not (and ask for a birth we may have
        missed)."""
        if problem := self.fleet.on_telemetry(telemetry, now):
            self.complaints.reject("telemetry", problem)
            if telemetry.agents:
                for agent in telemetry.agents:  # a gateway's racks are their own agents
                    await self._ask_rebirth(agent, agent, telemetry.agent, telemetry.session)
            else:
                await self._ask_rebirth(rack, telemetry.agent, telemetry.agent, telemetry.session)
        else:
            self._ingested += 1
            if telemetry.gpu is not None:
                self._gpu_samples += telemetry.gpu.rows
                self.gpu_samples_total += telemetry.gpu.rows

    def _connection_of(self, agent: str) -> str:
        """Who may speak for an agent on the wire: its gateway, if a birth named one."""
        view = self.fleet.agents.get(agent)
        return view.connection if view is not None else agent

    def _died(self, death: Death) -> None:
        """An agent's death, or a gateway's (every agent it spoke for); an unclean one is an
        error event."""
        died = self.fleet.on_death(death)
        if died and not death.clean:
            if death.agent in self.fleet.gateways:
                sentence = f"gateway {death.agent} died, and with it its {died:,} agents"
            else:
                sentence = f"agent {death.agent} died"
            self._event("error", f"agent/{death.agent}", "death", sentence)

    def _speaks_for_itself(
        self, topic: str, parsed: Topic, agent: str, rack: str | None = None
    ) -> bool:
        """Whether a message speaks for the agent (and rack) its topic names; one that speaks
        for another is counted and dropped."""
        if agent == parsed.agent and rack in (None, parsed.rack):
            return True
        self.complaints.reject(
            "identity", f"{topic}: a message of agent {agent} on another agent's topic"
        )
        return False

    async def _command(self, payload: bytes | bytearray, now: float) -> None:
        """Answer a command in its own encoding; a malformed one gets a reply if it has an id."""
        as_json = is_json(payload)
        try:
            command: OperatorCommand = codec.COMMAND.decode(payload)
        except MessageError as error:
            self.complaints.reject("command", str(error))
            await self._refuse(payload, str(error), as_json)
            return
        try:
            reply = self._answer(command, now)
        except Exception:  # a bug: the operator hears of it, and the core carries on
            log.exception("command %s (%s) failed", command.id, summary(command))
            reply = Reply(
                command.id, ok=False, error="the core failed to carry it out (see its log)"
            )
        if not isinstance(command, Query):
            self.commands[str(command.__struct_config__.tag), reply.ok] += 1
        try:
            topic = reply_destination(self.site, command)
        except ValueError as error:
            self.complaints.reject("command", str(error))
            return
        await self._reply(topic, reply, as_json)
        await self._flush_agent_commands()

    async def _ask_rebirth(self, rack: str, agent: str, connection: str, session: int) -> None:
        """Telemetry of an agent whose birth we missed (it came while we were away from the
        broker) gets the agent asked, through its connection, to publish its birth again, as
        Sparkplug does; at most once per REBIRTH_EVERY_S per agent."""
        known = self.fleet.agents.get(agent)
        if known is not None and session <= known.session:
            return  # an old session's straggler, or a problem a birth would not fix
        last = self._rebirths_asked.get(agent, -REBIRTH_EVERY_S)
        if time.monotonic() - last < REBIRTH_EVERY_S:
            return
        self._rebirths_asked[agent] = time.monotonic()
        command = Rebirth(id=f"rebirth-{agent}-{self.session}-{session}")
        topic = agent_topic(AgentTopic.AGENTCMD, self.site, rack, connection)
        await self._send(topic, encode(command), qos=1)

    async def _refuse(self, payload: bytes | bytearray, error: str, as_json: bool) -> None:
        """Tell the sender of a malformed command why, if its id and reply topic can be read."""
        try:
            address = codec.ADDRESSED.decode(payload)
            topic = reply_destination(self.site, address)
        except (MessageError, ValueError):
            return  # nobody to tell: it is counted and logged
        reply = Reply(address.id, ok=False, error=error)
        await self._reply(topic, reply, as_json)

    def _answer(self, command: OperatorCommand, now: float) -> Reply:
        """Read for a query; apply anything else through the control plane."""
        if isinstance(command, Query):
            try:
                answer = msgspec.to_builtins(self._read(command, now))
                return Reply(command.id, ok=True, result=answer)
            except ValueError as error:
                return Reply(command.id, ok=False, error=str(error))
        reply = self.control.handle(command, now)
        if reply.ok:
            self._event("info", "control", "command", summary(command), command.id)
        return reply

    def _read(self, query: Query, now: float) -> Answer:
        """What a query asks for: the latest views, recent events, or the views' own reads."""
        page = slice(query.offset, query.offset + query.limit)
        if query.what == "events":
            events = [e for e in reversed(self.events) if query.filter in e.subject]
            return EventsPage(total=len(events), events=events[page])
        if query.what == "pools":
            return self.views.pools(self._last_report)
        if query.what == "fabric":
            return self._last_fabric
        answer = self.views.query(query, now)
        if isinstance(answer, NodeDetail):
            mine = [e for e in reversed(self.events) if is_about(e.subject, answer.node)]
            return msgspec.structs.replace(answer, events=mine[:NODE_EVENTS])
        return answer

    async def _flush_agent_commands(self) -> None:
        pending, self._to_agents = self._to_agents, []
        for agent, command in pending:
            view = self.fleet.agents.get(agent)
            if view is not None:
                topic = agent_topic(AgentTopic.AGENTCMD, self.site, view.rack, view.connection)
                await self._send(topic, encode(command), qos=1)

    async def _send(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        via: Link | None = None,
    ) -> None:
        # the broker is away: state goes out next tick, and a command's sender resends by id
        with contextlib.suppress(LinkDown):
            await (via or self.link).publish(topic, payload, qos=qos, retain=retain)

    async def _reply(self, topic: str, reply: Reply, as_json: bool) -> None:
        """A reply in its command's encoding, on the command connection."""
        payload = encode_json(reply) if as_json else encode(reply)
        await self._send(topic, payload, qos=1, via=self.control_link)

    def _event(
        self, severity: Severity, subject: str, kind: str, message: str, command: str | None = None
    ) -> None:
        event = Event(self.clock.now(), severity, subject, kind, message, command)
        self.events.append(event)
        self._pending_events.append(event)

    async def _ticks(self) -> None:
        # A tick is `tick_s` real seconds, `tick_s * speed` simulated; a manual clock (speed
        # 0) ticks every `tick_s` simulated seconds as a scenario advances it.
        simulated_tick = self.tick_s * (self.clock.speed or 1.0)
        last, real = self.clock.now(), time.monotonic()
        while True:
            now = await self.clock.sleep_until_next_tick(simulated_tick)
            started = time.perf_counter()
            report = self.world.tick(now, max(now - last, 1e-3))
            self._tick_ms = (time.perf_counter() - started) * 1e3
            self._last_report = report
            self.tick += 1
            previous, last = last, now
            self._record(report)
            self._size_inbox()
            elapsed, real = time.monotonic() - real, time.monotonic()
            await self._publish(report, self._pace(elapsed), now - previous)

    def _size_inbox(self) -> None:
        """Bound the fleet connection's unread telemetry by INBOX_HOLD_S of what the living
        agents' births promise (samples more often than a tick's wall seconds counted at one a
        tick), once they have changed."""
        if self._inbox_sized_at == self.fleet.agent_changes:
            return
        self._inbox_sized_at = self.fleet.agent_changes
        promised = self.fleet.telemetry_bytes_per_s(self.tick_s)
        self.link.inbox.max_bytes = max(self._inbox_floor, int(INBOX_HOLD_S * promised))

    def _pace(self, elapsed_s: float) -> Pace:
        """What came in since the last tick, per second, and how long the work took."""
        elapsed_s = max(elapsed_s, 1e-3)
        pace = Pace(
            time.time(),
            self._ingested / elapsed_s,
            self._gpu_samples / elapsed_s,
            self.gpu_samples_total,
            self.telemetry_shed_total,
            self._tick_ms,
            self._assign_ms,
        )
        self._ingested = self._gpu_samples = 0
        return pace

    @property
    def telemetry_shed_total(self) -> int:
        """Telemetry messages the core shed unread since it started (its queue was full)."""
        return self.link.inbox.shed_kinds[TopicKind.TELEMETRY]

    def _warn_of_shedding(self) -> None:
        """A warning event (and log line) when the core has shed telemetry since it last said
        so, at most every SHED_WARNING_EVERY_S: how many messages, of how many agents."""
        now, total = time.monotonic(), self.telemetry_shed_total
        seen_total, seen = self._shed_seen
        if total == seen_total:
            self._shed_since = now  # nothing new: a later warning counts from here
            return
        if now - self._shed_warned_at < SHED_WARNING_EVERY_S:
            return
        # by agent, the fleet connection counts only telemetry: nothing else it hears is shed
        shed = self.link.shed
        agents = sum(1 for agent, count in shed.items() if count > seen[agent])
        messages = total - seen_total
        sentence = (
            f"the core shed {messages:,} telemetry {_plural(messages, 'message')} of "
            f"{agents:,} {_plural(agents, 'agent')} in the last {now - self._shed_since:.1f} s: "
            "its ingest is behind"
        )
        log.warning("%s", sentence)
        self._event("warning", "core", "telemetry-shed", sentence)
        self._shed_seen, self._shed_since, self._shed_warned_at = (total, Counter(shed)), now, now

    def _record(self, report: TickReport) -> None:
        self._warn_of_shedding()
        for finding in report.findings:
            self._event(finding.severity, finding.subject, finding.kind, finding.message)
        for sentence in report.happened:
            self._event("info", "control", "control", sentence)
        for pool, sentence in report.autoscaled:
            self._event("info", f"pool/{pool}", "autoscale", sentence)
        if not self.fleet.agents or time.monotonic() - self._last_birth < BIRTHS_SETTLE_S:
            return  # room still arrives with the fleet's births (none has come yet)
        for sentence in report.unplaced:
            if sentence not in self._said:  # a pool that cannot grow says so once
                self._said.add(sentence)
                self._event("warning", "control", "control", sentence)

    def build_views(self, report: TickReport, pace: Pace) -> TickViews:
        """The summary, rack and pool views of a tick, kept as `views_sent`."""
        summary = self.views.summary(
            report, self.tick, self.clock.speed, pace, self.complaints.total
        )
        self.views_sent = TickViews(
            summary, self.views.racks(report.time), self.views.pools(report)
        )
        return self.views_sent

    async def _publish(self, report: TickReport, pace: Pace, dt: float) -> None:
        # Every view and load is computed before the first await: telemetry that arrives
        # meanwhile (a fleet on a manual clock steps as soon as it hears the clock) belongs
        # to the next tick. The loads are sent after the clock, so a fleet always steps a
        # tick with the loads of the tick before, whatever the timing.
        views = self.build_views(report, pace)
        self._last_fabric = self.fabric.view(report.time)
        self._assign(report.time, dt)
        clock = CoreClock(report.time, self.clock.speed, self.tick)
        await self._send(core_clock_topic(self.site), encode(clock), retain=True)
        await self._send(state_topic(self.site, StateView.SUMMARY), encode(views.summary))
        await self._send(state_topic(self.site, StateView.RACKS), encode(views.racks))
        await self._send(state_topic(self.site, StateView.POOLS), encode(views.pools))
        if self._pending_events:
            events, self._pending_events = self._pending_events, []
            await self._send(events_topic(self.site), encode(Events(events)), qos=1)
        await self._send(state_topic(self.site, StateView.FABRIC), encode(self._last_fabric))
        await self._flush_agent_commands()

    def _assign(self, now: float, dt: float) -> None:
        """Send every agent the load of its GPUs, NICs, switch ports and LPU chips."""
        gpu = self.world.gpu_load()
        net = self.fabric.load(self.world.result.tokens, dt)
        self.views.nic_gbps = net.nic_gbps
        loads: dict[str, tuple[type[Columns], dict[str, npt.NDArray[Any]]]] = {
            "gpu": (GpuLoad, {**gpu, "nvlink_bytes_per_s": gpu["busy"] * NVLINK_BUSY_BPS}),
            "nic": (
                NicLoad,
                {
                    "tx_gbps": net.nic_gbps,
                    "rx_gbps": net.nic_gbps,
                    "congestion": net.nic_congestion,
                },
            ),
            "port": (PortLoad, {"busy": net.port_busy, "congestion": net.port_congestion}),
            "lpu": (LpuLoad, self.world.lpu_load(dt)),
        }
        started = time.perf_counter()
        for chunk, assignment in self.assigner.messages(self.tick, now, loads):
            topic = agent_topic(AgentTopic.ASSIGN, self.site, chunk.rack, chunk.connection)
            # QoS 0 without waiting, like telemetry: a lost one heals at the next keep-alive.
            with contextlib.suppress(LinkDown):
                self.link.send(topic, encode(assignment))
        self._assign_ms = (time.perf_counter() - started) * 1e3


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def is_about(subject: str, node: str) -> bool:
    """Whether an event's subject (`r001-n02`, `gpu/r001-n02/3`, `nic/r001-n02/0`) names the
    node: as a whole segment, so r001-n01 is not about r001-n010."""
    return node in subject.split("/")
