"""Reading the core directly over MQTT, beside the console, to check what it did."""

import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiomqtt

from protocols.codec import REPLY, decode_message, encode, read_answer
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.queries import AnswerT, NodeDetail, query_for
from tests.mqtt import Inbox, running, until

T = TypeVar("T")


class Latest(Inbox):
    """Keeps replies, and only the newest state message of each type."""

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[type, object] = {}

    async def put(self, message: aiomqtt.Message) -> None:
        if "/ctl/reply/" in message.topic.value:
            await super().put(message)
            return
        _, decoded = decode_message(message.topic.value, bytes(message.payload))
        self.state[type(decoded)] = decoded


class Observer:
    """The core's state views as published, and answers to queries sent from here."""

    def __init__(self, link: Link, inbox: Latest, site: str) -> None:
        self.link, self.inbox, self.site = link, inbox, site
        self._ids = itertools.count()

    def latest(self, kind: type[T]) -> T | None:
        """The newest state message of a type."""
        found = self.inbox.state.get(kind)
        return found if isinstance(found, kind) else None

    async def query(self, kind: type[AnswerT], **fields: Any) -> AnswerT:
        """The core's answer to a query, straight from the core."""
        query = query_for(kind, f"observer-{next(self._ids)}", **fields)
        prefix = f"aidc/v1/{self.site}/ctl/reply/"

        def answer() -> AnswerT | None:
            for message in reversed(self.inbox.messages):
                if message.topic.value == prefix + query.id:
                    reply = REPLY.decode(bytes(message.payload))
                    assert reply.ok, reply.error
                    return read_answer(kind, reply)
            return None

        await self.link.publish(f"aidc/v1/{self.site}/ctl/cmd", encode(query), qos=1)
        await until(lambda: answer() is not None, timeout=10)
        result = answer()
        assert result is not None
        return result

    async def node_state(self, node: str) -> str:
        """One node's state as the core has it now."""
        return (await self.query(NodeDetail, node=node)).state


@contextlib.asynccontextmanager
async def observing(endpoint: Endpoint, site: str) -> AsyncIterator[Observer]:
    """An observer for as long as the block runs."""
    link = Link(
        endpoint,
        f"tui-tests-observer-{secrets.token_hex(3)}",
        subscriptions=[(f"aidc/v1/{site}/state/+", 0), (f"aidc/v1/{site}/ctl/reply/+", 1)],
    )
    inbox = Latest()
    async with running(link, inbox):
        yield Observer(link, inbox, site)
