"""The console's connection to a site: it follows the core's state views and events over MQTT
and sends operator commands and queries, each answered on the console's own reply topic."""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import aiomqtt

from protocols.commands import Command, Reply
from protocols.endpoint import Endpoint
from protocols.errors import MessageError
from protocols.link import Link
from protocols.messages import Events
from protocols.queries import AnswerT, EventsPage
from protocols.requests import REPLY_TIMEOUT_S, CommandFailed, Requester
from protocols.state_topics import decode_state, state_subscriptions
from protocols.topics import (
    TopicKind,
    parse_topic,
)
from tui.picture import SitePicture

C = TypeVar("C", bound=Command)

BACKFILL_EVENTS = 200
"""Recent events read back from the core on every (re)connect."""
HELD = frozenset({TopicKind.RACKS, TopicKind.FABRIC})
"""Views decoded when read rather than when they arrive (they are the big ones)."""


class _LinkNotes(logging.Handler):
    """Keeps the link's last sentence (unreachable, refused, reconnecting) for the header,
    instead of letting it reach the terminal under the dashboard."""

    def __init__(self, picture: SitePicture) -> None:
        super().__init__(logging.INFO)
        self.picture = picture

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            # a link's own sentence for its owner, without its client id, where it has one
            self.picture.link.note = getattr(record, "note", None) or record.getMessage()


class Bridge:
    """Follows one site's state into a `SitePicture` and calls `on_change(view)` for each view that
    changed; `request` sends a command and returns the core's reply."""

    def __init__(
        self,
        endpoint: Endpoint,
        site: str,
        *,
        on_change: Callable[[str], None] | None = None,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
    ) -> None:
        self.endpoint = endpoint
        self.site = site
        self.picture = SitePicture(site)
        self.on_change = on_change or (lambda _view: None)
        self.token = f"tui-{secrets.token_hex(4)}"
        """Names this console: its client id, command ids and reply topics."""
        self._tasks: set[asyncio.Task[None]] = set()
        logger = logging.Logger("aidc.tui.link")
        logger.addHandler(_LinkNotes(self.picture))
        self.link = Link(
            endpoint,
            f"aidc-{self.token}",
            subscriptions=state_subscriptions(site),
            on_connect=self._connected,
            logger=logger,
        )
        self.requester = Requester(self.link, site, self.token, timeout_s=reply_timeout_s)

    def new_id(self) -> str:
        """A command id no other console and no earlier command of this one uses."""
        return self.requester.new_id()

    async def run(self) -> None:
        """Stay connected (reconnecting as needed) until cancelled."""
        try:
            await self.link.run(self._on_message)
        finally:
            for task in self._tasks:
                task.cancel()
            self.check_link()

    def check_link(self) -> bool:
        """Bring `picture.link` up to date with the connection; whether it changed."""
        up = self.link.connected.is_set()
        if up == self.picture.link.up:
            return False
        self.picture.link.up = up
        if not up and self.picture.link.note == "connected":
            self.picture.link.note = "connection lost; reconnecting"
        self.on_change("summary")
        return True

    async def _connected(self, _session: int) -> None:
        self.picture.link.note = "connected"
        self.check_link()
        # Reading back events needs this very link's messages, which flow only once this
        # callback has returned.
        task = asyncio.create_task(self._backfill())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _backfill(self) -> None:
        with contextlib.suppress(CommandFailed):
            page = await self.query(EventsPage, limit=BACKFILL_EVENTS)
            self.picture.backfill_events(page.events)
            self.on_change("events")

    async def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        self.feed(
            message.topic.value, bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        )

    def feed(self, topic: str, payload: bytes) -> str | None:
        """Take in one message as it came off the broker; the view it changed, if any.
        A malformed message is counted and dropped, never raised."""
        try:
            if self.requester.answers(topic):
                # our reply topics are one level deeper than parse_topic's ctl/reply/{id}
                self.requester.take(payload)
                return None
            kind = parse_topic(topic).kind
            if kind in HELD:
                self.picture.hold(kind, topic, payload)
                self.on_change(kind)
                return kind
            _, message = decode_state(topic, payload)
        except (MessageError, ValueError) as error:
            self.picture.reject(topic, error)
            return None
        if isinstance(message, Events):
            self.picture.add_events(message.events)
            changed: str | None = "events"
        else:
            changed = self.picture.apply(message)
        if changed:
            self.on_change(changed)
        return changed

    @property
    def rejected(self) -> int:
        """Malformed messages dropped so far."""
        return self.picture.rejected

    @property
    def last_rejected(self) -> str:
        """Why the last one was."""
        return self.picture.last_rejected

    async def request(self, command: C) -> Reply:
        """Send a command and wait for its reply; CommandFailed if none comes."""
        self._check_live()
        return await self.requester.request(command)

    async def query(self, answer: type[AnswerT], **fields: Any) -> AnswerT:
        """The core's answer to the query that `answer` answers; CommandFailed with the core's
        reason if it refuses, or with what is wrong with an answer that is not one."""
        self._check_live()
        try:
            return await self.requester.query(answer, **fields)
        except CommandFailed as failed:
            if failed.reply is not None and failed.reply.ok:  # an answer that is not one
                self.picture.reject(self.requester.prefix + failed.reply.id, failed)
            raise

    def _check_live(self) -> None:
        """CommandFailed if what this console follows is a replay, with no core to answer."""
        if self.picture.replay:
            raise CommandFailed(
                f"a replay ({self.picture.replay}) has no core to answer; the racks, pools, "
                "fabric and events views show what was recorded"
            )
