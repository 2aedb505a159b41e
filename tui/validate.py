"""Operator input checked before anything is sent: ids, numbers, and whole commands built
against the wire contract's own limits, each problem one sentence."""

import math
import re
from typing import Any, TypeVar

import msgspec

from protocols.commands import Command
from protocols.errors import AidcError
from protocols.ids import check_id

C = TypeVar("C", bound=Command)

_AT = re.compile(r"^(.*) - at `\$\.?([^`]*)`$")


class InvalidInput(AidcError, ValueError):
    """Input the operator can fix; `str()` says what is wrong with it."""


def entity(text: str, what: str = "node") -> str:
    """A node, pool, model or switch id, or InvalidInput saying why it is not one."""
    try:
        return check_id(text, what)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def number(
    text: str,
    what: str,
    *,
    whole: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """A number typed by the operator, within [low, high]; whole if asked."""
    text = text.strip()
    try:
        value = float(int(text)) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f"{what} {text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number")
    if low is not None and value < low:
        raise InvalidInput(f"{what} must be at least {low:g}, not {value:g}")
    if high is not None and value > high:
        raise InvalidInput(f"{what} must be at most {high:g}, not {value:g}")
    return value


def command(cls: type[C], /, **fields: Any) -> C:
    """A command checked as the core would check it (limits, patterns, sums)."""
    try:
        return msgspec.convert(fields, cls)
    except msgspec.ValidationError as error:
        raise InvalidInput(readable(str(error))) from None


def readable(reason: str) -> str:
    """msgspec's `Expected int >= 0 - at $.replicas` as `replicas: expected int >= 0`."""
    match = _AT.match(reason)
    if match is None:
        return reason
    problem, where = match.groups()
    problem = problem.replace("`", "")
    return f"{where}: {problem[0].lower()}{problem[1:]}"
