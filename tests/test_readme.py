"""The README's and docs/'s examples work: every command example decodes on its topic, every op
has one, the malformed ones fail as they say, and every link between the docs leads somewhere."""

import re
import typing
from pathlib import Path

import pytest

from protocols.codec import COMMAND, decode_message
from protocols.commands import AgentCommand, OperatorCommand
from protocols.errors import MessageError

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TOP = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")
PAGES = {
    path.relative_to(ROOT).as_posix(): path.read_text()
    for path in [*(ROOT / name for name in TOP), *sorted((ROOT / "docs").glob("*.md"))]
}
ARCHITECTURE = PAGES["docs/architecture.md"]
FLEETS = PAGES["docs/fleets.md"]
EXAMPLE = re.compile(r"mosquitto_pub .*-t aidc/v1/dc1/ctl/cmd -m '([^']*)'\n(?:# (.*)\n)?")
AGENT_EXAMPLE = re.compile(r"mosquitto_pub .*-t (aidc/v1/dc1/agentcmd/[^ ]+) -m '([^']*)'\n")
EXAMPLES = [example for text in PAGES.values() for example in EXAMPLE.findall(text)]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_operator_op_has_a_working_example() -> None:
    ops = {member.__struct_config__.tag for member in typing.get_args(OperatorCommand)}
    shown = {
        COMMAND.decode(payload.encode()).__struct_config__.tag
        for payload, error in EXAMPLE.findall(ARCHITECTURE)
        if not error
    }
    assert shown == ops


def test_every_command_example_without_an_error_decodes() -> None:
    for payload, error in EXAMPLES:
        if not error:
            COMMAND.decode(payload.encode())


@pytest.mark.parametrize(("payload", "error"), [e for e in EXAMPLES if e[1]])
def test_malformed_examples_fail_as_the_docs_say(payload: str, error: str) -> None:
    with pytest.raises(MessageError) as caught:
        COMMAND.decode(payload.encode())
    assert error.endswith(str(caught.value))


def test_the_quickstart_shows_a_malformed_command() -> None:
    assert any(error for _, error in EXAMPLE.findall(README))


def test_every_agent_command_example_decodes_on_its_topic() -> None:
    examples = AGENT_EXAMPLE.findall(FLEETS)
    shown = set()
    for topic, payload in examples:
        parsed, command = decode_message(topic, payload.encode())
        assert parsed.kind == "agentcmd", topic
        shown.add(command.__struct_config__.tag)
    agent_only = {"rebirth"}  # the core's, not an operator's drill
    ops = {member.__struct_config__.tag for member in typing.get_args(AgentCommand)}
    assert shown == ops - agent_only


def test_ci_runs_the_readme_test_command() -> None:
    ci = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci[-1] in README


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_links_between_the_docs_are_relative_and_lead_somewhere(page: str) -> None:
    for target in LINK.findall(PAGES[page]):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        assert not path.startswith("/"), f"{page}: {target} is not a relative link"
        resolved = (ROOT / page).parent / path if path else ROOT / page
        assert resolved.resolve().is_relative_to(ROOT), f"{page}: {target} leaves the repo"
        assert resolved.exists(), f"{page}: {target} leads nowhere"
        if anchor:
            assert anchor in _anchors(resolved.read_text()), f"{page}: no heading #{anchor}"
