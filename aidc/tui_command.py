"""`aidc tui`: the operator console, attached to a site's core through its broker."""

import argparse
import logging

from aidc.brokers import running_broker


def run_tui(args: argparse.Namespace, password: str | None) -> int:
    """Run the console until the operator quits; its exit code."""
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
