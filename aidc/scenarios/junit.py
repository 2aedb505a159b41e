"""Scenario results as JUnit XML, the report format CI systems read: a test suite per scenario
file, a test case per step (failed, skipped or passed), an error for a file that could not run."""

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from aidc.scenarios.runner import ScenarioResult


def junit_xml(results: Sequence[ScenarioResult], broken: Sequence[tuple[Path, str]] = ()) -> str:
    """The XML of `results`, and of files that could not be read (`broken`: path, problem)."""
    root = ET.Element("testsuites", name="aidc scenarios")
    for result in results:
        _suite(root, result)
    for path, problem in broken:
        suite = _element(root, "testsuite", name=str(path), tests=1, failures=0, errors=1)
        suite.set("skipped", "0")
        case = ET.SubElement(suite, "testcase", classname=_classname(path), name="load")
        ET.SubElement(case, "error", message=problem, type="ScenarioError").text = problem
    failures = sum(1 for r in results for s in r.steps if s.outcome == "failed")
    errors = sum(1 for r in results if r.error) + len(broken)
    root.set("tests", str(sum(len(r.steps) for r in results) + len(broken)))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(root: ET.Element, result: ScenarioResult) -> None:
    scenario = result.scenario
    outcomes = [s.outcome for s in result.steps]
    suite = _element(
        root,
        "testsuite",
        name=f"{scenario.path}: {scenario.name}",
        tests=len(outcomes),
        failures=outcomes.count("failed"),
        errors=int(result.error is not None),
        skipped=outcomes.count("skipped"),
        time=f"{result.seconds:.3f}",
    )
    if result.error is not None:
        case = ET.SubElement(suite, "testcase", classname=_classname(scenario.path), name="run")
        ET.SubElement(case, "error", message=result.error, type="RunError").text = result.error
    for step in result.steps:
        case = _element(
            suite,
            "testcase",
            classname=_classname(scenario.path),
            name=f"step {step.step.number} (line {step.step.line}): {step.step}",
            time=f"{step.seconds:.3f}",
        )
        when = f"at t+{step.at:.0f} s: " if step.at is not None else ""
        if step.outcome == "failed":
            ET.SubElement(case, "failure", message=when + step.detail).text = step.detail
        elif step.outcome == "skipped":
            ET.SubElement(case, "skipped", message=step.detail)
        elif step.detail:
            ET.SubElement(case, "system-out").text = when + step.detail


def _element(parent: ET.Element, tag: str, **attributes: object) -> ET.Element:
    return ET.SubElement(parent, tag, {k: str(v) for k, v in attributes.items()})


def _classname(path: Path) -> str:
    return f"scenarios.{path.stem}"
