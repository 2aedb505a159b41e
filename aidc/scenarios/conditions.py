"""Conditions a scenario expects of a running data center: a node's state, a pool's, a rack's,
a switch's or the site summary's figures compared with a value, or an event that happened."""

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from aidc.site.datacenter import DataCenter
from aidc.site.state import State
from protocols.columns import RackColumns, layout
from protocols.messages import NodeState, Percentiles, PoolState, Summary, SwitchState

Value = float | str | bool
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*$")
NODE_STATES: tuple[NodeState, ...] = ("ready", "cordoned", "draining", "drained", "lost", "failed")
LATENCY_ALIASES = {"ttft": "time_to_first_token", "itl": "inter_token_latency"} | {
    "e2e": "e2e_request_latency"
}


@dataclass(frozen=True)
class Comparison:
    """`actual <op> value`; written `2` (equal), `"< 0.5"`, `">= 3"`, `"!= ready"`."""

    op: str
    value: Value

    @classmethod
    def parse(cls, written: object) -> "Comparison":
        """A comparison as a file writes it; ValueError saying what is wrong."""
        if isinstance(written, bool):
            return cls("==", written)
        if isinstance(written, int | float):
            return cls("==", float(written))
        if isinstance(written, str):
            match = _COMPARISON.match(written)
            if match is None:
                return cls("==", written)
            text = match.group(2)
            try:
                return cls(match.group(1), float(text))
            except ValueError:
                return cls(match.group(1), text)
        raise ValueError(f"{written!r} is not a number, a string or a comparison like '>= 2'")

    def holds(self, actual: Value) -> bool:
        """Whether `actual` compares as asked (numbers within a relative 1e-9 for ==)."""
        value = self.value
        if isinstance(actual, bool) or isinstance(value, bool):
            return OPERATORS[self.op](actual, value)
        if isinstance(actual, int | float) and isinstance(value, float):
            if self.op in ("==", "!=") and math.isclose(actual, value, rel_tol=1e-9):
                return self.op == "=="
            return OPERATORS[self.op](actual, value)
        if self.op in ("==", "!="):
            return OPERATORS[self.op](str(actual), str(value))
        return False

    def __str__(self) -> str:
        return f"{self.op} {_show(self.value)}"


@dataclass(frozen=True)
class Observation:
    """Whether a condition held, and what was seen, as a clause (`replicas_ready was 1`)."""

    met: bool
    seen: str


class Condition(Protocol):
    """Something to check against a running data center."""

    async def observe(self, dc: DataCenter) -> Observation:
        """Check it now."""
        ...


def _show(value: object) -> str:
    """A figure as a person reads it: 2, 193, 0.299, 1.2e-05."""
    if isinstance(value, float) and not isinstance(value, bool):
        if value == int(value) or abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}"
    return str(value)


def _flat(value: object, prefix: str = "") -> dict[str, Value]:
    """A view as `field` / `field.sub` -> plain value."""
    if isinstance(value, msgspec.Struct):
        value = {name: getattr(value, name) for name in value.__struct_fields__}
    if isinstance(value, dict):
        out: dict[str, Value] = {}
        for key, item in value.items():
            out |= _flat(item, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): value} if isinstance(value, int | float | str | bool) else {}


POOL_FIELDS = tuple(_flat(PoolState(pool="", model="", hardware="")))[1:]
SWITCH_FIELDS = tuple(_flat(SwitchState(switch="", ports_up=0, ports=0)))[1:]
RACK_FIELDS = tuple(n for n in layout(RackColumns).names if n != "node")
REQUESTS_LOST = "requests_lost"
SUMMARY_FIELDS = (
    *_flat(Summary(time=0.0, tick=0, speed=0.0)),
    *(f"nodes.{state}" for state in NODE_STATES),
    REQUESTS_LOST,
)


def field_name(name: str, known: tuple[str, ...], what: str) -> str:
    """`name` as a field of `known` (with `ttft_p99` for `time_to_first_token.p99`, ...);
    ValueError naming the fields there are."""
    prefix, _, percentile = name.rpartition("_")
    if prefix in LATENCY_ALIASES and percentile in Percentiles.__struct_fields__:
        name = f"{LATENCY_ALIASES[prefix]}.{percentile}"
    if name not in known:
        raise ValueError(f"{what} has no field {name!r} (fields: {', '.join(known)})")
    return name


@dataclass(frozen=True)
class Figures:
    """Figures of one thing in the state, each compared with a value."""

    what: str
    """`pool llama-70b-h100`, `rack r001`, `switch leaf01`, `site`."""
    read: Callable[[DataCenter], Mapping[str, Value]]
    """The thing's figures now (KeyError if the core has not published it)."""
    comparisons: tuple[tuple[str, Comparison], ...]

    async def observe(self, dc: DataCenter) -> Observation:
        try:
            figures = self.read(dc)
        except KeyError:
            return Observation(False, f"{self.what} is not in the published state")
        failed = [(f, c) for f, c in self.comparisons if not c.holds(figures.get(f, 0.0))]
        shown = failed or list(self.comparisons)
        seen = ", ".join(f"{f} was {_show(figures.get(f, 0.0))}" for f, _ in shown)
        return Observation(not failed, seen)

    def __str__(self) -> str:
        return f"{self.what} " + ", ".join(f"{f} {c}" for f, c in self.comparisons)


def pool_figures(pool: str, comparisons: tuple[tuple[str, Comparison], ...]) -> Figures:
    """A pool's published figures (vLLM's names, latency percentiles as `ttft_p99`, ...)."""
    return Figures(f"pool {pool}", lambda dc: _flat(dc.state.pool(pool)), comparisons)


def rack_figures(rack: str, comparisons: tuple[tuple[str, Comparison], ...]) -> Figures:
    """A rack's published aggregates."""
    return Figures(f"rack {rack}", lambda dc: dc.state.rack(rack), comparisons)


def switch_figures(switch: str, comparisons: tuple[tuple[str, Comparison], ...]) -> Figures:
    """A switch's published health and load."""
    return Figures(f"switch {switch}", lambda dc: _flat(dc.state.switch(switch)), comparisons)


def summary_figures(comparisons: tuple[tuple[str, Comparison], ...]) -> Figures:
    """The site summary, node counts by state (`nodes.failed`) and the requests lost."""

    def read(dc: DataCenter) -> Mapping[str, Value]:
        state: State = dc.state
        if state.summary is None:
            raise KeyError("summary")
        figures = _flat(state.summary)
        figures |= {f"nodes.{s}": float(state.summary.nodes.get(s, 0)) for s in NODE_STATES}
        return figures | {REQUESTS_LOST: dc.requests_lost}

    return Figures("site", read, comparisons)


@dataclass(frozen=True)
class NodeIs:
    """A node is in one of some states (asked of the core with a query)."""

    node: str
    states: tuple[str, ...]

    async def observe(self, dc: DataCenter) -> Observation:
        state = await dc.node_state(self.node)
        return Observation(state in self.states, f"{self.node} was {state}")

    def __str__(self) -> str:
        return f"node {self.node} {' or '.join(self.states)}"


@dataclass(frozen=True)
class EventHappened:
    """An event of `kind` (and severity) whose subject and message contain the given text
    has been published since the start."""

    kind: str | None = None
    subject: str = ""
    message: str = ""
    severity: str | None = None

    async def observe(self, dc: DataCenter) -> Observation:
        found = dc.state.find_events(self.kind, self.subject, self.message, self.severity)
        if found:
            return Observation(True, found[0].message)
        return Observation(False, "no such event")

    def __str__(self) -> str:
        words = [w for w in (self.severity, self.kind or "any") if w]
        parts = ["an" if words[0][0] in "aeiou" else "a", *words, "event"]
        if self.subject:
            parts.append(f"about {self.subject!r}")
        if self.message:
            parts.append(f"saying {self.message!r}")
        return " ".join(parts)
