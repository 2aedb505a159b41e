"""The dependency direction of DESIGN.md: protocols <- agents, sim, tui <- aidc; bench uses
them all, but not the tests."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"protocols", "agents", "sim", "tui", "aidc"}
ALLOWED = {
    "protocols": set(),
    "agents": {"protocols"},
    "sim": {"protocols"},
    "tui": {"protocols"},
    "aidc": OURS - {"aidc"},
}
TEXTUAL_ALLOWED = {"tui", "aidc"}


def imported_top_levels(package: str) -> dict[str, set[str]]:
    """Every top-level module each file of `package` imports, found by reading the source."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_layering_allows(package: str) -> None:
    for path, names in imported_top_levels(package).items():
        ours = (names & OURS) - {package}
        assert ours <= ALLOWED[package], f"{path} imports {sorted(ours - ALLOWED[package])}"
        if package not in TEXTUAL_ALLOWED:
            assert "textual" not in names, f"{path} imports textual"


def test_the_benchmarks_import_no_tests() -> None:
    for path, names in imported_top_levels("bench").items():
        assert "tests" not in names, f"{path} imports tests"


def test_importing_the_lower_layers_loads_no_textual() -> None:
    script = (
        "import importlib, pkgutil, sys\n"
        "for pkg in ('protocols', 'agents', 'sim'):\n"
        "    module = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(module.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui', 'aidc')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_scan_sees_real_imports() -> None:
    assert any("msgspec" in names for names in imported_top_levels("protocols").values())
    assert any("protocols" in names for names in imported_top_levels("aidc").values())


AIDC_ALLOWED = {
    "aidc.runtime": {"aidc.errors"},
    "aidc.site": {"aidc.errors", "aidc.runtime"},
    "aidc.scenarios": {"aidc.errors", "aidc.runtime", "aidc.site"},
    "aidc.pytest_plugin": {"aidc.errors", "aidc.runtime", "aidc.site"},
    "aidc.commands": {"aidc", "aidc.errors", "aidc.runtime", "aidc.site", "aidc.scenarios"},
    "aidc.cli": {"aidc", "aidc.errors", "aidc.runtime", "aidc.commands"},
    "aidc.__main__": {"aidc.cli"},
}
"""Inside aidc/: runtime <- site <- scenarios <- commands <- cli; only __main__ imports cli."""


def _aidc_imports() -> dict[str, set[str]]:
    """Every aidc module (dotted name) and the aidc modules it imports, at any depth."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "aidc").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module] = {name for name in names if name.split(".")[0] == "aidc"}
    return {module: {n for n in names if n in found} for module, names in found.items()}


def _area(module: str) -> str:
    """The part of aidc/ a module belongs to: its subpackage, or itself at the top."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_aidc_subsystems_import_only_downwards() -> None:
    imports = _aidc_imports()
    assert set(AIDC_ALLOWED) - {"aidc.__main__"} <= {_area(m) for m in imports}
    for module, names in imports.items():
        area = _area(module)
        if area in ("aidc", "aidc.errors"):
            assert not {_area(n) for n in names} - {"aidc"}, f"{module} imports {names}"
            continue
        reached = {_area(name) for name in names} - {area}
        assert reached <= AIDC_ALLOWED[area], f"{module} imports {sorted(reached)}"


def test_aidc_has_no_import_cycles() -> None:
    imports = _aidc_imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for name in sorted(imports[module]):
            visit(name, (*path, module))
        done.add(module)

    for module in sorted(imports):
        visit(module, ())
