"""Scenario files run one after another, as `aidc scenario run FILE...` does: each step
printed as it passes or fails, then a summary (exit code 1 if any failed; `--junit FILE`
writes JUnit XML too); `aidc scenario check FILE...` only reads them. A malformed file is
one line per problem and exit code 2, before anything runs."""

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from agents.topology import Site
from aidc.runtime.brokers import BrokerError, parse_spawn_spec
from aidc.runtime.signals import run_until_signalled
from aidc.scenarios.junit import junit_xml
from aidc.scenarios.loader import ScenarioError, load_scenario
from aidc.scenarios.model import Scenario
from aidc.scenarios.runner import ScenarioResult, StepResult, run_scenario
from protocols.endpoint import Endpoint, parse_broker_url

MARKS = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}
QUIET = ("aidc.link", "aidc.core", "aidc.agents", "aidc.client")
"""Loggers whose connection news would interleave with the steps."""


def run_files(args: argparse.Namespace, password: str | None) -> int:
    """Check, then (for `run`) run every file, on a broker that takes `password`; the exit
    code."""
    try:
        return _run(args, password)
    except BrokenPipeError:  # `aidc scenario run ... | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace, password: str | None) -> int:
    scenarios, broken = [], []
    for path in args.files:
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as error:
            broken.append((path, str(error)))
            print(f"aidc scenario: {error}", file=sys.stderr)
    if broken:
        _write_junit(args.junit, [], broken)
        return 2
    if args.action == "check":
        for scenario in scenarios:
            print(f"{scenario.path}: ok, {len(scenario.steps)} steps ({scenario.name})")
        return 0
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.site:
        scenarios = [replace(s, site=replace(s.site, site=args.site)) for s in scenarios]
    results: list[ScenarioResult] = []
    broker = _broker(args, password)
    run_until_signalled(_run_all(scenarios, broker, args.speed, results))
    _write_junit(args.junit, results, [])
    interrupted = len(results) < len(scenarios)
    print(_summary(results, len(scenarios)), flush=True)
    if interrupted:
        return 130
    return 0 if all(r.passed for r in results) else 1


def _broker(args: argparse.Namespace, password: str | None) -> str | Endpoint:
    """A spec to start a broker per scenario from, or the external broker's endpoint."""
    if parse_spawn_spec(args.broker) is not None:
        return str(args.broker)
    return parse_broker_url(args.broker, password=password, ca_file=args.ca_file)


async def _run_all(
    scenarios: list[Scenario],
    broker: str | Endpoint,
    speed: float | None,
    results: list[ScenarioResult],
) -> None:
    for scenario in scenarios:
        print(f"\n{scenario.path}: {scenario.name}", flush=True)
        print(f"  {_site(scenario.site)}, seed {scenario.seed}, {_clock(scenario, speed)}")
        try:
            result = await run_scenario(scenario, broker, _print_step, speed)
        except BrokerError as error:
            result = ScenarioResult(scenario, error=str(error))
        if result.error:
            print(f"  could not run: {result.error}", flush=True)
        verdict = "passed" if result.passed else "FAILED"
        print(f"  {verdict} in {result.seconds:.1f} s", flush=True)
        results.append(result)
        await asyncio.sleep(0)


def _print_step(result: StepResult) -> None:
    when = f"t+{result.at:.0f}s" if result.at is not None else ""
    detail = f": {result.detail}" if result.detail and result.outcome != "skipped" else ""
    step = result.step
    print(f"  {MARKS[result.outcome]}  {when:>7}  {step.number}. {step}{detail}", flush=True)


def _site(site: Site) -> str:
    kinds: dict[str, int] = {}
    for rack in site.racks:
        kinds[rack.kind.key] = kinds.get(rack.kind.key, 0) + 1
    racks = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    return f"site {site.site}: {racks} racks, {site.gpus:,} GPUs"


def _clock(scenario: Scenario, speed: float | None) -> str:
    speed = scenario.speed if speed is None else speed
    return f"{speed:g}x real time" if speed else "manual clock"


def _summary(results: list[ScenarioResult], total: int) -> str:
    passed = sum(r.passed for r in results)
    failed = [r for r in results if not r.passed]
    parts = [f"{total} scenario{'s' if total != 1 else ''}: {passed} passed"]
    if failed:
        parts.append(f"{len(failed)} failed ({', '.join(_where(r) for r in failed)})")
    if len(results) < total:
        parts.append(f"{total - len(results)} not run (interrupted)")
    return "\n" + ", ".join(parts)


def _where(result: ScenarioResult) -> str:
    failure = result.failure
    if failure is None:
        return f"{result.scenario.path}: {result.error}"
    return f"{result.scenario.path}:{failure.step.line} step {failure.step.number}"


def _write_junit(
    path: Path | None, results: list[ScenarioResult], broken: list[tuple[Path, str]]
) -> None:
    if path is None:
        return
    try:
        path.write_text(junit_xml(results, broken))
    except OSError as error:
        print(f"aidc scenario: cannot write {path}: {error.strerror}", file=sys.stderr)
