"""A client of one site over MQTT: it keeps the State the core publishes up to date, sends
operator commands and waits for their replies."""

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable

import aiomqtt
import msgspec

from aidc.site.state import State
from protocols import codec
from protocols.codec import encode
from protocols.commands import OperatorCommand, Reply
from protocols.endpoint import Endpoint
from protocols.errors import MessageError
from protocols.link import Link, LinkDown
from protocols.messages import (
    CoreStatus,
    Events,
    FabricState,
    PoolStates,
    RackStates,
    Summary,
)
from protocols.topics import (
    command_topic,
    core_status_topic,
    events_topic,
    reply_prefix,
    state_filter,
)

log = logging.getLogger("aidc.client")

CONNECT_TIMEOUT_S = 15.0
REPLY_TIMEOUT_S = 10.0


class SiteUnavailable(RuntimeError):
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
        self._replies: dict[str, asyncio.Future[Reply]] = {}
        self._ids = itertools.count(1)
        self._updates = asyncio.Condition()
        self._reply_prefix = f"{reply_prefix(site)}{self.tag}/"
        self.link = Link(
            endpoint,
            f"aidc-{self.tag}",
            subscriptions=[
                (state_filter(site), 0),
                (events_topic(site), 1),
                (core_status_topic(site), 1),
                (f"{self._reply_prefix}#", 1),
            ],
        )
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
        for future in self._replies.values():
            future.cancel()

    def new_id(self, prefix: str = "cmd") -> str:
        """A command id no other client uses."""
        return f"{prefix}-{self.tag}-{next(self._ids)}"

    async def command(self, command: OperatorCommand) -> Reply:
        """Send a command and return the core's reply; SiteUnavailable if none comes."""
        command = msgspec.structs.replace(command, reply_to=f"{self._reply_prefix}{command.id}")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[command.id] = future
        try:
            await self.link.publish(command_topic(self.site), encode(command), qos=1)
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                return await future
        except LinkDown as error:
            raise SiteUnavailable(f"cannot send command {command.id}: {error}") from None
        except TimeoutError:
            raise SiteUnavailable(
                f"the core of site {self.site} did not answer command {command.id} "
                f"within {REPLY_TIMEOUT_S:g} s; is it running?"
            ) from None
        finally:
            self._replies.pop(command.id, None)

    async def wait_until(self, predicate: Callable[[State], object], within_s: float) -> None:
        """Wait until `predicate(state)` holds, checking after every message; TimeoutError
        after `within_s` real seconds."""
        async with asyncio.timeout(within_s), self._updates:
            await self._updates.wait_for(lambda: predicate(self.state))

    async def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        topic = message.topic.value
        try:
            if topic.startswith(self._reply_prefix):
                self._answered(topic.removeprefix(self._reply_prefix), codec.REPLY.decode(payload))
                return
            _, value = codec.decode_message(topic, payload)
        except (MessageError, ValueError) as error:
            log.warning("%s: %s", topic, error)
            return
        state = self.state
        if isinstance(value, Summary):
            state.summary = value
        elif isinstance(value, RackStates):
            state.racks = value
        elif isinstance(value, PoolStates):
            state.pools = value
        elif isinstance(value, FabricState):
            state.fabric = value
        elif isinstance(value, Events):
            state.events.extend(value.events)
        elif isinstance(value, CoreStatus):
            state.core = value
        async with self._updates:
            self._updates.notify_all()

    def _answered(self, command_id: str, reply: Reply) -> None:
        future = self._replies.get(command_id)
        if future is not None and not future.done():
            future.set_result(reply)
