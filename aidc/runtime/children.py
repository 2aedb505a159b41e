"""Child processes that never outlive their parent: `aidc` subcommands started in their own
session (a Ctrl-C reaches the parent, which stops them in order) with SIGTERM sent to them
by the kernel if the parent dies, their output kept in a log file."""

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 8.0
BOX = set("+-|=~^ ")
"""The characters of a traceback's frames and markers (an exception group's `+----`)."""
ERROR_LINE = re.compile(r"[A-Za-z_][\w.]*: \S")
"""`aidc: sentence` or `ValueError: message`."""


def die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the parent dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Child:
    """One `python -m aidc ...` in the background, its output in `log`."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it, in a session of its own."""
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aidc",
                *self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | self.env,
                preexec_fn=die_with_parent,
                start_new_session=True,
            )

    @property
    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self.process is None else self.process.returncode

    def last_words(self) -> str:
        """Why it stopped, usually: the last error sentence it logged (`aidc: ...`, or an
        exception's `Type: message`, even framed in an exception group's box), else its last
        line that is not box drawing."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [line.strip().lstrip("|").strip() for line in text.splitlines()]
        lines = [line for line in lines if line and not set(line) <= BOX]
        errors = [line for line in lines if ERROR_LINE.match(line)]
        return (errors or lines or ["no output"])[-1].removeprefix("aidc: ")

    async def stop(self) -> None:
        """SIGINT (a clean stop: agents publish their deaths), then SIGKILL after
        STOP_TIMEOUT_S."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
