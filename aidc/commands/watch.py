"""`aidc watch`: every message of a site, decoded, one JSON line each on stdout."""

import argparse
import logging
import os
import sys
from typing import Any

import aiomqtt
import msgspec

from aidc.commands.options import Subcommands, add_broker_options, broker_password
from aidc.runtime.brokers import broker
from aidc.runtime.signals import run_until_signalled
from protocols.codec import arrays, decode_message
from protocols.columns import Columns
from protocols.errors import MessageError
from protocols.link import Link
from protocols.topics import ROOT

log = logging.getLogger("aidc.commands.watch")
_json = msgspec.json.Encoder()


def add_parser(sub: Subcommands) -> None:
    """`aidc watch`."""
    watch = sub.add_parser("watch", help="print every message of a site, decoded, as JSON lines")
    add_broker_options(watch)
    watch.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the site's messages until signalled."""
    return run_until_signalled(watch(args, broker_password(args)))


def readable(value: Any) -> Any:
    """A decoded message as JSON-ready builtins: structs as objects, columns as number lists."""
    if isinstance(value, msgspec.Struct):
        config = value.__struct_config__
        out: dict[str, Any] = {} if config.tag is None else {str(config.tag_field): config.tag}
        for name in value.__struct_fields__:
            field = getattr(value, name)
            if isinstance(field, Columns):
                record = arrays(value, name)  # type: ignore[arg-type]
                assert record is not None
                out[name] = {n: record[n].tolist() for n in record.dtype.names or ()}
            else:
                out[name] = readable(field)
        return out
    if isinstance(value, list | tuple):
        return [readable(item) for item in value]
    if isinstance(value, dict):
        return {key: readable(item) for key, item in value.items()}
    return value


async def watch(args: argparse.Namespace, password: str | None) -> None:
    """Print every message under `aidc/v1/{site}/`; report malformed ones on stderr."""
    with broker(args.broker, password=password, ca_file=args.ca_file) as endpoint:
        print(f"aidc watch: site {args.site} on {endpoint.url} (Ctrl-C to stop)", file=sys.stderr)

        async def show(message: aiomqtt.Message) -> None:
            topic = message.topic.value
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            try:
                _, decoded = decode_message(topic, payload)
                line = {"topic": topic, "retain": message.retain, "message": readable(decoded)}
            except (MessageError, ValueError) as error:
                log.warning("%s: %s", topic, error)
                return
            sys.stdout.buffer.write(_json.encode(line) + b"\n")
            sys.stdout.flush()

        link = Link(
            endpoint, f"aidc-watch-{os.getpid()}", subscriptions=[(f"{ROOT}/{args.site}/#", 0)]
        )
        await link.run(show)
