"""Answers to operator queries, one Struct for each `Query.what`, as the core builds them and
clients read them.

A reply carries its query's answer as `result`, encoded as the Struct encodes, and
`codec.read_answer` reads it back, checked as a decoder checks a message. `pools` and
`fabric` are answered with the state views (messages.PoolStates, messages.FabricState).
"""

from typing import Annotated, Any, TypeVar

from msgspec import Meta, Struct

from protocols.commands import NodeSort, Query, QueryWhat
from protocols.ids import CommandId, EntityId
from protocols.limits import MAX_DEVICES_PER_NODE, MAX_QUERY_ROWS, MAX_READINGS
from protocols.messages import (
    Count,
    Event,
    FabricState,
    NodeKind,
    NodeState,
    PoolStates,
    Text,
)

ReadingName = Annotated[str, Meta(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")]
Gauges = Annotated[dict[ReadingName, float], Meta(max_length=MAX_READINGS)]
Counters = Annotated[dict[ReadingName, Count], Meta(max_length=MAX_READINGS)]
EventList = Annotated[list[Event], Meta(max_length=MAX_QUERY_ROWS)]


class NodeRow(Struct, frozen=True, gc=False):
    """One node as the nodes view lists it, with figures over its devices."""

    node: EntityId
    rack: EntityId
    kind: NodeKind
    state: NodeState
    gpus: Count
    """Its devices: GPUs, LPU chips or switch ports."""
    healthy: Count
    """Its devices that are present."""
    allocated: Count
    """Its devices that replicas hold."""
    utilization: float
    """Mean over its reporting devices, in percent."""
    temperature_c: float | None
    """Of its hottest reporting device; None where none reports one (a switch)."""
    power_w: float | None
    """Of its reporting devices; None where none reports it (a switch)."""
    last_xid: Count
    """The highest last XID of its reporting GPUs, 0 for none."""
    nic_gbps: float
    """The load the core offers its NICs, each way."""
    pool: Text
    """The pool its replicas serve, '' for none."""


class NodesPage(Struct, frozen=True, gc=False):
    """One page of the nodes view: rows from `offset` of the `total` nodes that passed the
    query's filters, in the order of `sort`."""

    total: Count
    offset: Count
    sort: NodeSort
    """The query's sort."""
    nodes: Annotated[list[NodeRow], Meta(max_length=MAX_QUERY_ROWS)]


class GpuReadings(Struct, frozen=True, gc=False, omit_defaults=True):
    """One GPU of a node: its latest gauges by their dcgm names, none while it does not
    report."""

    gpu: Count
    present: bool
    gauges: Gauges = {}


class NicReadings(Struct, frozen=True, gc=False, omit_defaults=True):
    """One NIC of a node: the load the core offers it each way, and its latest gauges and
    counters by their mlx5 names, none while it does not report."""

    nic: Count
    present: bool
    gbps: float
    gauges: Gauges = {}
    counters: Counters = {}


class NodeDetail(NodeRow, frozen=True, gc=False):
    """One node in detail: its row of the nodes view, what was asked of it, its GPUs and
    NICs, and its latest events."""

    intent: NodeState
    """The state the operator or the health policy asked of it; `ready` for none."""
    devices: Annotated[list[GpuReadings], Meta(max_length=MAX_DEVICES_PER_NODE)]
    nics: Annotated[list[NicReadings], Meta(max_length=MAX_DEVICES_PER_NODE)]
    events: EventList = []
    """Newest first."""


class EventsPage(Struct, frozen=True, gc=False):
    """A page of the recent events whose subject holds the query's filter, newest first, and
    how many did."""

    total: Count
    events: EventList


class AuditEntry(Struct, frozen=True, gc=False):
    """One command in the core's audit log."""

    time: float
    id: CommandId
    op: Text
    ok: bool
    error: Text | None
    summary: Text


class CommandsPage(Struct, frozen=True, gc=False):
    """A page of the audit log, newest first."""

    commands: Annotated[list[AuditEntry], Meta(max_length=MAX_QUERY_ROWS)]


Answer = NodesPage | NodeDetail | PoolStates | FabricState | EventsPage | CommandsPage
AnswerT = TypeVar("AnswerT", bound=Answer)

ANSWERS: dict[QueryWhat, type[Answer]] = {
    "nodes": NodesPage,
    "node": NodeDetail,
    "pools": PoolStates,
    "fabric": FabricState,
    "events": EventsPage,
    "commands": CommandsPage,
}
"""The answer to each kind of query."""
_ASKED: dict[type[Struct], QueryWhat] = {answer: what for what, answer in ANSWERS.items()}


def asked(answer: type[Struct]) -> QueryWhat:
    """The kind of query that `answer` answers."""
    return _ASKED[answer]


def query_for(answer: type[Struct], command_id: str, **fields: Any) -> Query:
    """The query that `answer` answers, with these filters and paging."""
    return Query(id=command_id, what=asked(answer), **fields)
