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


def byte_size(count: float) -> str:
    """`512 B`, `12.3 kB`, `4.56 MB`, `1.2 GB`: three significant figures."""
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"


def duration(seconds: float) -> str:
    """`0:04`, `12:30`, `1:02:03`."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
