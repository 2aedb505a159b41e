"""A real Prometheus scrapes `aidc core --metrics-port` while real agents report through a real
mosquitto, and PromQL over its HTTP API counts the fleet's GPUs; a port in use is one line."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aidc.runtime.brokers import free_port, spawned_broker
from tests.mqtt import spawn_aidc, wait_listening

SITE = "prom1"
GPUS = 32
"""One HGX H100 rack: four nodes of eight GPUs."""
SWITCHES = 2
"""The fabric for its 32 NICs: a leaf and a spine, in network rack net01."""
POOLS = 7
"""The core's default pools (sim/defaults.py)."""
DEADLINE_S = 90.0
"""Core, agents and Prometheus start in about 10 s with numba's cache warm; a cold cache
compiles the core's kernels first."""


def prometheus_binary() -> str:
    """The prometheus server; CI installs it, so its absence fails rather than skips."""
    found = shutil.which("prometheus") or shutil.which("/usr/bin/prometheus")
    if found is None:
        pytest.fail(
            "the prometheus server is not installed: `apt-get install prometheus` "
            "(scripts/test.sh does)"
        )
    return found


@contextlib.contextmanager
def prometheus(tmp_path: Path, target_port: int) -> Iterator[str]:
    """Prometheus on loopback scraping the target every second; its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: aidc\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        wait_listening(port)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def wait_ready(base: str) -> None:
    """Until Prometheus says it is ready: its API answers 503 while its storage starts."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5):
                return
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def query(base: str, promql: str) -> float | None:
    """An instant PromQL query's single value, or None while it has none."""
    url = f"{base}/api/v1/query?query={urllib.parse.quote(promql)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for(base: str, promql: str, expected: float) -> None:
    deadline = time.monotonic() + DEADLINE_S
    value = None
    while (value := query(base, promql)) != expected:
        assert time.monotonic() < deadline, f"{promql} is {value}, not {expected}"
        time.sleep(0.5)


@pytest.mark.broker
def test_prometheus_counts_the_gpus_a_core_exports(tmp_path: Path) -> None:
    with spawned_broker("mosquitto") as endpoint:
        url = f"mqtt://127.0.0.1:{endpoint.port}"
        metrics_port = free_port()
        core = spawn_aidc(
            "core", "--broker", url, "--site", SITE, "--tick", "0.5",
            "--metrics-port", str(metrics_port), log=tmp_path / "core.log",
        )  # fmt: skip
        agents = spawn_aidc(
            "agents", "--broker", url, "--site", SITE, "--racks", "1",
            "--rack-kind", "hgx-h100", "--interval", "0.5", log=tmp_path / "agents.log",
        )  # fmt: skip
        try:
            wait_listening(metrics_port, timeout=DEADLINE_S)
            with prometheus(tmp_path, metrics_port) as base:
                wait_for(base, "count(DCGM_FI_DEV_GPU_TEMP)", GPUS)
                wait_for(base, 'count(DCGM_FI_DEV_POWER_USAGE{modelName=~"NVIDIA H100.*"})', GPUS)
                wait_for(base, "count(vllm:num_requests_running)", POOLS)
                wait_for(base, 'aidc_rack_devices{rack="r001"}', GPUS)
                wait_for(base, 'aidc_rack_devices{rack="net01"}', SWITCHES)
        finally:
            for process in (agents, core):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
            for process in (agents, core):
                process.wait(timeout=15)
    log = (tmp_path / "core.log").read_text()
    assert "Traceback" not in log, log
    assert f"metrics at http://127.0.0.1:{metrics_port}/metrics" in log


def test_a_metrics_port_in_use_is_one_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        core = spawn_aidc("core", "--broker", "mqtt://127.0.0.1:1", "--metrics-port", str(port))
        out, err = core.communicate(timeout=60)
    assert core.returncode == 2, out + err
    assert err == f"aidc: cannot serve metrics on 127.0.0.1:{port}: Address already in use\n"


def test_a_bad_metrics_port_is_one_line() -> None:
    core = spawn_aidc("core", "--metrics-port", "99999")
    out, err = core.communicate(timeout=60)
    assert core.returncode == 2, out + err
    assert err.strip().splitlines() == [
        "aidc core: argument --metrics-port: '99999' is not a port number (0 to 65535) "
        "(see 'aidc core --help')"
    ]
