"""A client of one site over MQTT: it keeps the State the core publishes up to date, sends
operator commands and waits for their replies."""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

import aiomqtt

from aidc.site.state import State
from protocols.commands import OperatorCommand, Reply
from protocols.endpoint import Endpoint
from protocols.errors import AidcError, MessageError
from protocols.link import Link
from protocols.requests import Requester
from protocols.state_topics import decode_state, state_subscriptions

log = logging.getLogger("aidc.client")

CONNECT_TIMEOUT_S = 15.0


class SiteUnavailable(AidcError):
    """The broker or the core cannot be reached; `str()` is one sentence for the user."""


class SiteClient:
    """The state of `site` as its core publishes it, and a way to send it commands.

    Use as `async with SiteClient(endpoint, site) as client:`; `client.state` follows the
    core from then on, and `client.changed` is set whenever a message has updated it.
    """

    def __init__(self, endpoint: Endpoint, site: str, name: str = "client") -> None:
        self.site = site
        self.state = State()
        self.tag = f"{name}-{secrets.token_hex(4)}"
        """Names this client's connection and the reply topics of its commands."""
        self._updates = asyncio.Condition()
        self.link = Link(
            endpoint,
            f"aidc-{self.tag}",
            subscriptions=state_subscriptions(site),
        )
        self.requester = Requester(self.link, site, self.tag)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "SiteClient":
        self._task = asyncio.create_task(self.link.run(self._on_message))
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.link.connected.wait()
        except TimeoutError:
            await self.close()
            raise SiteUnavailable(
                f"could not connect to broker {self.link.endpoint.url} "
                f"within {CONNECT_TIMEOUT_S:g} s"
            ) from None
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Disconnect and stop following the site."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.requester.cancel()

    def new_id(self, prefix: str = "cmd") -> str:
        """A command id no other client uses."""
        return self.requester.new_id(prefix)

    async def command(self, command: OperatorCommand) -> Reply:
        """Send a command and return the core's reply; CommandFailed if none comes."""
        return await self.requester.request(command)

    async def wait_until(self, predicate: Callable[[State], object], within_s: float) -> None:
        """Wait until `predicate(state)` holds, checking after every message; TimeoutError
        after `within_s` real seconds."""
        async with asyncio.timeout(within_s), self._updates:
            await self._updates.wait_for(lambda: predicate(self.state))

    async def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        topic = message.topic.value
        try:
            if self.requester.answers(topic):
                self.requester.take(payload)
                return
            kind, value = decode_state(topic, payload)
        except (MessageError, ValueError) as error:
            log.warning("%s: %s", topic, error)
            return
        self.state.put(kind, value)
        async with self._updates:
            self._updates.notify_all()
