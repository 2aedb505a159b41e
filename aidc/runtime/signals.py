"""A subcommand's coroutine run until it ends or the process is signalled."""

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any


def run_until_signalled(coroutine: Coroutine[Any, Any, object]) -> int:
    """Run a coroutine until it ends or SIGINT/SIGTERM arrive, then cancel it cleanly; the
    exit code shells expect: 0 if it ended, 128 + the signal's number if one stopped it
    (130 for Ctrl-C)."""
    received: list[int] = []

    async def guarded() -> None:
        task = asyncio.ensure_future(coroutine)
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(guarded())
    return 128 + received[0] if received else 0
