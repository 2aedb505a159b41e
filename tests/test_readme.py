"""The README's examples work: every command example decodes, and every op has one."""

import re
import typing
from pathlib import Path

import pytest

from protocols.codec import COMMAND
from protocols.commands import OperatorCommand
from protocols.errors import MessageError

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = re.compile(r"mosquitto_pub .*-t aidc/v1/dc1/ctl/cmd -m '([^']*)'\n(?:# (.*)\n)?")
EXAMPLES = EXAMPLE.findall(README)


def test_every_operator_op_has_a_working_example() -> None:
    ops = {member.__struct_config__.tag for member in typing.get_args(OperatorCommand)}
    shown = {
        COMMAND.decode(payload.encode()).__struct_config__.tag
        for payload, error in EXAMPLES
        if not error
    }
    assert shown == ops


@pytest.mark.parametrize(("payload", "error"), [e for e in EXAMPLES if e[1]])
def test_malformed_examples_fail_as_the_readme_says(payload: str, error: str) -> None:
    with pytest.raises(MessageError) as caught:
        COMMAND.decode(payload.encode())
    assert error.endswith(str(caught.value))


def test_ci_runs_the_readme_test_command() -> None:
    ci = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci[-1] in README
