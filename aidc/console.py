"""One status line on stderr: redrawn in place on a terminal, an occasional line otherwise."""

import logging
import sys
import time
from typing import TextIO

BAR_WIDTH = 30
PLAIN_EVERY_S = 10.0


def progress_bar(done: int, total: int, what: str) -> str:
    """`[##########----------] 512/1000 agents`."""
    filled = BAR_WIDTH * done // max(total, 1)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done:,}/{total:,} {what}"


class StatusLine:
    """A line that shows the latest status without scrolling the terminal; log lines printed
    through `ConsoleHandler` meanwhile appear above it."""

    active: "StatusLine | None" = None

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last_plain = -PLAIN_EVERY_S
        self._shown = ""
        StatusLine.active = self

    def show(self, text: str) -> None:
        """Replace the line (on a terminal), or print it now and then (in a log)."""
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}")
            self._stream.flush()
        elif text != self._shown and time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last_plain = time.monotonic()
        self._shown = text

    def print_above(self, text: str) -> None:
        """Print a line of its own, and redraw the status under it."""
        if self._tty and self._shown:
            self._stream.write(f"\r\x1b[K{text}\n{self._shown}")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the line, so what follows starts on its own."""
        if self._tty and self._shown:
            self._stream.write("\n")
            self._stream.flush()
        StatusLine.active = None


class ConsoleHandler(logging.Handler):
    """Log records on stderr, one line each, above a status line if one is showing."""

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if StatusLine.active is not None:
            StatusLine.active.print_above(text)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
