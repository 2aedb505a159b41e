"""The suite runs on the versions it passed with: constraints.txt pins every package, the test
script installs from it, and the users' ranges in pyproject.toml stop before a breaking major."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return (
        [Requirement(r) for r in project["dependencies"]],
        [Requirement(r) for r in project["optional-dependencies"]["test"]],
    )


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_direct_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    runtime, test = _requirements()
    for requirement in runtime + test:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is out of range"


def test_the_suite_runs_on_the_pinned_versions() -> None:
    for name, version in _pins().items():
        assert metadata.version(name) == version, f"{name} is not the version constraints.txt pins"


def test_runtime_dependencies_have_an_upper_bound() -> None:
    runtime, _ = _requirements()
    for requirement in runtime:
        assert any(s.operator == "<" for s in requirement.specifier), requirement.name


def test_the_test_script_installs_from_the_constraints() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "pip install -q -c constraints.txt -e '.[test]'" in script
