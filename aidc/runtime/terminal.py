"""The terminal as it was: a program run in the foreground (the dashboard) may be killed
before it can restore the terminal's modes; this restores them whatever happened."""

import contextlib
import sys
import termios
from collections.abc import Iterator

RESET = "\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l"
"""Leave the alternate screen, show the cursor, stop mouse reports and bracketed paste."""


@contextlib.contextmanager
def kept_terminal() -> Iterator[None]:
    """Save the terminal's modes now and put them (and the screen) back on exit."""
    stdin, stdout = sys.stdin, sys.stdout
    saved = None
    with contextlib.suppress(termios.error, ValueError, OSError):
        if stdin.isatty():
            saved = termios.tcgetattr(stdin.fileno())
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error, ValueError, OSError):
                termios.tcsetattr(stdin.fileno(), termios.TCSADRAIN, saved)
                if stdout.isatty():
                    stdout.write(RESET)
                    stdout.flush()
