"""The `aidc` command line: the parser of every subcommand in aidc/commands/, and `main`,
which runs the chosen one and turns every AidcError into one line and its exit code."""

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from aidc import __version__
from aidc.commands import (
    acl,
    agents,
    broker,
    core,
    demo,
    record,
    replay,
    scenario,
    tui,
    watch,
)
from aidc.runtime.console import ConsoleHandler
from protocols.errors import AidcError

SUBCOMMANDS = (broker, agents, acl, core, watch, tui, demo, scenario, record, replay)
"""In the order `aidc --help` lists them; each module has `add_parser(sub)` and `run(args)`."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `aidc` and every subcommand."""
    parser = _Parser(
        prog="aidc",
        description="A terminal control plane for a simulated AI data center.",
    )
    parser.add_argument("--version", action="version", version=f"aidc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `aidc`; return its exit code. User errors are one line on stderr, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("aidc: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        code: int = args.run(args)
    except AidcError as error:
        print(f"aidc: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return code
