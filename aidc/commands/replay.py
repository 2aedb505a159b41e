"""`aidc replay`: a recording published again with its original timing, for a dashboard (or any
MQTT client) to watch the incident as it happened.

Every recorded message is published as it was, operator commands included: a replay refuses a
site whose retained core status says a live core is online, so nothing executes them. The core
status is rewritten to name the replay (`CoreStatus.replay`), which tells a dashboard to show
the replay as one, with commands disabled, and tells the next replay that no core is live.
"""

import argparse
import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiomqtt
import msgspec

from aidc.commands.options import (
    DEFAULT_TUI_BROKER,
    Subcommands,
    add_broker_options,
    attach,
    positive,
)
from aidc.errors import UsageError
from aidc.runtime.console import StatusLine, byte_size, duration
from aidc.runtime.signals import run_until_signalled
from protocols.codec import CORE_STATUS, encode
from protocols.endpoint import Endpoint
from protocols.errors import MessageError
from protocols.link import Link, LinkDown
from protocols.messages import CoreStatus
from protocols.recording import RecordingDamaged, RecordingError, RecordingReader
from protocols.topics import ROOT, core_status_topic

LIVE_CORE_WAIT_S = 1.0
"""How long to wait for the site's retained core status (it follows the SUBACK at once)."""
STATUS_EVERY_S = 0.5


@dataclass
class Survey:
    """What a read through a recording found."""

    messages: int = 0
    size: int = 0
    """Bytes of the file that read as whole messages."""
    duration_s: float = 0.0
    first_status: bytes | None = None
    """The first recorded core status payload, published before the replay starts."""
    damage: RecordingDamaged | None = None


def add_parser(sub: Subcommands) -> None:
    """`aidc replay`."""
    replay = sub.add_parser(
        "replay",
        help="publish a recording again, with its original timing",
        description="Publish a recording's messages to a broker at their recorded pace (or "
        "faster), so `aidc tui` shows the incident as it happened, as a replay with commands "
        "disabled. Refuses a site with a live core.",
    )
    replay.add_argument("file", type=Path, metavar="FILE", help="a file `aidc record` wrote")
    add_broker_options(
        replay,
        site=None,
        broker=DEFAULT_TUI_BROKER,
        site_help="publish under this site instead of the recorded one",
    )
    replay.add_argument(
        "--speed",
        type=positive(float, zero=True),
        default=1.0,
        metavar="X",
        help="X times the recorded pace (default 1; 0: as fast as the broker takes them)",
    )
    replay.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay the file until it ends or a signal comes; the exit code."""
    endpoint = attach(args, "replay")
    try:
        file = args.file.open("rb")
    except OSError as error:
        raise UsageError(f"cannot read {args.file}: {error.strerror}") from None
    with file:
        found = survey(file, args.file)
        file.seek(0)
        return run_until_signalled(replay(endpoint, file, args.file, found, args.speed, args.site))


def survey(file: BinaryIO, path: Path) -> Survey:
    """Read the whole recording once; UsageError if it is not one."""
    try:
        reader = RecordingReader(file)
    except RecordingError as error:
        raise UsageError(f"{path}: {error}") from None
    found = Survey()
    status_topic = core_status_topic(reader.header.site)
    try:
        for message in reader:
            found.duration_s = message.at
            if found.first_status is None and message.topic == status_topic:
                found.first_status = message.payload
    except RecordingDamaged as damage:
        found.damage = damage
    found.messages, found.size = reader.messages, reader.offset
    return found


def _replaying(payload: bytes, label: str) -> CoreStatus | None:
    """A recorded core status that names the replay; None if it does not decode."""
    try:
        return msgspec.structs.replace(CORE_STATUS.decode(payload), replay=label)
    except MessageError:
        return None


class _Player:
    """One replay's connection, clock and progress."""

    def __init__(self, endpoint: Endpoint, site: str, label: str, speed: float) -> None:
        self.endpoint = endpoint
        self.site = site
        self.label = label
        self.speed = speed
        self.status_topic = core_status_topic(site)
        self.status = CoreStatus(False, 0, replay=label)
        """The latest core status published (offline until the recording says otherwise)."""
        self.published = 0
        self.started = time.monotonic()
        self.line = StatusLine()
        self._shown_at = 0.0
        self._retained: asyncio.Future[CoreStatus] = asyncio.get_running_loop().create_future()
        # No will: a replay that dies leaves a status that still names it, which is enough
        # (and a will costs a 3 s MQTT 5 timeout on the embedded broker).
        self.link = Link(
            endpoint, f"aidc-replay-{os.getpid()}", subscriptions=[(self.status_topic, 1)]
        )

    async def stay_connected(self) -> None:
        """Keep the link up until cancelled."""
        await self.link.run(self._status_seen)

    async def _status_seen(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not self._retained.done() and isinstance(payload, bytes):
            with contextlib.suppress(MessageError):
                self._retained.set_result(CORE_STATUS.decode(payload))

    async def check_site(self) -> None:
        """Wait for the broker; UsageError if the site has a live core."""
        self.line.show(f"waiting for the broker {self.endpoint.url}")
        await self.link.connected.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LIVE_CORE_WAIT_S):
                status = await self._retained
                if status.online and not status.replay:
                    raise UsageError(
                        f"site {self.site} on {self.endpoint.url} has a live core (its retained "
                        "status says online); replay to a broker of its own or under another --site"
                    )

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish, waiting out a broker that is away (the recording's clock stops meanwhile)."""
        while True:
            try:
                await self.link.publish(topic, payload, qos=qos, retain=retain)
                return
            except LinkDown:
                down_at = time.monotonic()
                self.line.show(f"waiting for the broker {self.endpoint.url}")
                await self.link.connected.wait()
                self.started += time.monotonic() - down_at

    async def play(self, reader: RecordingReader, survey: Survey) -> None:
        """Publish the recording's messages on its clock; RecordingDamaged where it stops."""
        recorded, ours = f"{ROOT}/{reader.header.site}/", f"{ROOT}/{self.site}/"
        if survey.first_status is not None:
            self.status = _replaying(survey.first_status, self.label) or self.status
        await self.publish(self.status_topic, encode(self.status), 1, True)
        self.started = time.monotonic()
        at = 0.0
        for message in reader:
            topic = message.topic
            if topic.startswith(recorded):
                topic = ours + topic[len(recorded) :]
            payload, retain = message.payload, message.retain
            if topic == self.status_topic and (status := _replaying(payload, self.label)):
                payload, retain, self.status = encode(status), True, status
            if self.speed:
                delay = self.started + message.at / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.publish(topic, payload, message.qos, retain)
            self.published += 1
            at = message.at
            self._progress(at, survey)
        self._progress(at, survey, now=True)

    def _progress(self, at: float, survey: Survey, now: bool = False) -> None:
        """Show how far the replay is (at most every STATUS_EVERY_S unless `now`)."""
        if now or time.monotonic() - self._shown_at >= STATUS_EVERY_S:
            self._shown_at = time.monotonic()
            self.line.show(
                f"replaying · {self.published:,}/{survey.messages:,} messages · "
                f"{duration(at)}/{duration(survey.duration_s)} of the recording"
            )

    async def finish(self) -> None:
        """Leave the site's retained status saying the replay is over."""
        if self.link.connected.is_set():
            ended = msgspec.structs.replace(self.status, online=False)
            with contextlib.suppress(LinkDown):
                await self.link.publish(self.status_topic, encode(ended), qos=1, retain=True)


async def replay(
    endpoint: Endpoint,
    file: BinaryIO,
    path: Path,
    survey: Survey,
    speed: float,
    site: str | None = None,
) -> None:
    """Publish every message of the recording in `file`, `speed` times as fast as recorded
    (0: as fast as the broker takes them), under `site` (the recorded one by default)."""
    reader = RecordingReader(file)
    header = reader.header
    label = f"{path.name} at {speed:g}x" if speed else f"{path.name} as fast as possible"
    player = _Player(endpoint, site or header.site, label, speed)
    print(
        f"aidc replay: {path}: site {header.site} recorded {time.ctime(header.started)} from "
        f"{header.broker or 'a broker'}, {survey.messages:,} messages "
        f"({byte_size(survey.size)}) over {duration(survey.duration_s)}",
        flush=True,
    )
    if survey.damage is not None:
        print(f"aidc replay: {path}: {survey.damage}; replaying what comes before", flush=True)
    connection = asyncio.create_task(player.stay_connected())
    try:
        await player.check_site()
        try:
            await player.play(reader, survey)
        finally:
            await asyncio.shield(player.finish())
            player.line.close()
            print(
                f"aidc replay: {player.published:,} of {survey.messages:,} messages replayed in "
                f"{duration(time.monotonic() - player.started)}",
                flush=True,
            )
    except RecordingDamaged as damage:
        print(
            f"aidc replay: stopped at message {damage.number:,} (byte {damage.offset:,}) of "
            f"{path}, which {damage.reason}",
            flush=True,
        )
    finally:
        player.line.close()
        connection.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connection
