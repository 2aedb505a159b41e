"""What the console says about commands: the question before sending one, and the core's
reply as one notification."""

from typing import Literal, assert_never

from protocols.commands import (
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

SHOWN = 3
"""Targets named before `and N more`."""

Level = Literal["information", "warning", "error"]


def listed(names: list[str]) -> str:
    """`r001-n01`, `r001-n01 and r001-n02`, `r001-n01, r001-n02, r001-n03 and 5 more`."""
    if len(names) > SHOWN:
        return f"{', '.join(names[:SHOWN])} and {len(names) - SHOWN} more"
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _nodes(names: list[str]) -> str:
    return f"{'node' if len(names) == 1 else f'{len(names)} nodes'} {listed(names)}"


def action(command: OperatorCommand) -> str:
    """What a command does, as a clause: `drain node r001-n01 (grace 300 s)`."""
    match command:
        case Cordon():
            return f"cordon {_nodes(command.nodes)}"
        case Uncordon():
            return f"uncordon {_nodes(command.nodes)}"
        case Drain():
            force = ", force" if command.force else ""
            return f"drain {_nodes(command.nodes)} (grace {command.grace_s:g} s{force})"
        case Reboot():
            return f"reboot {_nodes(command.nodes)}"
        case Scale():
            return f"scale pool {command.pool} to {command.replicas} replicas"
        case Route():
            split = ", ".join(f"{pool} {weight:g}%" for pool, weight in command.weights.items())
            return f"route model {command.model}: {split}"
        case Autoscale():
            if not command.enabled:
                return f"turn the autoscaler of pool {command.pool} off"
            targets = [f"{command.min_replicas}-{command.max_replicas} replicas"]
            if command.target_queue_depth is not None:
                targets.append(f"queue {command.target_queue_depth:g} per replica")
            if command.target_ttft_s is not None:
                targets.append(f"TTFT p99 under {command.target_ttft_s:g} s")
            targets.append(f"cooldown {command.cooldown_s:g} s")
            return f"turn the autoscaler of pool {command.pool} on ({', '.join(targets)})"
        case InjectFault():
            params = ", ".join(f"{k}={v}" for k, v in command.params.items())
            return f"inject a {command.kind} fault on {command.target}" + (
                f" ({params})" if params else ""
            )
        case ClearFault():
            return f"clear {command.kind or 'every'} fault on {command.target}"
        case Query():
            return f"query {command.what}"
        case _:
            assert_never(command)


def question(command: OperatorCommand) -> str:
    """The confirmation asked before sending: `Drain node r001-n01 (grace 300 s)?`."""
    text = action(command)
    return f"{text[0].upper()}{text[1:]}?"


def answer(command: OperatorCommand, reply: Reply) -> tuple[str, Level]:
    """The core's reply as a notification and its severity; a refusal says why."""
    if not reply.ok:
        return f"Refused: {action(command)}: {reply.error or 'no reason given'}", "error"
    result = reply.result or {}
    detail = ""
    states = result.get("nodes")
    if isinstance(states, dict):
        detail = "; now " + ", ".join(
            f"{node} {state}" for node, state in list(states.items())[:SHOWN]
        )
        if len(states) > SHOWN:
            detail += f" and {len(states) - SHOWN} more"
    partial = result.get("partial")
    if isinstance(partial, str):
        return f"Done, in part: {action(command)}: {partial}", "warning"
    return f"Done: {action(command)}{detail}", "information"
