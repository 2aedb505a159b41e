"""`aidc tui` as a user starts it: bad flags are one line and exit 2; in a terminal it shows
a broker that is down and quits on `q` with exit 0."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from aidc.runtime.brokers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "embedded"], "aidc tui attaches to a running broker, not 'embedded'"),
        (["--broker", "mosquitto:1884"], "aidc tui attaches to a running broker"),
        (["--broker", "http://h"], "is not 'embedded', 'mosquitto' or an mqtt://"),
        (["--site", "DC 1"], "site 'DC 1' is not valid"),
        (["--read-only", "yes"], "unrecognized arguments: yes"),
        (["--nope"], "unrecognized arguments: --nope"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aidc", "tui", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def _read(fd: int, seconds: float, until: bytes = b"") -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until in out):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


def test_in_a_terminal_it_shows_a_broker_that_is_down_and_quits_on_q() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    tui = subprocess.Popen(
        [sys.executable, "-m", "aidc", "tui", "--broker", f"mqtt://127.0.0.1:{free_port()}"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm-256color"},
        start_new_session=True,
    )
    os.close(slave)
    try:
        shown = _read(master, 20, until=b"unreachable")
        assert b"unreachable" in shown
        os.write(master, b"q")
        assert tui.wait(10) == 0
        shown += _read(master, 1)
    finally:
        tui.kill()
        os.close(master)
    assert b"Traceback" not in shown
