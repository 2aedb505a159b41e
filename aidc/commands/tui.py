"""`aidc tui`: the operator console, attached to a site's core through its broker."""

import argparse
import logging

from aidc.commands.options import (
    DEFAULT_TUI_BROKER,
    Subcommands,
    add_broker_options,
    broker_password,
)
from aidc.runtime.brokers import running_broker


def add_parser(sub: Subcommands) -> None:
    """`aidc tui`."""
    tui = sub.add_parser(
        "tui",
        help="attach the operator dashboard to a site",
        description="Watch a site live and drain, route and scale it from the keyboard.",
    )
    add_broker_options(tui, broker=DEFAULT_TUI_BROKER)
    tui.add_argument(
        "--read-only", action="store_true", help="watch only: every mutation is hidden and refused"
    )
    tui.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the console until the operator quits; its exit code."""
    return run_tui(args, broker_password(args))


def run_tui(args: argparse.Namespace, password: str | None) -> int:
    """Run the console with this broker password until the operator quits; its exit code."""
    endpoint = running_broker(args.broker, "tui", password=password, ca_file=args.ca_file)
    from textual.logging import TextualHandler

    from tui.app import AidcApp

    app = AidcApp(endpoint, args.site, read_only=args.read_only)
    # Log lines written to the terminal would tear the dashboard; Textual's handler keeps
    # them for `textual console` while the app runs.
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, [TextualHandler()]
    try:
        app.run()
    finally:
        root.handlers = handlers
    return app.return_code or 0
