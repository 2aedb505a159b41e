"""What the benchmarks read of a process from /proc: CPU seconds, resident memory, children."""

import os
from pathlib import Path

CLOCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def broker_pid() -> int:
    """The pid of this process's mosquitto child."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if "mosquitto" in Path(f"/proc/{pid}/cmdline").read_text():
                return int(pid)
    raise RuntimeError("no mosquitto child")
