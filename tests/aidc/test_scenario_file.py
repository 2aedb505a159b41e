"""Scenario files: a good one reads into steps; every mistake names the file, the line and the
problem."""

from pathlib import Path

import pytest

from aidc.scenarios.actions import ChangeTraffic, SendCommand
from aidc.scenarios.conditions import EventHappened, Figures, NodeIs
from aidc.scenarios.loader import ScenarioError, load_scenario

GOOD = """\
name = "good"
seed = 4
start = 2026-03-01T15:00:00Z

[topology]
racks = [{ kind = "hgx-h100", count = 2 }]

[traffic.llama-3-1-70b]
peak_rps = 3

[[steps]]
expect = { pool = "llama-70b-h100", replicas_ready = ">= 2", ttft_p99 = "< 1" }
within = 90

[[steps]]
at = 60
inject = { target = "r001-n02", kind = "xid", code = 79, gpu = 3 }

[[steps]]
after = 5
always = { nodes = { failed = "<= 1" } }
until = 300

[[steps]]
command = { op = "drain", nodes = ["r002-n01"], grace_s = 30 }
error = "minimum available"

[[steps]]
traffic = { model = "llama-3-1-70b", burst_factor = 2, burst_s = 30 }

[[steps]]
expect = { node = "r001-n02", state = ["drained", "failed"] }

[[steps]]
expect = { event = "xid", subject = "gpu/r001-n02/3", severity = "critical" }

[[steps]]
at = 400
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_reads_into_its_steps(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.name == "good"
    assert scenario.seed == 4
    assert scenario.start == 1772377200.0
    assert scenario.site.gpus == 64
    assert scenario.pools is None, "the core's default pools"
    assert scenario.traffic is not None
    assert scenario.traffic["llama-3-1-70b"].peak_rps == 3
    assert scenario.traffic["llama-3-1-70b"].prompt_tokens_mean == 1000, "the rest as default"
    expect, inject, always, drain, burst, node, event, pause = scenario.steps
    assert isinstance(expect.expect, Figures)
    assert str(expect.expect) == (
        "pool llama-70b-h100 replicas_ready >= 2, time_to_first_token.p99 < 1"
    )
    assert (expect.within, expect.line) == (90, 11)
    assert isinstance(inject.action, SendCommand)
    assert inject.at == 60
    assert inject.action.fields == {
        "target": "r001-n02",
        "kind": "xid",
        "params": {"code": 79, "gpu": 3},
    }
    assert (always.after, always.until) == (5, 300)
    assert str(always.always) == "site nodes.failed <= 1"
    assert isinstance(drain.action, SendCommand)
    assert drain.action.error == "minimum available"
    assert isinstance(burst.action, ChangeTraffic)
    assert burst.action.burst_factor == 2
    assert node.expect == NodeIs("r001-n02", ("drained", "failed"))
    assert event.expect == EventHappened("xid", "gpu/r001-n02/3", "", "critical")
    assert (pause.at, pause.action, pause.expect, str(pause)) == (400, None, None, "wait")


MISTAKES = [
    ("seed = = 7\n", 1, "Invalid value (column 8)"),
    ("sede = 7\n", 1, "unknown key 'sede' (use name, description, seed"),
    ("[topology]\nracks = [{ kind = 'nvl73' }]\n", 1, "unknown rack kind 'nvl73'"),
    ("[[steps]]\nexpect = { pool = 'llama-70b-h100', replica_ready = 2 }\n", 2, "no field"),
    ("[[steps]]\nexpect = { pool = 'llama-70b-h101', replicas_ready = 2 }\n", 2, "no pool"),
    ("[[steps]]\ninject = { target = 'r009-n01', kind = 'xid', code = 79 }\n", 2, "no node"),
    ("[[steps]]\ninject = { target = 'r001-n01', kind = 'fire' }\n", 2, "malformed command"),
    ("[[steps]]\ncommand = { op = 'drain', nodes = ['r001-n01'], grace = 1 }\n", 2, "`grace`"),
    (
        "[[steps]]\nexpect = { gpus = 1 }\ninject = { target = 'r001-n01', kind = 'xid' }\n",
        1,
        "a step does one thing; this one has inject and expect",
    ),
    ("[[steps]]\nat = 50\n\n[[steps]]\nat = 20\n", 5, "at = 20 is before an earlier step's 50"),
    ("[[steps]]\nwithin = 5\n", 2, "within goes only with expect"),
    ("[[steps]]\nexpect = { node = 'r001-n01', state = 'broken' }\n", 2, "state 'broken'"),
    ("[[steps]]\nexpect = { gpus_lost = [1] }\n", 2, "is not a number, a string"),
    ("[[steps]]\ntraffic = { model = 'gpt-5', peak_rps = 1 }\n", 2, "traffic needs a model"),
    (
        "[[pools]]\npool = 'big'\nmodel = 'llama-3-1-405b'\nhardware = 'h100'\n"
        "tensor_parallel = 1\n\n[[steps]]\nat = 1\n",
        1,
        "does not fit on 1 x NVIDIA H100",
    ),
    (
        "[[pools]]\npool = 'p'\nmodel = 'llama-3-1-8b'\nhardware = 'h100'\n"
        "tensor_parallel = '8'\n\n[[steps]]\nat = 1\n",
        5,
        "pools #1 tensor_parallel must be a whole number",
    ),
    ("seed = 1\n", None, "a scenario needs at least one [[steps]] table"),
]


@pytest.mark.parametrize(("body", "line", "problem"), MISTAKES)
def test_a_mistake_names_the_line_and_the_problem(
    tmp_path: Path, body: str, line: int | None, problem: str
) -> None:
    topology = "" if "[topology]" in body else '[topology]\nracks = [{ kind = "hgx-h100" }]\n\n'
    path = write(tmp_path, body + "\n" + topology)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
    assert problem in message
    assert "\n" not in message


def test_a_file_that_cannot_be_read_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: cannot read it: No such file"):
        load_scenario(tmp_path / "nope.toml")


def test_the_examples_read(tmp_path: Path) -> None:
    examples = sorted((Path(__file__).parents[2] / "scenarios").glob("*.toml"))
    assert len(examples) == 6
    for path in examples:
        assert load_scenario(path).steps
