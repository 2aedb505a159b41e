"""TOML scenario files, read and checked into a Scenario: the site, seed, pools and traffic,
and a timeline of steps. Any mistake is a ScenarioError naming the file, line and problem.

    name = "XID 79: a GPU falls off the bus and its node is drained"
    seed = 7

    [topology]                      # as a topology file (or: topology = "site.toml")
    racks = [{ kind = "hgx-h100", count = 2 }]

    [traffic.llama-3-1-70b]         # replaces the default traffic; unset fields as default
    peak_rps = 6
    bursts_per_hour = 0

    [[steps]]                       # each step: when, then one thing to do or to expect
    expect = { pool = "llama-70b-h100", replicas_ready = 2 }
    within = 90                     # simulated seconds (default 60)

    [[steps]]
    at = 60                         # seconds after the start (or: after = N, after the last)
    inject = { target = "r001-n02", kind = "xid", code = 79, gpu = 3 }

    [[steps]]
    expect = { event = "control", message = "r001-n02 drained" }
    within = 30
"""

import datetime
import math
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NoReturn

from agents.topology import Site, TopologyError, load_site, site_from_table
from aidc.scenarios import conditions
from aidc.scenarios.actions import Action, ChangeTraffic, SendCommand
from aidc.scenarios.conditions import (
    Comparison,
    Condition,
    EventHappened,
    NodeIs,
)
from aidc.scenarios.model import Scenario, Step
from aidc.scenarios.toml_lines import Path as KeyPath
from aidc.scenarios.toml_lines import key_lines, line_of
from aidc.site.datacenter import DEFAULT_START, build_command
from protocols.errors import AidcError
from sim import defaults
from sim.catalog import B200, GB200, GROQ_LPU, H100, H200
from sim.fleet_state import FleetState
from sim.pools import Pools, PoolSpec
from sim.routing import POLICIES
from sim.traffic import TrafficProfile

TOP_KEYS = (
    *("name", "description", "seed", "speed", "tick_s", "start"),
    *("topology", "pools", "traffic", "steps"),
)
ACTIONS = ("inject", "clear", "command", "traffic")
CHECKS = ("expect", "always")
STEP_KEYS = ("at", "after", "name", "within", "until", "error", *ACTIONS, *CHECKS)
HARDWARE = {
    "h100": H100.name,
    "h200": H200.name,
    "b200": B200.name,
    "gb200": GB200.name,
    "lpu": GROQ_LPU.name,
}
"""Short names for pool hardware: h100, h200, b200, gb200, lpu (or the full device name)."""


class ScenarioError(AidcError, ValueError):
    """A scenario file that cannot be run; `str()` is `file:line: problem`."""


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; ScenarioError naming the line and the problem."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message, _, where = str(error).rpartition(" (at line ")
        line, _, column = where.rstrip(")").partition(", ")
        if not message:
            raise ScenarioError(f"{path}: {error}") from None
        raise ScenarioError(f"{path}:{line}: {message} ({column})") from None
    return _Reader(path, key_lines(text)).scenario(data)


class _Reader:
    """Reads one parsed file, knowing where each key is written."""

    def __init__(self, path: Path, lines: dict[KeyPath, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, where: KeyPath, problem: str) -> NoReturn:
        line = line_of(self.lines, where)
        at = f"{self.path}:{line}" if line else str(self.path)
        raise ScenarioError(f"{at}: {problem}")

    def keys(self, table: object, where: KeyPath, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(table, dict):
            self.fail(where, f"{_name(where)} must be a table")
        for key in table:
            if key not in allowed:
                self.fail((*where, key), f"unknown key {key!r} (use {', '.join(allowed)})")
        return table

    def number(
        self, value: object, where: KeyPath, low: float = 0.0, integer: bool = False
    ) -> float:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole or (not integer and isinstance(value, float) and math.isfinite(value))):
            self.fail(where, f"{_name(where)} must be a {'whole ' if integer else ''}number")
        assert isinstance(value, int | float)
        if value < low:
            self.fail(where, f"{_name(where)} must be at least {low:g}")
        return float(value)

    def text(self, value: object, where: KeyPath) -> str:
        if not isinstance(value, str):
            self.fail(where, f"{_name(where)} must be a string")
        return value

    # -- the file -------------------------------------------------------------------------------

    def scenario(self, data: dict[str, Any]) -> Scenario:
        self.keys(data, (), TOP_KEYS)
        site = self.site(data.get("topology"))
        pools = self.pools(data["pools"]) if "pools" in data else None
        traffic = self.traffic(data["traffic"]) if "traffic" in data else None
        scenario = Scenario(
            path=self.path,
            name=self.text(data.get("name", self.path.stem), ("name",)),
            description=self.text(data.get("description", ""), ("description",)),
            site=site,
            seed=int(self.number(data.get("seed", 0), ("seed",), integer=True)),
            speed=self.number(data.get("speed", 0.0), ("speed",)),
            tick_s=self.positive(data["tick_s"], ("tick_s",)) if "tick_s" in data else None,
            start=self.start(data.get("start", DEFAULT_START)),
            pools=pools,
            traffic=traffic,
        )
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            self.fail(("steps",), "a scenario needs at least one [[steps]] table")
        return replace(scenario, steps=self.steps(steps, scenario))

    def positive(self, value: object, where: KeyPath) -> float:
        number = self.number(value, where)
        if number <= 0:
            self.fail(where, f"{_name(where)} must be above 0")
        return number

    def start(self, value: object) -> float:
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                self.fail(("start",), "start needs a time zone, e.g. 2026-01-01T15:00:00Z")
            return value.timestamp()
        return self.number(value, ("start",))

    def site(self, topology: object) -> Site:
        where: KeyPath = ("topology",)
        try:
            if isinstance(topology, str):
                return load_site(self.path.parent / topology)
            if isinstance(topology, dict):
                return site_from_table(topology, "[topology]", None)
        except TopologyError as error:
            self.fail(where, str(error))
        self.fail(where, "give a [topology] table (site, racks, fabric) or a topology file name")

    def pools(self, entries: object) -> tuple[PoolSpec, ...]:
        if not isinstance(entries, list) or not entries:
            self.fail(("pools",), "pools must be [[pools]] tables")
        known = [f.name for f in fields(PoolSpec)]
        check = Pools(FleetState())
        specs = []
        for i, entry in enumerate(entries):
            where: KeyPath = ("pools", i)
            table = dict(self.keys(entry, where, tuple(known)))
            table["hardware"] = HARDWARE.get(str(table.get("hardware")), table.get("hardware"))
            for key in ("pool", "model", "hardware", "policy"):
                if key in table:
                    self.text(table[key], (*where, key))
            for key in ("tensor_parallel", "replicas", "min_available"):
                if key in table:
                    table[key] = int(self.number(table[key], (*where, key), integer=True))
            for key in ("prompt_tokens", "output_tokens"):
                if key in table:
                    table[key] = self.number(table[key], (*where, key))
            try:
                spec = PoolSpec(**table)
                if spec.policy not in POLICIES:
                    raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
                check.add(spec)
            except TypeError:
                missing = [
                    k for k in ("pool", "model", "hardware", "tensor_parallel") if k not in table
                ]
                self.fail(where, f"a pool needs {', '.join(missing)}")
            except (ValueError, KeyError) as error:
                self.fail(where, str(error).strip('"'))
            specs.append(spec)
        return tuple(specs)

    def traffic(self, table: object) -> dict[str, TrafficProfile]:
        if not isinstance(table, dict) or not table:
            self.fail(("traffic",), "traffic must hold a [traffic.MODEL] table per model")
        known = tuple(f.name for f in fields(TrafficProfile))
        out = {}
        for model, entry in table.items():
            where: KeyPath = ("traffic", model)
            values = self.keys(entry, where, known)
            base = defaults.TRAFFIC.get(model)
            try:
                out[model] = replace(base, **values) if base else TrafficProfile(**values)
            except TypeError:
                self.fail(where, f"traffic of {model} (no default profile) needs peak_rps")
            except ValueError as error:
                self.fail(where, str(error))
        return out

    # -- the steps ------------------------------------------------------------------------------

    def steps(self, entries: list[Any], scenario: Scenario) -> tuple[Step, ...]:
        names = _Names(scenario)
        steps: list[Step] = []
        last_at = 0.0
        for i, entry in enumerate(entries):
            where: KeyPath = ("steps", i)
            table = self.keys(entry, where, STEP_KEYS)
            chosen = [k for k in (*ACTIONS, *CHECKS) if k in table]
            if len(chosen) > 1:
                self.fail(where, f"a step does one thing; this one has {' and '.join(chosen)}")
            if "at" in table and "after" in table:
                self.fail(where, "give a step at or after, not both")
            step = Step(number=i + 1, line=line_of(self.lines, where) or 0)
            if "at" in table:
                at = self.number(table["at"], (*where, "at"))
                if at < last_at:
                    self.fail(
                        (*where, "at"), f"at = {at:g} is before an earlier step's {last_at:g}"
                    )
                step, last_at = replace(step, at=at), at
            if "after" in table:
                step = replace(step, after=self.number(table["after"], (*where, "after")))
            kind = chosen[0] if chosen else None
            self.only_with(table, where, "within", "expect", kind)
            self.only_with(table, where, "until", "always", kind)
            self.only_with(table, where, "error", "command", kind)
            step = replace(step, name=self.text(table.get("name", ""), (*where, "name")))
            if kind in CHECKS:
                condition = self.condition(table[kind], (*where, kind), names)
                if kind == "expect":
                    step = replace(step, expect=condition)
                else:
                    step = replace(step, always=condition)
                if "within" in table:
                    step = replace(step, within=self.number(table["within"], (*where, "within")))
                if "until" in table:
                    step = replace(step, until=self.number(table["until"], (*where, "until")))
            elif kind is not None:
                step = replace(step, action=self.action(kind, table, where, names))
            steps.append(step)
        return tuple(steps)

    def only_with(
        self, table: dict[str, Any], where: KeyPath, key: str, owner: str, kind: str | None
    ) -> None:
        if key in table and kind != owner:
            self.fail((*where, key), f"{key} goes only with {owner}")

    def action(self, kind: str, table: dict[str, Any], where: KeyPath, names: "_Names") -> Action:
        at = (*where, kind)
        body = table[kind]
        if not isinstance(body, dict):
            self.fail(at, f"{kind} must be a table, e.g. {kind} = {{ ... }}")
        if kind == "traffic":
            return self.traffic_change(body, at, names)
        if kind == "command":
            op = body.get("op")
            if not isinstance(op, str):
                self.fail(at, "a command needs an op (drain, scale, route, ...)")
            details = {k: v for k, v in body.items() if k != "op"}
            error = self.text(table["error"], (*where, "error")) if "error" in table else None
            command = SendCommand(op, details, error, op + _params(details))
        else:
            command = self.fault(kind, body, at, names)
        try:
            build_command(command.op, "check", **command.fields)
        except ValueError as error:
            self.fail(at, str(error))
        nodes = command.fields.get("nodes")
        for node in nodes if isinstance(nodes, list) else []:
            names.target(node, self, (*at, "nodes"))
        return command

    def fault(self, kind: str, body: dict[str, Any], at: KeyPath, names: "_Names") -> SendCommand:
        """An inject (target, kind and the fault's parameters) or a clear (target, kind)."""
        target = body.get("target")
        if not isinstance(target, str):
            self.fail(at, f"{kind} needs a target (a node or switch)")
        names.target(target, self, (*at, "target"))
        fault = body.get("kind")
        params = {k: v for k, v in body.items() if k not in ("target", "kind")}
        if kind == "inject":
            text = f"inject {fault} into {target}" + _params(params)
            return SendCommand(
                "inject_fault", {"target": target, "kind": fault, "params": params}, None, text
            )
        if params:
            self.fail(at, "clear takes only target and kind")
        details = {"target": target} | ({"kind": fault} if fault is not None else {})
        return SendCommand(
            "clear_fault", details, None, f"clear {fault or 'every'} fault of {target}"
        )

    def traffic_change(self, body: dict[str, Any], at: KeyPath, names: "_Names") -> ChangeTraffic:
        model = self.text(body.get("model"), (*at, "model")) if "model" in body else None
        if model is None or model not in names.models:
            self.fail(at, f"traffic needs a model with traffic ({', '.join(names.models)})")
        if "peak_rps" not in body and "burst_factor" not in body:
            self.fail(at, "traffic needs peak_rps or burst_factor")
        change = ChangeTraffic(model)
        if "peak_rps" in body:
            change = replace(change, peak_rps=self.number(body["peak_rps"], (*at, "peak_rps")))
        if "burst_factor" in body:
            factor = self.number(body["burst_factor"], (*at, "burst_factor"), low=1.0)
            change = replace(change, burst_factor=factor)
        if "burst_s" in body:
            change = replace(change, burst_s=self.number(body["burst_s"], (*at, "burst_s")))
        return change

    def condition(self, body: object, at: KeyPath, names: "_Names") -> Condition:
        if not isinstance(body, dict) or not body:
            self.fail(at, 'a condition is a table, e.g. { node = "r001-n01", state = "drained" }')
        subjects = [k for k in ("node", "pool", "rack", "switch", "event") if k in body]
        if len(subjects) > 1:
            self.fail(
                at, f"a condition is about one thing; this one names {' and '.join(subjects)}"
            )
        subject = subjects[0] if subjects else None
        if subject == "node":
            return self.node_condition(body, at, names)
        if subject == "event":
            extra = set(body) - {"event", "subject", "message", "severity"}
            if extra:
                self.fail(
                    (*at, sorted(extra)[0]),
                    "an event condition takes event (its kind), subject, message and severity",
                )
            texts = {k: self.text(body[k], (*at, k)) for k in body}
            kind = texts.pop("event")
            return EventHappened(
                kind or None,
                texts.get("subject", ""),
                texts.get("message", ""),
                texts.get("severity"),
            )
        name = self.text(body[subject], (*at, subject)) if subject else ""
        if subject:
            names.check(subject, name, self, (*at, subject))
        known, make = _FIGURES[subject]
        wanted = {k: v for k, v in _flatten(body).items() if k != subject}
        if not wanted:
            self.fail(at, f'say what to compare, e.g. {known[2]} = ">= 1"')
        comparisons = []
        for key, value in wanted.items():
            path = (*at, *key.split("."))
            try:
                comparisons.append(
                    (
                        conditions.field_name(key, known, subject or "the site summary"),
                        Comparison.parse(value),
                    )
                )
            except ValueError as error:
                self.fail(path, str(error))
        return make(name, tuple(comparisons))

    def node_condition(self, body: dict[str, Any], at: KeyPath, names: "_Names") -> NodeIs:
        extra = set(body) - {"node", "state"}
        if extra or "state" not in body:
            self.fail(at, "a node condition takes node and state (one state or a list)")
        node = self.text(body["node"], (*at, "node"))
        names.check("node", node, self, (*at, "node"))
        states = body["state"] if isinstance(body["state"], list) else [body["state"]]
        for state in states:
            if state not in conditions.NODE_STATES:
                self.fail(
                    (*at, "state"),
                    f"state {state!r} is not one of {', '.join(conditions.NODE_STATES)}",
                )
        return NodeIs(node, tuple(states))


_FIGURES = {
    "pool": (conditions.POOL_FIELDS, conditions.pool_figures),
    "rack": (conditions.RACK_FIELDS, conditions.rack_figures),
    "switch": (conditions.SWITCH_FIELDS, conditions.switch_figures),
    None: (conditions.SUMMARY_FIELDS, lambda _, c: conditions.summary_figures(c)),
}


class _Names:
    """The nodes, racks, switches, pools and models a scenario's site and core will have."""

    def __init__(self, scenario: Scenario) -> None:
        site = scenario.site
        self.switches = site.fabric.switches
        self.racks = [r.rack for r in site.racks] + [n for n, _ in site.fabric.net_racks()]
        self.nodes = [n for r in site.racks for n in r.node_ids()]
        self.pools = [p.pool for p in scenario.pools or defaults.POOLS]
        self.models = list(scenario.traffic or defaults.TRAFFIC)

    def check(self, kind: str, name: str, reader: _Reader, where: KeyPath) -> None:
        known = {"node": self.nodes, "rack": self.racks, "switch": self.switches}.get(kind)
        known = self.pools if kind == "pool" else known
        if known is not None and name not in known:
            reader.fail(where, f"no {kind} {name!r} in this scenario ({_some(known)})")

    def target(self, name: str, reader: _Reader, where: KeyPath) -> None:
        known = self.nodes + self.switches
        if name not in known:
            reader.fail(where, f"no node or switch {name!r} in this scenario ({_some(known)})")


def _some(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _name(where: KeyPath) -> str:
    parts = [str(p) if isinstance(p, str) else f"#{p + 1}" for p in where]
    return " ".join(parts) or "the file"


def _value(value: object) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def _params(params: Mapping[str, Any]) -> str:
    shown = [f"{k}={_value(v)}" for k, v in params.items()]
    return f" ({', '.join(shown)})" if shown else ""
