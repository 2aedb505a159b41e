"""A live site for the console's tests: mosquitto, a core at 30x and agents for two HGX H100
racks and one HGX H200 rack, so two pools serve the same model."""

import asyncio
from collections.abc import Iterator

import pytest

from aidc.runtime.brokers import spawned_broker
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import PoolStates, Summary
from tests.mqtt import interrupt, running, spawn_aidc, until

SITE = "tui1"
GPUS = 3 * 32
TOPOLOGY = """
[[racks]]
kind = "hgx-h100"
count = 2

[[racks]]
kind = "hgx-h200"
count = 1
"""
COLD_START_S = 120.0
"""A fresh numba cache compiles the core's kernels before its first tick."""


async def _serving(endpoint: Endpoint) -> None:
    """Until the core sees every GPU and both 70B pools have their replicas ready."""
    watcher = Link(endpoint, "tui-tests-ready", subscriptions=[(f"aidc/v1/{SITE}/state/+", 0)])
    async with running(watcher) as inbox:

        def ready() -> bool:
            summary, pools = inbox.latest(Summary), inbox.latest(PoolStates)
            if summary is None or pools is None or summary.gpus_healthy != GPUS:
                return False
            by_name = {p.pool: p for p in pools.pools}
            return all(by_name[p].replicas_ready == 2 for p in ("llama-70b-h100", "llama-70b-h200"))

        await until(ready, timeout=COLD_START_S)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """The broker of a running site, once it serves traffic."""
    tmp = tmp_path_factory.mktemp("tui-site")
    topology = tmp / "site.toml"
    topology.write_text(TOPOLOGY)
    with spawned_broker("mosquitto") as broker:
        url = f"mqtt://127.0.0.1:{broker.port}"
        common = ("--broker", url, "--site", SITE)
        core = spawn_aidc("core", *common, "--tick", "0.2", "--speed", "30", log=tmp / "core.log")
        agents = spawn_aidc(
            "agents",
            *common,
            "--topology",
            str(topology),
            "--interval",
            "0.2",
            log=tmp / "agents.log",
        )
        endpoint = Endpoint(broker.host, broker.port, mqtt5=True)
        try:
            asyncio.run(_serving(endpoint))
            yield endpoint
        finally:
            interrupt(agents, core)
            for log in ("core.log", "agents.log"):
                text = (tmp / log).read_text(errors="replace")
                assert "Traceback" not in text, text
