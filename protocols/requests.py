"""Operator commands sent to a site's core over one Link, each answered on the sender's own
reply topic: the one request/reply client of the console, a DataCenter and the tests."""

import asyncio
import itertools
from typing import Any, TypeVar

import msgspec

from protocols.codec import REPLY, encode, read_answer
from protocols.commands import Command, Query, Reply
from protocols.errors import AidcError, MessageError
from protocols.link import Link, LinkDown
from protocols.queries import AnswerT, query_for
from protocols.topics import command_topic, reply_prefix

C = TypeVar("C", bound=Command)

REPLY_TIMEOUT_S = 10.0
"""How long a command waits for the core's reply (the core answers within a tick)."""


class CommandFailed(AidcError):
    """A command the core refused (`reply` is its answer) or never answered (`reply` is None:
    the link was down or the core silent); `str()` is one sentence for the operator."""

    def __init__(self, sentence: str, reply: Reply | None = None) -> None:
        super().__init__(sentence)
        self.reply = reply


class Requester:
    """Sends commands on `link` to `site`'s core and matches each reply to its command.

    `name` names the sender: its command ids and its reply topics, which this adds to the
    link's subscriptions (so make it before the link runs). The link's owner hands every
    message on a reply topic (`answers(topic)`) to `take`.
    """

    def __init__(
        self, link: Link, site: str, name: str, *, timeout_s: float = REPLY_TIMEOUT_S
    ) -> None:
        self.link = link
        self.site = site
        self.name = name
        self.timeout_s = timeout_s
        self.prefix = f"{reply_prefix(site)}{name}/"
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._ids = itertools.count(1)
        link.subscriptions.append((f"{self.prefix}+", 1))

    def new_id(self, prefix: str = "") -> str:
        """A command id no other sender and no earlier command of this one uses."""
        return (
            f"{prefix}-{self.name}-{next(self._ids)}"
            if prefix
            else f"{self.name}-{next(self._ids)}"
        )

    def answers(self, topic: str) -> bool:
        """Whether `topic` is one of this sender's reply topics."""
        return topic.startswith(self.prefix)

    def take(self, payload: bytes) -> None:
        """A reply as it arrived; MessageError if it is malformed."""
        reply = REPLY.decode(payload)
        waiting = self._waiting.get(reply.id)
        if waiting is not None and not waiting.done():
            waiting.set_result(reply)

    async def request(self, command: C) -> Reply:
        """Send a command and wait for its reply, ok or not; CommandFailed if none comes."""
        command = msgspec.structs.replace(command, reply_to=self.prefix + command.id)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[command.id] = future
        try:
            await self.link.publish(command_topic(self.site), encode(command), qos=1)
            async with asyncio.timeout(self.timeout_s):
                return await future
        except LinkDown:
            raise CommandFailed(f"not connected to the broker {self.link.endpoint.url}") from None
        except TimeoutError:
            raise CommandFailed(
                f"no reply from the core of site {self.site} within {self.timeout_s:g} s "
                "(is `aidc core` running on this broker?)"
            ) from None
        finally:
            self._waiting.pop(command.id, None)

    async def query(self, answer: type[AnswerT], **fields: Any) -> AnswerT:
        """The core's answer to the query that `answer` (a Struct of protocols.queries, or
        PoolStates or FabricState) answers, with these filters and paging."""
        return await self.answer_to(query_for(answer, self.new_id(), **fields), answer)

    async def answer_to(self, query: Query, answer: type[AnswerT]) -> AnswerT:
        """Send a query and read its answer as `answer`; CommandFailed with the core's reason
        if it refuses, or with what is wrong with an answer that is not one."""
        reply = await self.request(query)
        if not reply.ok:
            raise CommandFailed(reply.error or f"the core refused the {query.what} query", reply)
        try:
            return read_answer(answer, reply)
        except MessageError as error:
            raise CommandFailed(str(error), reply) from None

    def cancel(self) -> None:
        """Stop waiting for every reply (the sender is closing)."""
        for future in self._waiting.values():
            future.cancel()
