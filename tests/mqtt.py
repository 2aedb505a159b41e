"""Helpers for tests that run real links against real brokers."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import aiomqtt

from protocols.codec import decode_message
from protocols.link import Link

T = TypeVar("T")


class Inbox:
    """Collects the messages a link receives, and waits for them."""

    def __init__(self) -> None:
        self.messages: list[aiomqtt.Message] = []
        self._arrived = asyncio.Condition()

    async def put(self, message: aiomqtt.Message) -> None:
        async with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()

    def decoded(self, kind: type[T]) -> list[T]:
        """The messages of one type received so far, decoded, in arrival order."""
        out = []
        for message in self.messages:
            _, value = decode_message(message.topic.value, bytes(message.payload))
            if isinstance(value, kind):
                out.append(value)
        return out

    def latest(self, kind: type[T]) -> T | None:
        """The last message of one type, decoded, or None."""
        found = self.decoded(kind)
        return found[-1] if found else None

    def received(self, kind: type[T]) -> T:
        """The last message of one type, decoded; AssertionError if none has come yet."""
        found = self.latest(kind)
        assert found is not None, f"no {kind.__name__} received"
        return found

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[aiomqtt.Message]:
        """The first `count` messages, once they are all there."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.messages) >= count)
        return self.messages[:count]


async def until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until `predicate()` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(link: Link, inbox: Inbox | None = None) -> AsyncIterator[Inbox]:
    """Run `link` into an inbox until the block ends; wait until it is connected first."""
    inbox = inbox or Inbox()
    task = asyncio.create_task(link.run(inbox.put))
    try:
        async with asyncio.timeout(15):
            await link.connected.wait()
        yield inbox
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on a loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_listening(port: int, timeout: float = 15) -> None:
    """Wait until something listens on a loopback port."""
    deadline = time.monotonic() + timeout
    while not listening(port):
        assert time.monotonic() < deadline, f"nothing listens on {port}"
        time.sleep(0.05)


ROOT = Path(__file__).resolve().parents[1]


def spawn_aidc(*args: str, log: Path | None = None) -> subprocess.Popen[str]:
    """`python -m aidc ARGS` from the repository, in a session of its own (so a signal to its
    group reaches every child it starts); its output appended to `log`, or piped without one."""
    command = [sys.executable, "-m", "aidc", *args]
    if log is None:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    with log.open("a") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def interrupt(*processes: subprocess.Popen[str], timeout: float = 15) -> None:
    """Ctrl-C each process's session (as `spawn_aidc` starts them), then wait for them all."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
    for process in processes:
        process.wait(timeout=timeout)
