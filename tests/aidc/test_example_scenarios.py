"""Every example scenario in scenarios/ passes, step by step, on a manual clock."""

import dataclasses
from pathlib import Path

import pytest

from aidc.scenarios.loader import load_scenario
from aidc.scenarios.runner import run_scenario
from protocols.endpoint import Endpoint

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
async def test_the_example_passes(path: Path, broker: Endpoint) -> None:
    scenario = load_scenario(path)
    site = dataclasses.replace(scenario.site, site=f"ex-{path.stem[:20]}")
    result = await run_scenario(dataclasses.replace(scenario, site=site), broker)
    failed = [
        f"step {r.step.number} ({r.step}): {r.detail}"
        for r in result.steps
        if r.outcome != "passed"
    ]
    assert result.error is None
    assert not failed, failed
    assert len(result.steps) == len(scenario.steps)
