"""`aidc scenario run` as a CI job meets it: each step printed as it passes or fails, a
summary, exit code 1 naming the failed step, valid JUnit XML, and a malformed file refused
with its line before anything runs."""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = """
seed = 2

[topology]
racks = [{ kind = "hgx-h100", count = 1 }]

[[pools]]
pool = "llama-70b-h100"
model = "llama-3-1-70b"
hardware = "h100"
tensor_parallel = 8
replicas = 2

[traffic.llama-3-1-70b]
peak_rps = 4
"""
PASSING = f"""name = "a node is cordoned"
{SITE}
[[steps]]
expect = {{ pool = "llama-70b-h100", replicas_ready = 2 }}
within = 60

[[steps]]
command = {{ op = "cordon", nodes = ["r001-n04"] }}

[[steps]]
expect = {{ node = "r001-n04", state = "cordoned" }}
"""
FAILING = f"""name = "a drain below the minimum"
{SITE}
[[steps]]
command = {{ op = "scale", pool = "llama-70b-h100", replicas = 3 }}

[[steps]]
name = "four replicas, which one rack cannot hold"
expect = {{ pool = "llama-70b-h100", replicas_ready = 4 }}
within = 45

[[steps]]
command = {{ op = "cordon", nodes = ["r001-n01"] }}
"""

BREAKING = f"""name = "an invariant broken by a scale"
{SITE}
[[steps]]
always = {{ pool = "llama-70b-h100", replicas_desired = 2 }}

[[steps]]
at = 5
command = {{ op = "scale", pool = "llama-70b-h100", replicas = 1 }}

[[steps]]
at = 20
"""


def line_of(text: str, words: str) -> int:
    """The 1-based line of the first line holding `words`."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if words in line)


def scenario(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aidc", "scenario", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )


@pytest.mark.broker
def test_steps_a_summary_an_exit_code_and_junit(tmp_path: Path) -> None:
    passing, failing = tmp_path / "passing.toml", tmp_path / "failing.toml"
    breaking = tmp_path / "breaking.toml"
    passing.write_text(PASSING)
    failing.write_text(FAILING)
    breaking.write_text(BREAKING)
    junit = tmp_path / "out.xml"
    result = scenario("run", *map(str, (passing, failing, breaking)), "--junit", str(junit))
    out = result.stdout
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{passing}: a node is cordoned" in out
    assert re.search(r"\n  pass +t\+\d+s  2\. cordon \(nodes=r001-n04\): ok\n", out)
    assert re.search(
        r"  pass +t\+\d+s  3\. expect node r001-n04 cordoned within 60 s: r001-n04 was cordoned\n",
        out,
    )
    assert (
        "  FAIL    t+45s  2. four replicas, which one rack cannot hold: not met within 45 s: "
        "replicas_ready was 3\n" in out
    )
    assert "  skip           3. cordon (nodes=r001-n01)\n" in out
    assert "  FAIL     t+6s  1. always pool llama-70b-h100 replicas_desired == 2: stopped " in out
    assert "holding: replicas_desired was 1\n" in out
    step = line_of(FAILING, "four replicas") - 1
    broken = line_of(BREAKING, "always") - 1
    assert out.rstrip().endswith(
        f"3 scenarios: 1 passed, 2 failed ({failing}:{step} step 2, {breaking}:{broken} step 1)"
    )

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "2", "0")
    suites = root.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "1", "1"]
    assert suites[1].get("skipped") == "1"
    failure = next(root.iter("failure"))
    assert failure.get("message") == "at t+45 s: not met within 45 s: replicas_ready was 3"
    cases = suites[1].findall("testcase")
    assert (
        cases[1].get("name") == f"step 2 (line {step}): four replicas, which one rack cannot hold"
    )
    assert cases[2].find("skipped") is not None


def test_a_malformed_file_is_one_line_and_nothing_runs(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(PASSING)
    text = PASSING.replace('state = "cordoned"', 'state = "cordonned"')
    bad.write_text(text)
    junit = tmp_path / "out.xml"
    result = scenario("run", str(good), str(bad), "--junit", str(junit))
    assert result.returncode == 2
    assert result.stdout == ""
    line = line_of(text, "cordonned")
    assert result.stderr == (
        f"aidc scenario: {bad}:{line}: state 'cordonned' is not one of ready, cordoned, "
        "draining, drained, lost, failed\n"
    )
    (error,) = ET.parse(junit).getroot().iter("error")
    assert "state 'cordonned'" in (error.get("message") or "")


def test_check_reads_the_examples_without_running_them() -> None:
    examples = sorted(str(p) for p in (ROOT / "scenarios").glob("*.toml"))
    result = scenario("check", *examples)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok, ") == len(examples) == 6
