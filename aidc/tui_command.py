"""`aidc tui`: the operator console, attached to a site's core through its broker."""

import argparse
import logging

from aidc.brokers import parse_spawn_spec
from aidc.errors import UsageError
from protocols.endpoint import parse_broker_url


def run_tui(args: argparse.Namespace, password: str | None) -> int:
    """Run the console until the operator quits; its exit code."""
    if parse_spawn_spec(args.broker) is not None:
        raise UsageError(
            f"aidc tui attaches to a running broker, not {args.broker!r}: give the core's "
            "--broker mqtt://HOST:PORT"
        )
    try:
        endpoint = parse_broker_url(args.broker, password=password, ca_file=args.ca_file)
    except ValueError as error:
        raise UsageError(str(error)) from None
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
