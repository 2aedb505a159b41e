"""The scale-out design's ingest (docs/scale-out.md), on the parts that run here: two ingest
processes on one MQTT shared subscription of Debian's mosquitto, fed by two real gateway
shards. Births reach both; each telemetry message reaches exactly one; together they hold
every message of every agent, with no gap in any agent's seqs."""

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.fleet import Fleet
from agents.topology import generated_site
from aidc.runtime.brokers import spawned_broker
from protocols.endpoint import Endpoint

ROOT = Path(__file__).resolve().parent.parent
SITE = "share1"
RACKS = 8  # NVL72, and the network racks' switches
INGESTS = ("a", "b")


@pytest.fixture
def mosquitto() -> Iterator[Endpoint]:
    with spawned_broker("mosquitto") as endpoint:
        yield endpoint


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_ingest_processes_share_a_gateway_fleets_telemetry(mosquitto: Endpoint) -> None:
    port = str(mosquitto.port)
    ingests = [start("-m", "tests.ingest_share", port, SITE, "aidc-ingest", n) for n in INGESTS]
    shards = []
    try:
        for ingest in ingests:
            assert ingest.stdout is not None
            assert ingest.stdout.readline().strip() == "ready", ingest.communicate()[1]
        shards = [
            start(
                *("-m", "aidc", "agents", "--broker", f"mqtt://127.0.0.1:{port}"),
                *("--site", SITE, "--racks", str(RACKS), "--interval", "0.25"),
                *("--connection", "gateway", "--shard", f"{i}/2"),
            )
            for i in range(2)
        ]
        with pytest.raises(subprocess.TimeoutExpired):
            shards[0].wait(8)  # the fleets publish for 8 s
    finally:
        for shard in shards:
            shard.send_signal(signal.SIGINT)  # clean deaths: every message sent is delivered
            shard.communicate(timeout=30)
    reports = [json.loads(ingest.communicate(timeout=30)[0].splitlines()[-1]) for ingest in ingests]

    born = reports[0]["born"]
    site = generated_site(SITE, RACKS, "nvl72")
    fleet = Fleet(site, mosquitto, connection="gateway")
    assert born == sorted(a.id for a in fleet.agents), "the racks' and network racks' births"
    assert all(r["born"] == born for r in reports), "each ingest process hears every birth"
    assert all(r["rejected"] == [] for r in reports)
    stored = [Counter(map(tuple, r["stored"])) for r in reports]
    assert all(stored), "the broker shares the telemetry between both processes"
    assert not set(stored[0]) & set(stored[1]), "no message reaches both"
    assert all(n == 1 for s in stored for n in s.values()), "nor one process twice"
    by_agent: dict[str, list[int]] = {}
    for agent, seq in sorted(stored[0] + stored[1]):
        by_agent.setdefault(agent, []).append(seq)
    assert sorted(by_agent) == born
    for agent, seqs in by_agent.items():
        assert len(seqs) > 10, f"{agent} sent {len(seqs)} messages in 8 s at 0.25 s"
        assert seqs == list(range(1, seqs[-1] + 1)), f"{agent} lost a message between them"
    sampled = {node for r in reports for node in r["nodes_sampled"]}
    assert sampled == {node for rack in site.racks for node in rack.node_ids()}, (
        "every GPU node's samples are stored in one ingest process or the other"
    )
