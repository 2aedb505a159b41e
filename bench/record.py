"""What recording a demo site costs, and how fast a recording replays.

Run from the repo root: `.venv/bin/python bench/record.py [--seconds 30]`.

A local mosquitto carries `aidc demo --headless` (the default site: 2 GB200 NVL72, 4 HGX H100
and 2 LPU racks on a Spectrum-X fabric, 1 s ticks). Once it serves, this process records the
site for `--seconds` with `aidc record`'s own coroutine and reports the message rate, the
file's growth, its bytes per message and how much of that is framing (header, length, CRC,
time, topic, flags), and the recorder's CPU. Then it writes those messages `--repeat` times
over into one longer recording, replays that as fast as the broker takes it (`--speed 0`) to
a second mosquitto, where `aidc record` in another process records it again, and reports
the replay's rate, both processes' CPU, and whether the second recording holds every message.
"""

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidc.commands.record import record  # noqa: E402
from aidc.commands.replay import replay, survey  # noqa: E402
from aidc.runtime.brokers import spawned_broker  # noqa: E402
from aidc.site.client import SiteClient  # noqa: E402
from aidc.site.state import State  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from protocols.recording import RecordingReader, RecordingWriter  # noqa: E402

SITE = "dc1"


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU seconds a process (this one by default) has used."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def aidc(*args: str) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-m", "aidc", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def interrupt(process: "subprocess.Popen[str]") -> None:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)


def all_gpus_healthy(state: State) -> bool:
    """Whether the core's latest summary counts GPUs, all of them healthy."""
    summary = state.summary
    return summary is not None and summary.gpus > 0 and summary.gpus_healthy == summary.gpus


async def serving(endpoint: Endpoint) -> None:
    """Until the demo site's core reports every GPU healthy."""
    async with SiteClient(endpoint, SITE, "bench-ready") as client:
        await client.wait_until(all_gpus_healthy, within_s=180)


async def record_for(endpoint: Endpoint, path: Path, seconds: float) -> float:
    """Record the site for `seconds`; the CPU seconds it took."""
    with path.open("xb") as file:
        task = asyncio.create_task(record(endpoint, SITE, file, path))
        await asyncio.sleep(1.0)  # connected, the retained status in
        cpu = cpu_seconds()
        await asyncio.sleep(seconds)
        cpu = cpu_seconds() - cpu
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return cpu


async def replay_fast(endpoint: Endpoint, path: Path) -> float:
    """Replay `path` as fast as possible; the CPU seconds it took."""
    with path.open("rb") as file:
        found = survey(file, path)
        file.seek(0)
        cpu = cpu_seconds()
        await replay(endpoint, file, path, found, speed=0)
        return cpu_seconds() - cpu


def repeated(recording: Path, times: int, out: Path) -> None:
    """The recording's messages `times` over, one copy after the other, in one file."""
    with recording.open("rb") as file:
        reader = RecordingReader(file)
        messages = list(reader)
    span = messages[-1].at + 1.0
    with out.open("wb") as file:
        writer = RecordingWriter(file, reader.header)
        for i in range(times):
            for message in messages:
                writer.write(msgspec.structs.replace(message, at=message.at + i * span))


def measure(seconds: float, repeat: int, work: Path) -> None:
    recording, long, again = work / "site.rec", work / "long.rec", work / "again.rec"
    with spawned_broker("mosquitto") as source:
        demo = aidc("demo", "--headless", "--broker", f"mqtt://127.0.0.1:{source.port}")
        try:
            asyncio.run(serving(source))
            record_cpu = asyncio.run(record_for(source, recording, seconds))
        finally:
            interrupt(demo)
    with recording.open("rb") as file:
        messages = list(RecordingReader(file))
    size = recording.stat().st_size
    payload = sum(len(m.payload) for m in messages)
    span = messages[-1].at - messages[0].at

    repeated(recording, repeat, long)
    with spawned_broker("mosquitto") as target:
        url = f"mqtt://127.0.0.1:{target.port}"
        recorder = aidc("record", "--broker", url, "--site", SITE, "-o", str(again))
        time.sleep(2.0)
        recorder_cpu = cpu_seconds(recorder.pid)
        replay_cpu = asyncio.run(replay_fast(target, long))
        time.sleep(1.0)
        recorder_cpu = cpu_seconds(recorder.pid) - recorder_cpu
        interrupt(recorder)
    with again.open("rb") as file:
        copies = list(RecordingReader(file))
    wall = copies[-1].at - copies[0].at  # from the first replayed message to the last
    sent, sent_size = len(messages) * repeat, long.stat().st_size

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"aidc record/replay benchmark: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {load}), Python {platform.python_version()}\n"
    )
    print("| recorded | messages | msg/s | MB/hour | bytes/message | framing | recorder CPU |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {span:.0f} s | {len(messages):,} | {len(messages) / span:,.1f} | "
        f"{size / span * 3600 / 1e6:,.0f} | {size / len(messages):,.0f} | "
        f"{(size - payload) / len(messages):.0f} B ({(size - payload) / size:.1%}) | "
        f"{record_cpu / seconds:.1%} |"
    )
    print()
    print(
        "| replayed (speed 0) | seconds | msg/s | MB/s | replay CPU | recorder CPU | re-recorded |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {sent:,} messages, {sent_size / 1e6:,.0f} MB | {wall:.2f} | {sent / wall:,.0f} | "
        f"{sent_size / wall / 1e6:,.1f} | {replay_cpu / wall:.0%} | {recorder_cpu / wall:.0%} | "
        f"{len(copies):,} of {sent + 2:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to record")
    parser.add_argument("--repeat", type=int, default=20, help="copies replayed (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidc-bench-record-") as tmp:
        measure(args.seconds, args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
