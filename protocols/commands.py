"""Operator and agent commands, a tagged union on `op`, and the reply every command gets.

Commands reject unknown fields (a misspelt `grace_s` must not silently drain with the
default), so the reply names the field. Replies are sent in the command's own encoding.
"""

import math
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from protocols.ids import CommandId, EntityId
from protocols.limits import MAX_COMMAND_TARGETS, MAX_QUERY_ROWS, MAX_ROUTE_POOLS
from protocols.messages import Count, NodeState, Text
from protocols.topics import MAX_REPLY_LEVELS, check_reply_level, reply_prefix, reply_topic

Targets = Annotated[list[EntityId], Meta(min_length=1, max_length=MAX_COMMAND_TARGETS)]
Percent = Annotated[float, Meta(ge=0, le=100)]
ParamName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,31}\Z")]
FaultKind = Literal["xid", "cooling", "link_flap", "pause_storm", "lpu_chip", "power_loss"]
QueryWhat = Literal["nodes", "node", "pools", "fabric", "events", "commands"]
NodeSort = Literal[
    "node",
    "rack",
    "kind",
    "state",
    "gpus",
    "healthy",
    "allocated",
    "utilization",
    "temperature_c",
    "power_w",
    "last_xid",
    "nic_gbps",
    "pool",
]
"""What a nodes query sorts by: a column of its rows (protocols.queries.NodeRow)."""

ROUTE_SUM_TOLERANCE = 0.01


class Command(Struct, tag_field="op", kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Fields every command has: a client-chosen `id` and where to reply."""

    id: CommandId
    reply_to: Text | None = None
    """A topic under `aidc/v1/{site}/ctl/reply/`; default `aidc/v1/{site}/ctl/reply/{id}`."""


class Cordon(Command, tag="cordon"):
    """Stop placing new replicas on these nodes; running ones keep serving."""

    nodes: Targets
    reason: Text = ""


class Uncordon(Command, tag="uncordon"):
    """Return cordoned, draining or drained nodes to service."""

    nodes: Targets


class Drain(Command, tag="drain"):
    """Cordon, let in-flight requests finish within `grace_s`, then move the replicas away.

    Refused when it would take a pool below its minimum available replicas, unless `force`.
    """

    nodes: Targets
    grace_s: Annotated[float, Meta(ge=0, le=86400)] = 300.0
    force: bool = False
    reason: Text = ""


class Scale(Command, tag="scale"):
    """Set a pool's desired replicas."""

    pool: EntityId
    replicas: Annotated[int, Meta(ge=0, le=1_000_000)]


class Route(Command, tag="route"):
    """Set a model's traffic split across pools, in percent summing to 100."""

    model: EntityId
    weights: Annotated[dict[EntityId, Percent], Meta(min_length=1, max_length=MAX_ROUTE_POOLS)]

    def __post_init__(self) -> None:
        total = math.fsum(self.weights.values())
        if abs(total - 100.0) > ROUTE_SUM_TOLERANCE:
            raise ValueError(f"route weights must sum to 100 (percent), not {total:g}")


class Autoscale(Command, tag="autoscale"):
    """Turn a pool's autoscaler on or off and set its targets."""

    pool: EntityId
    enabled: bool
    min_replicas: Annotated[int, Meta(ge=0, le=1_000_000)] = 1
    max_replicas: Annotated[int, Meta(ge=0, le=1_000_000)] = 16
    target_queue_depth: Annotated[float, Meta(gt=0)] | None = None
    """Waiting requests per ready replica to aim for."""
    target_ttft_s: Annotated[float, Meta(gt=0)] | None = None
    """p99 time to first token to stay under."""
    cooldown_s: Annotated[float, Meta(ge=0, le=86400)] = 60.0

    def __post_init__(self) -> None:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )


class InjectFault(Command, tag="inject_fault"):
    """Make a node, switch or one of their devices fail, for drills and tests.

    `params` by kind: xid `{"code": 79, "gpu": 3}`; cooling `{"severity": 0.8}`;
    link_flap `{"nic": 2}` or `{"port": 17}`; pause_storm `{"nic": 0}`; lpu_chip `{"chip": 5}`.
    """

    target: EntityId
    kind: FaultKind
    params: Annotated[dict[ParamName, int | float | str | bool], Meta(max_length=16)] = {}


class ClearFault(Command, tag="clear_fault"):
    """Clear one kind of fault from a target, or every fault when `kind` is omitted."""

    target: EntityId
    kind: FaultKind | None = None


class Reboot(Command, tag="reboot"):
    """Reboot nodes: devices reset, counters restart, faults that a reset fixes clear."""

    nodes: Targets


class Query(Command, tag="query"):
    """Read something back, paged by `offset` and `limit`; the reply's `result` holds the
    answer (protocols.queries)."""

    what: QueryWhat
    node: EntityId | None = None
    rack: EntityId | None = None
    pool: EntityId | None = None
    state: NodeState | None = None
    filter: Text = ""
    sort: NodeSort = "node"
    descending: bool = False
    offset: Count = 0
    limit: Annotated[int, Meta(ge=1, le=MAX_QUERY_ROWS)] = 100


class Rebirth(Command, tag="rebirth"):
    """Ask an agent to publish its birth again (sent by the core, never by operators)."""


OperatorCommand = (
    Cordon
    | Uncordon
    | Drain
    | Scale
    | Route
    | Autoscale
    | InjectFault
    | ClearFault
    | Reboot
    | Query
)
AgentCommand = InjectFault | ClearFault | Reboot | Rebirth


class Reply(Struct, frozen=True, omit_defaults=True):
    """The answer to one command: `ok`, or an `error` sentence; `result` holds a query's
    answer (read it with `codec.read_answer`) or what a command changed."""

    id: CommandId
    ok: bool
    error: Text | None = None
    result: dict[str, Any] | None = None


class Addressed(Struct):
    """Just the `id` and `reply_to` of a command, read from one that is otherwise malformed so
    that its sender still hears why."""

    id: CommandId
    reply_to: Text | None = None


def reply_destination(site: str, command: Command | Addressed) -> str:
    """Where to send a command's reply; a `reply_to` outside the site's reply topics is refused."""
    if command.reply_to is None:
        return reply_topic(site, command.id)
    prefix = reply_prefix(site)
    suffix = command.reply_to.removeprefix(prefix)
    levels = suffix.split("/")
    if suffix == command.reply_to or not 1 <= len(levels) <= MAX_REPLY_LEVELS:
        raise ValueError(f"reply_to must be a topic under {prefix} without wildcards")
    try:
        for level in levels:
            check_reply_level(level)
    except ValueError:
        raise ValueError(f"reply_to must be a topic under {prefix} without wildcards") from None
    return command.reply_to
