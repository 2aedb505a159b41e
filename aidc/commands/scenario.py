"""`aidc scenario run|check FILE...`: scripted scenario files, run or only checked."""

import argparse
from pathlib import Path

from aidc.commands.options import Subcommands, add_broker_options, broker_password, positive

ACTIONS = (
    ("run", "run scenario files, each step printed as it passes or fails"),
    ("check", "read scenario files and report their mistakes, without running them"),
)


def add_parser(sub: Subcommands) -> None:
    """`aidc scenario` and its actions."""
    scenario = sub.add_parser(
        "scenario",
        help="run scripted scenario files",
        description="Run TOML scenario files: a site, its traffic and a timeline of faults, "
        "commands and expectations (see scenarios/ and docs/scenarios.md).",
    )
    actions = scenario.add_subparsers(title="actions", metavar="ACTION", required=True)
    for action, summary in ACTIONS:
        command = actions.add_parser(action, help=summary, description=summary)
        command.add_argument("files", nargs="+", type=Path, metavar="FILE")
        command.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
        command.set_defaults(run=run, action=action)
        if action == "run":
            add_broker_options(command, site=None)
            command.add_argument(
                "--speed",
                type=positive(float),
                metavar="X",
                help="run on a real clock X times faster than real time (default: the "
                "file's clock, a manual one unless it says speed)",
            )


def run(args: argparse.Namespace) -> int:
    """Check or run the files (the simulation is imported only now); the exit code."""
    from aidc.scenarios.batch import run_files

    return run_files(args, broker_password(args) if args.action == "run" else None)
