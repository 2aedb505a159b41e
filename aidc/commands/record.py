"""`aidc record`: every message of a site, as it arrives, appended to a recording file."""

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import aiomqtt

from aidc import __version__
from aidc.commands.options import DEFAULT_TUI_BROKER, Subcommands, add_broker_options, attach
from aidc.errors import UsageError
from aidc.runtime.console import StatusLine, byte_size, duration
from aidc.runtime.signals import run_until_signalled
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.recording import RecordedMessage, RecordingHeader, RecordingWriter
from protocols.topics import ROOT

FLUSH_S = 0.2
"""What reaches the file at the latest this long after it arrived (a `kill -9` loses no more)."""
STATUS_EVERY_S = 1.0


def add_parser(sub: Subcommands) -> None:
    """`aidc record`."""
    record = sub.add_parser(
        "record",
        help="record every message of a site to a file",
        description="Append every message of a site (its time, topic, payload, QoS and "
        "retain flag) to a recording file until Ctrl-C; a crash leaves the file readable.",
    )
    add_broker_options(record, broker=DEFAULT_TUI_BROKER)
    record.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="a new file to write"
    )
    record.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Record until signalled; the exit code."""
    endpoint = attach(args, "record")
    try:
        file = args.output.open("xb")
    except FileExistsError:
        raise UsageError(f"{args.output} exists already; record to a new file") from None
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
    with file:
        return run_until_signalled(record(endpoint, args.site, file, args.output))


async def record(endpoint: Endpoint, site: str, file: BinaryIO, path: Path) -> None:
    """Append every message under `aidc/v1/{site}/` to `file` until cancelled, showing how
    many so far on a status line."""
    header = RecordingHeader(site, time.time(), endpoint.url, f"aidc {__version__}")
    writer = RecordingWriter(file, header)
    started = time.monotonic()

    @contextlib.contextmanager
    def writing() -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise UsageError(f"cannot write {path}: {error.strerror or error}") from None

    async def take(message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode()
        at = time.monotonic() - started
        with writing():
            writer.write(
                RecordedMessage(
                    at, message.topic.value, bytes(payload), message.qos, message.retain
                )
            )

    # QoS 1, so each message is delivered (and recorded) with the QoS it was published with.
    link = Link(endpoint, f"aidc-record-{os.getpid()}", subscriptions=[(f"{ROOT}/{site}/#", 1)])
    print(f"aidc record: site {site} on {endpoint.url} to {path} (Ctrl-C to stop)", flush=True)
    line = StatusLine()

    async def flush_and_report() -> None:
        shown_at = 0.0
        while True:
            await asyncio.sleep(FLUSH_S)
            with writing():
                file.flush()
            now = time.monotonic()
            if now - shown_at >= STATUS_EVERY_S:
                shown_at = now
                state = "recording" if link.connected.is_set() else "waiting for the broker"
                line.show(
                    f"{state} · {writer.messages:,} messages · {byte_size(writer.bytes)} · "
                    f"{duration(now - started)}"
                )

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(flush_and_report())
            await link.run(take)
    except* UsageError as errors:
        raise errors.exceptions[0] from None
    finally:
        with contextlib.suppress(OSError):
            file.flush()
        line.close()
        print(
            f"aidc record: {writer.messages:,} messages, {byte_size(writer.bytes)} in "
            f"{duration(time.monotonic() - started)} to {path}",
            flush=True,
        )
