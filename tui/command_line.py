"""Command mode (`:`): what an operator types, parsed into a view to open, a command to send
or an app action, or one sentence saying what is wrong with it."""

import difflib
import shlex
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols.commands import (
    Autoscale,
    ClearFault,
    Cordon,
    Drain,
    FaultKind,
    InjectFault,
    OperatorCommand,
    Reboot,
    Route,
    Scale,
    Uncordon,
)
from protocols.errors import AidcError
from protocols.messages import NodeState
from tui.validate import InvalidInput, command, entity, number

METRICS = ("utilization", "temperature", "power", "health")
NODE_STATES: tuple[str, ...] = typing.get_args(NodeState)
FAULT_KINDS: tuple[str, ...] = typing.get_args(FaultKind)

USAGE = {
    "racks": ":racks [utilization|temperature|power|health]",
    "nodes": ":nodes [TEXT] [rack=RACK] [state=STATE] [pool=POOL]",
    "node": ":node NODE [rack=RACK]",
    "pools": ":pools",
    "fabric": ":fabric",
    "events": ":events [TEXT]",
    "cordon": ":cordon NODE... [reason=TEXT]",
    "uncordon": ":uncordon NODE...",
    "drain": ":drain NODE... [grace=SECONDS] [force] [reason=TEXT]",
    "reboot": ":reboot NODE...",
    "scale": ":scale POOL REPLICAS",
    "route": ":route MODEL POOL=PERCENT...",
    "autoscale": ":autoscale POOL on|off [min=N] [max=N] [queue=N] [ttft=SECONDS] "
    "[cooldown=SECONDS]",
    "fault": ":fault TARGET KIND [PARAM=VALUE...]",
    "clear": ":clear TARGET [KIND]",
    "help": ":help",
    "quit": ":quit",
}
"""Every command mode word and how to use it (the help screen lists these)."""
ALIASES = {"q": "quit", "h": "help", "?": "help", "exit": "quit"}
MUTATIONS = frozenset(
    {"cordon", "uncordon", "drain", "reboot", "scale", "route", "autoscale", "fault", "clear"}
)


class CommandLineError(AidcError, ValueError):
    """Command-mode input that means nothing; `str()` says why and what would."""


@dataclass(frozen=True)
class GoTo:
    """Open a view; `argument` is its filter, node or metric."""

    view: str
    argument: str = ""
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Send:
    """Send an operator command (after confirmation)."""

    command: OperatorCommand


@dataclass(frozen=True)
class Run:
    """Run an app action: `help` or `quit`."""

    action: str


Parsed = GoTo | Send | Run


@dataclass
class _Words:
    """The words after the command: positional ones, `key=value` options and bare flags."""

    name: str
    positional: list[str]
    options: dict[str, str]

    def allow(self, *keys: str) -> None:
        unknown = sorted(set(self.options) - set(keys))
        if unknown:
            known = ", ".join(keys) if keys else "none"
            raise CommandLineError(
                f"{self.name}: unknown option {unknown[0]!r} (options: {known}); "
                f"usage {USAGE[self.name]}"
            )

    def need(self, count: int, what: str) -> None:
        if len(self.positional) < count:
            raise CommandLineError(f"{self.name} needs {what}: {USAGE[self.name]}")

    def most(self, count: int) -> None:
        if len(self.positional) > count:
            extra = self.positional[count]
            raise CommandLineError(f"{self.name}: unexpected {extra!r}; usage {USAGE[self.name]}")


def parse(line: str, new_id: Callable[[], str]) -> Parsed:
    """What a command-mode line asks for; CommandLineError if it asks for nothing sensible."""
    try:
        tokens = shlex.split(line.strip().removeprefix(":"))
    except ValueError as error:
        raise CommandLineError(f"cannot read that line: {error}") from None
    if not tokens:
        raise CommandLineError("type a command, e.g. :nodes or :drain r012-n03 (:help lists all)")
    word = tokens[0].lower()
    name = ALIASES.get(word, word)
    if name not in USAGE:
        close = difflib.get_close_matches(name, list(USAGE), n=1)
        hint = f"; did you mean :{close[0]}?" if close else ""
        raise CommandLineError(f"unknown command {word!r}{hint} (:help lists every command)")
    positional: list[str] = []
    options: dict[str, str] = {}
    for token in tokens[1:]:
        key, equals, value = token.partition("=")
        if equals and name != "route":
            options[key.lower()] = value
        elif token.lower() == "force" and name == "drain":
            options["force"] = "true"
        else:
            positional.append(token)
    words = _Words(name, positional, options)
    try:
        return _PARSERS[name](words, new_id)
    except InvalidInput as error:
        raise CommandLineError(f"{name}: {error}") from None


def _view(words: _Words, _: Callable[[], str]) -> Parsed:
    name = words.name
    if name in ("help", "quit"):
        words.most(0)
        words.allow()
        return Run(name)
    if name == "racks":
        words.allow()
        words.most(1)
        metric = words.positional[0].lower() if words.positional else ""
        if metric and metric not in METRICS:
            raise CommandLineError(f"racks: metric {metric!r} is not one of {', '.join(METRICS)}")
        return GoTo("racks", metric)
    if name == "node":
        words.allow("rack")
        words.need(1, "a node")
        words.most(1)
        rack = words.options.get("rack", "")
        options = (("rack", entity(rack, "rack")),) if rack else ()
        return GoTo("node", entity(words.positional[0]), options)
    if name == "nodes":
        words.allow("rack", "state", "pool")
        state = words.options.get("state", "")
        if state and state not in NODE_STATES:
            raise CommandLineError(f"nodes: state {state!r} is not one of {', '.join(NODE_STATES)}")
        rack, pool = words.options.get("rack", ""), words.options.get("pool", "")
        chosen = (
            ("rack", entity(rack, "rack") if rack else ""),
            ("state", state),
            ("pool", entity(pool, "pool") if pool else ""),
        )
        return GoTo("nodes", " ".join(words.positional), tuple(o for o in chosen if o[1]))
    words.allow()
    if name in ("pools", "fabric"):
        words.most(0)
    return GoTo(name, " ".join(words.positional))


def _nodes(words: _Words) -> list[str]:
    words.need(1, "at least one node")
    return [entity(node) for node in words.positional]


def _flag(text: str, what: str) -> bool:
    value = text.lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise InvalidInput(f"{what} {text!r} is not on or off")


def _node_command(words: _Words, new_id: Callable[[], str]) -> Parsed:
    name = words.name
    if name == "cordon":
        words.allow("reason")
        return Send(
            command(
                Cordon, id=new_id(), nodes=_nodes(words), reason=words.options.get("reason", "")
            )
        )
    if name == "drain":
        words.allow("grace", "force", "reason")
        fields: dict[str, Any] = {"id": new_id(), "nodes": _nodes(words)}
        if "grace" in words.options:
            fields["grace_s"] = number(words.options["grace"], "grace", low=0, high=86400)
        if "force" in words.options:
            fields["force"] = _flag(words.options["force"], "force")
        fields["reason"] = words.options.get("reason", "")
        return Send(command(Drain, **fields))
    words.allow()
    if name == "uncordon":
        return Send(command(Uncordon, id=new_id(), nodes=_nodes(words)))
    return Send(command(Reboot, id=new_id(), nodes=_nodes(words)))


def _scale(words: _Words, new_id: Callable[[], str]) -> Parsed:
    words.allow()
    words.need(2, "a pool and a number of replicas")
    words.most(2)
    pool, replicas = words.positional
    count = number(replicas, "replicas", whole=True, low=0, high=1_000_000)
    return Send(command(Scale, id=new_id(), pool=entity(pool, "pool"), replicas=int(count)))


def _route(words: _Words, new_id: Callable[[], str]) -> Parsed:
    words.need(2, "a model and at least one POOL=PERCENT")
    model, *splits = words.positional
    weights: dict[str, float] = {}
    for split in splits:
        pool, equals, percent = split.partition("=")
        if not equals:
            raise CommandLineError(f"route: {split!r} is not POOL=PERCENT; usage {USAGE['route']}")
        weights[entity(pool, "pool")] = number(percent, f"weight of {pool}", low=0, high=100)
    return Send(command(Route, id=new_id(), model=entity(model, "model"), weights=weights))


def _autoscale(words: _Words, new_id: Callable[[], str]) -> Parsed:
    words.allow("min", "max", "queue", "ttft", "cooldown")
    words.need(2, "a pool and on or off")
    words.most(2)
    pool, state = words.positional
    fields: dict[str, Any] = {
        "id": new_id(),
        "pool": entity(pool, "pool"),
        "enabled": _flag(state, "autoscaler"),
    }
    names = {
        "min": ("min_replicas", True),
        "max": ("max_replicas", True),
        "queue": ("target_queue_depth", False),
        "ttft": ("target_ttft_s", False),
        "cooldown": ("cooldown_s", False),
    }
    for option, text in words.options.items():
        field, whole = names[option]
        value = number(text, option, whole=whole, low=0)
        fields[field] = int(value) if whole else value
    return Send(command(Autoscale, **fields))


def _fault(words: _Words, new_id: Callable[[], str]) -> Parsed:
    words.need(2, "a target and a fault kind")
    words.most(2)
    target, kind = words.positional
    if kind not in FAULT_KINDS:
        raise CommandLineError(f"fault: kind {kind!r} is not one of {', '.join(FAULT_KINDS)}")
    params = {key: parameter(value) for key, value in words.options.items()}
    return Send(
        command(InjectFault, id=new_id(), target=entity(target, "target"), kind=kind, params=params)
    )


def parameter(text: str) -> int | float | bool | str:
    """A fault parameter as the agents expect it: a number or true/false if it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def _clear(words: _Words, new_id: Callable[[], str]) -> Parsed:
    words.allow()
    words.need(1, "a target")
    words.most(2)
    target, *kind = words.positional
    if kind and kind[0] not in FAULT_KINDS:
        raise CommandLineError(f"clear: kind {kind[0]!r} is not one of {', '.join(FAULT_KINDS)}")
    return Send(
        command(
            ClearFault, id=new_id(), target=entity(target, "target"), kind=kind[0] if kind else None
        )
    )


_PARSERS: dict[str, Callable[[_Words, Callable[[], str]], Parsed]] = {
    **{name: _view for name in ("racks", "nodes", "node", "pools", "fabric", "events")},
    "help": _view,
    "quit": _view,
    **{name: _node_command for name in ("cordon", "uncordon", "drain", "reboot")},
    "scale": _scale,
    "route": _route,
    "autoscale": _autoscale,
    "fault": _fault,
    "clear": _clear,
}
