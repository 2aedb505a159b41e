"""Every error aidc raises on purpose derives from protocols.errors.AidcError, so the command
line can turn any of them into one sentence and an exit code in one place."""

import importlib
import inspect
import pkgutil

import pytest

from aidc.cli import main
from protocols.errors import AidcError

PACKAGES = ("protocols", "agents", "sim", "tui", "aidc")


def _our_exceptions() -> list[type[BaseException]]:
    found = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue  # importing it runs the command line
            module = importlib.import_module(info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == info.name:
                    found.append(value)
    return found


def test_every_error_class_of_ours_has_the_one_root() -> None:
    errors = _our_exceptions()
    assert len(errors) >= 20, [e.__name__ for e in errors]
    strays = [f"{e.__module__}.{e.__name__}" for e in errors if not issubclass(e, AidcError)]
    assert not strays


@pytest.mark.parametrize(
    ("argv", "code", "sentence"),
    [
        (["agents"], 2, "aidc: give --topology FILE or --racks N (with --rack-kind)\n"),
        (["tui", "--broker", "embedded"], 2, "aidc: aidc tui attaches to a running broker, not"),
    ],
)
def test_the_command_line_says_an_aidc_error_in_one_line_with_its_code(
    argv: list[str], code: int, sentence: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith(sentence)
    assert err.count("\n") == 1
