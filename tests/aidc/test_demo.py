"""`aidc demo` as a newcomer meets it: it starts the broker, core and fleet as processes of
their own, shows a status line (or the dashboard, in a terminal), and leaves no process
behind when quit, interrupted, hung up on, killed, or when a component crashes."""

import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import sim
from aidc.commands.demo import kernels_cached

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--racks", "1", "--rack-kind", "hgx-h100", "--speed", "20"]
START_S = 180.0
"""A first run compiles the core's kernels."""


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children(pid: int) -> list[int]:
    """Living child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def wait_until_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The pids still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


class Demo:
    """`aidc demo --headless` in its own session, its output lines collected."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aidc", "demo", "--headless", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = START_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, self.finish()
                continue
            self.out.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout:g} s: {self.out}")

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Exit code, all of stdout, all of stderr."""
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        self.process.wait(timeout)
        self.reader.join(timeout)
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return self.process.returncode, "".join(self.out), err


@pytest.fixture
def demo() -> Iterator[Demo]:
    started = Demo(*SMALL)
    try:
        started.wait_for("aidc demo: running;")
        yield started
    finally:
        if started.process.poll() is None:
            os.killpg(started.process.pid, signal.SIGKILL)
            started.process.wait()


def test_it_starts_three_processes_shows_status_and_stops_on_ctrl_c(demo: Demo) -> None:
    spawned = children(demo.process.pid)
    commands = sorted(Path(f"/proc/{p}/cmdline").read_text().split("\0")[3] for p in spawned)
    assert commands == ["agents", "broker", "core"]
    os.killpg(demo.process.pid, signal.SIGINT)
    code, out, err = demo.finish()
    assert code == 130, err  # 128 + SIGINT, as shells expect
    assert out.startswith("aidc demo: site dc1, 1 hgx-h100 racks: 32 GPUs, 20x real time\n")
    assert "aidc demo: running; watch it with 'aidc tui --broker mqtt://127.0.0.1:" in out
    assert out.endswith("aidc demo: stopped; every process it started has exited\n")
    assert "6/6 nodes ready · 32/32 GPUs" in err
    assert "Traceback" not in err
    assert wait_until_gone(spawned, timeout=1) == []


def test_a_killed_demo_takes_its_processes_with_it(demo: Demo) -> None:
    spawned = children(demo.process.pid)
    assert len(spawned) == 3
    demo.process.kill()
    demo.process.wait()
    assert wait_until_gone(spawned) == []


def test_a_crashed_core_stops_the_demo_with_one_sentence(demo: Demo) -> None:
    spawned = children(demo.process.pid)
    (core,) = [p for p in spawned if b"\0core\0" in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(core, signal.SIGKILL)
    code, out, err = demo.finish()
    assert code == 1
    assert "aidc demo: the core stopped (exit code -9): " in err
    assert "Traceback" not in err
    assert out.endswith("aidc demo: stopped; every process it started has exited\n")
    assert wait_until_gone(spawned, timeout=1) == []


def in_a_terminal(under_a_shell: bool = False) -> tuple[int, int]:
    """`aidc demo` (with its dashboard) on a pseudo-terminal: its pid (or its shell's) and the
    terminal."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: become the demo, or a shell that runs it as a user's would
        os.chdir(ROOT)
        demo = [sys.executable, "-m", "aidc", "demo", *SMALL]
        if under_a_shell:
            os.execv("/bin/sh", ["sh", "-c", " ".join(demo) + "; sleep 60"])
        os.execv(sys.executable, demo)
    return pid, terminal


def screen_until(terminal: int, pid: int, done: bytes, timeout: float = START_S) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while done not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if ready:
            try:
                seen += os.read(terminal, 65536)
            except OSError:
                break
    assert done in seen, seen[-2000:]
    return seen


def exit_code(pid: int, timeout: float = 30.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return None


@pytest.mark.broker
def test_the_dashboard_runs_in_the_terminal_and_quitting_leaves_nothing() -> None:
    pid, terminal = in_a_terminal()
    try:
        screen_until(terminal, pid, b"\x1b[?1049h")  # the dashboard took the screen
        spawned = children(pid)
        assert len(spawned) == 4, "broker, core, agents and the dashboard"
        time.sleep(1.0)
        os.write(terminal, b"q")
        screen = screen_until(terminal, pid, b"every process it started has exited", 30)
        assert b"Traceback" not in screen
        assert exit_code(pid) == 0
        assert wait_until_gone(spawned, timeout=1) == []
    finally:
        os.close(terminal)


@pytest.mark.broker
def test_a_demo_killed_under_a_shell_takes_its_dashboard_with_it() -> None:
    shell, terminal = in_a_terminal(under_a_shell=True)
    try:
        screen_until(terminal, shell, b"\x1b[?1049h")
        screen_until(terminal, shell, b"broker", 30)  # the dashboard is up
        (demo,) = children(shell)
        spawned = children(demo)
        assert len(spawned) == 4, "broker, core, agents and the dashboard"
        os.kill(demo, signal.SIGKILL)
        assert wait_until_gone(spawned) == []
        screen = screen_until(terminal, shell, b"\x1b[?1049l", 10)  # the screen given back
        assert b"Traceback" not in screen
    finally:
        os.kill(shell, signal.SIGKILL)
        os.waitpid(shell, 0)
        os.close(terminal)


@pytest.mark.broker
def test_closing_the_terminal_stops_everything() -> None:
    pid, terminal = in_a_terminal()
    screen_until(terminal, pid, b"\x1b[?1049h")
    spawned = children(pid)
    os.close(terminal)  # the terminal goes away: SIGHUP
    assert exit_code(pid) is not None
    assert wait_until_gone(spawned) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--racks", "0"], "argument --racks: '0' is not above 0"),
        (["--topology", "site.toml", "--rack-kind", "lpu"], "--rack-kind goes with --racks"),
        (["--topology", "/nonexistent.toml"], "cannot read topology /nonexistent.toml"),
        (["--broker", "mqtt://127.0.0.1:1"], "broker mqtt://127.0.0.1:1 is unreachable"),
    ],
)
def test_bad_input_is_one_sentence(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aidc", "demo", "--headless", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("aidc")]
    assert len(errors) == 1, result.stderr


def test_the_compile_warning_is_for_a_cold_numba_cache_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not kernels_cached(), "an empty cache"
    index = tmp_path / "sim" / "world.tick-100.py311.nbi"
    index.parent.mkdir()
    index.write_bytes(b"")
    assert kernels_cached()
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    places = [Path(p) / "__pycache__" for p in sim.__path__]
    assert kernels_cached() == any(any(p.glob("*.nbi")) for p in places if p.is_dir())
