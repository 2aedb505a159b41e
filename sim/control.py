"""The control plane: node states, operator commands applied once each and journalled, and
drains that finish, fail over or give up by their deadline."""

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import numpy.typing as npt

from protocols.commands import (
    AgentCommand,
    Autoscale,
    ClearFault,
    Cordon,
    Drain,
    InjectFault,
    OperatorCommand,
    Query,
    Reboot,
    Reply,
    Route,
    Scale,
    Uncordon,
)
from protocols.errors import AidcError
from protocols.faults import DEVICE_NOUNS, DEVICE_PARAMS, fault_problem
from protocols.messages import NodeState
from sim.fleet_state import NODE_KINDS, FleetState
from sim.journal import (
    AutoscalerSettings,
    Change,
    IdConflict,
    Journal,
    NodeIntent,
    NodeReleased,
    ReplicaTarget,
    RouteWeights,
)
from sim.liveness import mark_lost_and_failed
from sim.pools import DRAINING, READY, WARMING, Pools

NODE_STATES: tuple[NodeState, ...] = ("ready", "cordoned", "draining", "drained", "lost", "failed")
STATE_INDEX = {name: i for i, name in enumerate(NODE_STATES)}

SendToAgent = Callable[[str, AgentCommand], None]
"""Delivers an agent command to the agent that speaks for a node."""


def reporting(
    present: npt.NDArray[np.bool_], node: npt.NDArray[np.integer], states: npt.NDArray[np.integer]
) -> npt.NDArray[np.bool_]:
    """Which devices' latest samples are current, from their `present` and `node` columns and
    every node's state: present, on a node that is not lost (a silent node's samples are its
    last ones)."""
    live: npt.NDArray[np.bool_] = present & (states[node] != STATE_INDEX["lost"])
    return live


class _Schedulable(Mapping[str, npt.NDArray[np.bool_]]):
    """Schedulable devices by kind, computed on first access."""

    def __init__(self, control: "ControlPlane", now: float) -> None:
        self._control, self._now = control, now
        self._ready: npt.NDArray[np.bool_] | None = None
        self._masks: dict[str, npt.NDArray[np.bool_]] = {}

    def __getitem__(self, kind: str) -> npt.NDArray[np.bool_]:
        if kind not in self._masks:
            if self._ready is None:
                self._ready = self._control.node_states(self._now) == STATE_INDEX["ready"]
            table = self._control.fleet.devices[kind].table
            self._masks[kind] = table["present"] & self._ready[table["node"]]
        return self._masks[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._control.fleet.devices)

    def __len__(self) -> int:
        return len(self._control.fleet.devices)


class CommandError(AidcError, ValueError):
    """A command that cannot be carried out; `str()` is the reply's error sentence."""


class ControlPlane:
    """Desired state (from the journal), the nodes' actual state, and the commands that move
    one toward the other."""

    def __init__(
        self,
        fleet: FleetState,
        pools: Pools,
        journal: Journal,
        send_to_agent: SendToAgent,
        speed: float = 1.0,
    ) -> None:
        self.fleet = fleet
        self.pools = pools
        self.journal = journal
        self.send_to_agent = send_to_agent
        self.speed = speed
        """Simulated seconds per real second: agents report in real time."""
        self.lost = 0.0
        """Requests a drain could not re-route (no other ready replica)."""
        desired = journal.desired()
        self.intents: dict[str, NodeIntent] = dict(desired.nodes)
        self.routes: dict[str, dict[str, float]] = dict(desired.routes)
        self.autoscalers: dict[str, AutoscalerSettings] = dict(desired.autoscalers)
        for pool, replicas in desired.replicas.items():
            if pool in pools.pools:
                pools.pools[pool].desired = replicas

    # -- state -------------------------------------------------------------------------------

    def intended_states(self) -> npt.NDArray[np.uint8]:
        """Every node's state as commands and the health policy set it (ready, cordoned,
        draining or drained), by node row: what its telemetry shows left out."""
        nodes = self.fleet.nodes
        states = np.zeros(len(nodes), np.uint8)
        for node, intent in self.intents.items():
            row = nodes.rows.get(node)
            if row is not None:
                states[row] = STATE_INDEX[intent.state]
        return states

    def node_states(self, now: float) -> npt.NDArray[np.uint8]:
        """Every node's state (an index into NODE_STATES), by node row."""
        nodes = self.fleet.nodes
        states = self.intended_states()
        gpus = self.fleet.devices["gpu"].table
        lost, failed = STATE_INDEX["lost"], STATE_INDEX["failed"]
        mark_lost_and_failed(states, nodes, gpus, now, self.speed, lost, failed)
        return states

    def schedulable(self, now: float) -> Mapping[str, npt.NDArray[np.bool_]]:
        """Devices a new replica may use: present, on a ready node (worked out for a kind
        only when placement asks for it)."""
        return _Schedulable(self, now)

    # -- commands ----------------------------------------------------------------------------

    def handle(self, command: OperatorCommand, now: float) -> Reply:
        """Apply a command once: a resent id gets its first reply again, and changes nothing."""
        try:
            earlier = self.journal.reply_for(command)
        except IdConflict as conflict:
            return Reply(command.id, ok=False, error=str(conflict))
        if earlier is not None:
            return earlier
        if isinstance(command, Query):
            return Reply(command.id, ok=False, error="query is answered by the core service")
        try:
            result, changes = self._apply(command, now)
            reply = Reply(command.id, ok=True, result=result)
        except CommandError as error:
            reply, changes = Reply(command.id, ok=False, error=str(error)), []
        self.journal.commit(command, reply, now, changes)
        return reply

    def _apply(
        self, command: OperatorCommand, now: float
    ) -> tuple[dict[str, object], list[Change]]:
        if isinstance(command, Cordon | Uncordon | Drain):
            nodes = self._known_nodes(command.nodes)
            if not isinstance(command, Uncordon):
                self._refuse_switches(command, nodes)
            if isinstance(command, Drain):
                changes = self._drain(command, nodes, now)
            elif isinstance(command, Cordon):
                changes = [
                    NodeIntent(n, "cordoned", now, command.id, command.reason)
                    for n in nodes
                    if n not in self.intents
                ]
            else:
                changes = [NodeReleased(n) for n in nodes if n in self.intents]
            self._remember(changes)
            states = self.node_states(now)
            return {
                "nodes": {n: NODE_STATES[states[self.fleet.nodes.rows[n]]] for n in nodes}
            }, changes
        if isinstance(command, Scale):
            return self._scale(command, now)
        if isinstance(command, Route):
            return self._route(command)
        if isinstance(command, Autoscale):
            self._pool(command.pool)
            settings = AutoscalerSettings.of(command)
            self.autoscalers[command.pool] = settings
            return {"pool": command.pool, "autoscale": command.enabled}, [settings]
        if isinstance(command, InjectFault | ClearFault):
            self._check_fault(command)
            self._forward(command.target, command)
            return {"sent_to": self._agent_of(command.target)}, []
        if isinstance(command, Reboot):
            for node in self._known_nodes(command.nodes):
                self._forward(node, Reboot(id=command.id, nodes=[node]))
            return {"nodes": list(command.nodes)}, []
        raise CommandError(f"op {type(command).__name__.lower()} is not handled here")

    def _known_nodes(self, nodes: Iterable[str]) -> list[str]:
        nodes = list(dict.fromkeys(nodes))
        unknown = [n for n in nodes if n not in self.fleet.nodes.rows]
        if unknown:
            raise CommandError(
                f"unknown node {unknown[0]}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            )
        return nodes

    def _refuse_switches(self, command: Cordon | Drain, nodes: list[str]) -> None:
        """CommandError for a cordon or drain naming a switch: it carries no replicas."""
        kinds = self.fleet.nodes["kind"][[self.fleet.nodes.rows[n] for n in nodes]].tolist()
        switches = [n for n, k in zip(nodes, kinds, strict=True) if k == NODE_KINDS["switch"]]
        if switches:
            op = command.__struct_config__.tag
            raise CommandError(
                f"{switches[0]} is a switch: {op} applies to GPU and LPU nodes, which carry"
                " replicas (a switch's faults and links are set with `fault`)"
            )

    def _remember(self, changes: Iterable[Change]) -> None:
        for change in changes:
            if isinstance(change, NodeIntent):
                self.intents[change.node] = change
            elif isinstance(change, NodeReleased):
                self.intents.pop(change.node, None)

    def _replicas_on(self, nodes: list[str]) -> list[int]:
        """Replicas holding a GPU of these nodes (stopped ones hold none)."""
        node_rows = np.array([self.fleet.nodes.rows[n] for n in nodes], np.intp)
        gpus = self.fleet.device_rows(node_rows, "gpu")
        owners = self.pools.owners("gpu")[gpus]
        found: list[int] = np.unique(owners[owners >= 0]).tolist()
        return found

    def _drain(self, command: Drain, nodes: list[str], now: float) -> list[Change]:
        leaving = set(self._replicas_on(nodes))
        if not command.force:
            for name, pool in self.pools.pools.items():
                left = [
                    r
                    for r in pool.replicas
                    if self.pools.replicas["state"][r] == READY and r not in leaving
                ]
                if any(r in leaving for r in pool.replicas) and len(left) < pool.spec.min_available:
                    raise CommandError(
                        f"drain would leave pool {name} with {len(left)} of its "
                        f"{pool.spec.min_available} minimum available replicas (use force)"
                    )
        deadline = now + command.grace_s
        return [
            NodeIntent(n, "draining", now, command.id, command.reason, deadline, command.force)
            for n in nodes
        ]

    def _pool(self, pool: str) -> None:
        if pool not in self.pools.pools:
            raise CommandError(f"unknown pool {pool}")

    def _scale(self, command: Scale, now: float) -> tuple[dict[str, object], list[Change]]:
        self._pool(command.pool)
        pool = self.pools.pools[command.pool]
        devices, most = self.pools.capacity(pool)
        if command.replicas > most:
            spec = pool.spec
            raise CommandError(
                f"pool {spec.pool} can never hold {command.replicas} replicas: the site's "
                f"{devices} {spec.hardware} {DEVICE_NOUNS[pool.accelerator.kind]}s hold at most "
                f"{most} of {spec.tensor_parallel}"
            )
        pool.desired = command.replicas
        problems = self.pools.reconcile(self.schedulable(now), now)
        counts = self.pools.counts(pool)
        result: dict[str, object] = {
            "pool": command.pool,
            "desired": command.replicas,
            "ready": counts[READY],
            "warming": counts[WARMING],
            "draining": counts[DRAINING],
        }
        mine = [p for p in problems if p.startswith(f"pool {command.pool}:")]
        if mine:
            result["partial"] = mine[0]
        return result, [ReplicaTarget(command.pool, command.replicas)]

    def _route(self, command: Route) -> tuple[dict[str, object], list[Change]]:
        for pool in command.weights:
            self._pool(pool)
            if self.pools.pools[pool].spec.model != command.model:
                raise CommandError(f"pool {pool} does not serve model {command.model}")
        self.routes[command.model] = dict(command.weights)
        return {"model": command.model, "weights": dict(command.weights)}, [
            RouteWeights(command.model, dict(command.weights))
        ]

    def _agent_of(self, node: str) -> str:
        for name, agent in self.fleet.agents.items():
            if node in agent.nodes:
                return name
        raise CommandError(f"unknown node {node}")

    def _check_fault(self, fault: InjectFault | ClearFault) -> None:
        """CommandError if the fault's target lacks the devices it hits, or the parameters do
        not fit them (a `nic=` for a switch, a port it does not have)."""
        row = self.fleet.nodes.rows.get(fault.target)
        if row is None:
            raise CommandError(f"unknown node {fault.target}")
        devices = {kind: int(self.fleet.nodes[f"{kind}s"][row]) for kind in DEVICE_PARAMS}
        params = fault.params if isinstance(fault, InjectFault) else {}
        if fault.kind is not None and (
            problem := fault_problem(fault.target, fault.kind, params, devices)
        ):
            raise CommandError(problem)

    def _forward(self, node: str, command: AgentCommand) -> None:
        self.send_to_agent(self._agent_of(node), command)

    def drain_for_health(self, node: str, reason: str, now: float) -> bool:
        """Cordon and drain a node the health policy found broken (forced, no grace);
        False if it is already out of placement."""
        if node in self.intents or node not in self.fleet.nodes.rows:
            return False
        intent = NodeIntent(node, "draining", now, None, reason, now, True)
        self.intents[node] = intent
        self.journal.save([intent])
        return True

    def set_desired(self, pool: str, replicas: int) -> None:
        """A pool's new size, as the autoscaler decided it."""
        self.pools.pools[pool].desired = replicas
        self.journal.save([ReplicaTarget(pool, replicas)])

    # -- every tick ----------------------------------------------------------------------------

    def tick(self, now: float) -> tuple[list[str], list[str]]:
        """Move drains along (at the deadline, what is still in flight is re-routed), keep
        pools at their size; sentences for what happened, and for what could not be placed."""
        happened = []
        draining = [n for n, i in self.intents.items() if i.state == "draining"]
        for node in draining:
            intent = self.intents[node]
            replicas = self._replicas_on([node])
            for replica in replicas:
                self.pools.drain(replica)
                if intent.deadline is not None and now >= intent.deadline:
                    self.lost += self.pools.hand_over(replica)
            if not self._replicas_on([node]):
                drained = NodeIntent(node, "drained", now, intent.command, intent.reason)
                self.intents[node] = drained
                self.journal.save([drained])
                happened.append(f"node {node} drained")
        return happened, self.pools.reconcile(self.schedulable(now), now)
