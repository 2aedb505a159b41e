"""`aidc broker`: the embedded MQTT broker in the foreground."""

import argparse

from aidc.commands.options import Subcommands
from aidc.runtime.brokers import BrokerError
from aidc.runtime.signals import run_until_signalled


def add_parser(sub: Subcommands) -> None:
    """`aidc broker`."""
    broker = sub.add_parser("broker", help="run the embedded MQTT broker in the foreground")
    broker.add_argument("--port", type=int, default=1883, help="TCP port (default 1883)")
    broker.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    broker.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until signalled."""
    from aidc.runtime.embedded_broker import serve

    url = f"mqtt://{args.bind}:{args.port}"

    def announce() -> None:
        print(f"aidc broker: embedded MQTT 3.1.1 broker on {url} (Ctrl-C to stop)", flush=True)

    try:
        return run_until_signalled(serve(args.bind, args.port, announce))
    except OSError as error:
        raise BrokerError(str(error)) from None
