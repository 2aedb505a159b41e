"""The core's Prometheus metrics: they parse, DCGM names and types are dcgm-exporter's, values
are the core's, counters never go down, and scrapes are bounded by filters or refused."""

import asyncio
import math
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from protocols.columns import GpuColumns, LpuColumns, NicColumns, PortColumns, layout
from protocols.endpoint import Endpoint
from protocols.messages import Telemetry
from sim.histogram import Histograms
from sim.metrics import DEFAULT_LIMIT, CoreMetrics, Selection, Snapshot, render
from sim.metrics_server import serving
from sim.service import CoreService
from sim.views import Pace
from tests.samples import SAMPLES, Block
from tests.sim.test_pools import hgx_rack

SITE = "m1"
REFERENCE = Path(__file__).parent / "data" / "dcgm-exporter-counters.csv"
GPUS, NICS, PORTS, LPUS = 8, 8, 64, 8
START, STEP_S = 1_764_000_000.0, 5.0
"""The sample site: rack r001 (two GB200 trays of 4 GPUs and 4 NICs), LPU node lpu1-n01 (8
chips) and switch leaf1 (64 ports, in rack net1)."""


def dcgm_exporter_types() -> dict[str, str]:
    """Every field of the reference counter lists (enabled or commented out) and its type."""
    line = re.compile(r"^#?\s*(DCGM_FI_\w+)\s*,\s*(\w+)")
    return {m[1]: m[2] for text in REFERENCE.read_text().splitlines() if (m := line.match(text))}


def columns(kind: type[Block], per_node: int, nodes: int, tick: int) -> Block:
    """A block whose counters grow with `tick` and whose gauges say where they are: 50 + 10 *
    node + index + tick (a GPU temperature of 63 is node 1's GPU 3 at tick 0)."""
    spec = layout(kind)
    rows = per_node * nodes
    node, index = np.repeat(np.arange(nodes), per_node), np.tile(np.arange(per_node), nodes)
    arrays: dict[str, Any] = {}
    for name, column in spec.columns.items():
        if column.kind == "index":
            arrays[name] = node if name == "node" else index
        elif column.kind == "counter":
            arrays[name] = 1000 * tick + np.arange(rows)
        else:
            arrays[name] = 50 + 10 * node + index + tick
    return layout(kind).pack(arrays)


def telemetry(tick: int) -> list[Telemetry]:
    """The sample site's agents report."""
    return [
        Telemetry(
            "r001",
            3,
            tick,
            0.0,
            ["r001-n01", "r001-n02"],
            gpu=columns(GpuColumns, 4, 2, tick),
            nic=columns(NicColumns, 4, 2, tick),
        ),
        Telemetry("leaf1", 1, tick, 0.0, ["leaf1"], port=columns(PortColumns, PORTS, 1, tick)),
        Telemetry("lpu1-n01", 1, tick, 0.0, ["lpu1-n01"], lpu=columns(LpuColumns, LPUS, 1, tick)),
    ]


def offline_core() -> CoreService:
    """A core (never connected) that knows the sample site."""
    core = CoreService(Endpoint("127.0.0.1", 1), SITE)
    for birth in SAMPLES["birth"]:
        if birth.gateway is None:  # the sample site: r001, lpu1 and net1's leaf1
            core.fleet.on_birth(birth, START)
    return core


def tick(core: CoreService, number: int) -> None:
    """The agents report, and the core ticks (STEP_S simulated seconds) as its service does."""
    now = START + STEP_S * number
    for message in telemetry(number):
        assert core.fleet.on_telemetry(message, now) is None
    report = core.world.tick(now, STEP_S)
    core.tick += 1
    core.build_views(report, Pace(0.0))


@pytest.fixture
def core() -> CoreService:
    core = offline_core()
    tick(core, 0)
    return core


def scrape(core: CoreService, query: str = "") -> str:
    metrics = CoreMetrics(core)
    return b"".join(render(metrics.snapshot(Selection.parse(query)))).decode()


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def test_a_scrape_parses_and_its_dcgm_names_and_types_are_dcgm_exporters(
    core: CoreService,
) -> None:
    parsed = families(scrape(core))
    reference = dcgm_exporter_types()
    dcgm = {name: f.type for name, f in parsed.items() if name.startswith("DCGM_FI_")}
    assert len(dcgm) >= 20
    for name, kind in dcgm.items():
        assert reference.get(name) == kind, (
            f"{name} is a {kind}; dcgm-exporter: {reference.get(name)}"
        )
    # what NVIDIA's dcgm-exporter dashboard plots
    for name in (
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
    ):
        assert len(parsed[name].samples) == GPUS
        for sample in parsed[name].samples:
            assert set(sample.labels) == {
                "gpu",
                "UUID",
                "device",
                "modelName",
                "Hostname",
                "rack",
                "site",
            }
    for kind, count in (("nic", NICS), ("switch_port", PORTS), ("lpu", LPUS)):
        assert [f for f in parsed if f.startswith(f"aidc_{kind}_")]
        assert all(
            len(f.samples) == count for n, f in parsed.items() if n.startswith(f"aidc_{kind}_")
        )
    assert parsed["vllm:time_to_first_token_seconds"].type == "histogram"
    assert parsed["vllm:generation_tokens"].type == "counter"
    assert parsed["vllm:num_requests_running"].type == "gauge"


def test_values_are_the_cores(core: CoreService) -> None:
    text = scrape(core)
    temps = {
        (s.labels["Hostname"], s.labels["gpu"]): s
        for s in families(text)["DCGM_FI_DEV_GPU_TEMP"].samples
    }
    sample = temps["r001-n02", "3"]
    assert sample.value == 63.0  # 50 + 10 x node 1 + GPU 3
    assert sample.labels == {
        "gpu": "3",
        "UUID": "GPU-r001-n02-3",
        "device": "nvidia3",
        "modelName": "NVIDIA GB200",
        "Hostname": "r001-n02",
        "rack": "r001",
        "site": SITE,
    }
    gpus = core.fleet.devices["gpu"]
    row = core.fleet.nodes["first_gpu"][core.fleet.nodes.rows["r001-n02"]] + 3
    assert gpus.gauge("DCGM_FI_DEV_GPU_TEMP")[row] == sample.value
    nic = next(
        s
        for s in samples(text)
        if s.name == "aidc_nic_rx_bytes_total"
        and s.labels["node"] == "r001-n01"
        and s.labels["device"] == "mlx5_2"
    )
    assert nic.value == 2
    assert nic.labels["rack"] == "r001"
    port = next(
        s
        for s in samples(text)
        if s.name == "aidc_switch_port_utilization" and s.labels["device"] == "swp5"
    )
    assert port.value == 55.0
    assert port.labels == {
        "node": "leaf1",
        "device": "swp5",
        "rack": "net1",
        "site": SITE,
    }
    nodes = {s.labels["state"]: s.value for s in families(text)["aidc_nodes"].samples}
    assert nodes["ready"] == 4  # two trays, the LPU node and the switch


@pytest.mark.slow
def test_counters_and_histograms_never_go_down(core: CoreService) -> None:
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for number in range(1, 40):
        tick(core, number)
        text = scrape(core)
        for family in text_string_to_metric_families(text):
            if family.type not in ("counter", "histogram"):
                continue
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert sample.value >= seen.get(key, 0.0), key
                seen[key] = sample.value
    counted = [
        v
        for (name, _), v in seen.items()
        if name.startswith("vllm:") and name.endswith(("_total", "_count", "_bucket"))
    ]
    assert counted
    assert all(v == int(v) for v in counted), "counters count whole requests"
    served = {k: v for k, v in seen.items() if k[0] == "vllm:generation_tokens_total"}
    assert max(served.values()) > 0, "the GB200 pool served no tokens"


def test_goodput_is_part_of_the_finished_requests(core: CoreService) -> None:
    finished = 0.0
    for number in range(1, 40):
        tick(core, number)
        assert core.views_sent is not None
        summary = core.views_sent.summary
        assert summary.goodput_rps <= summary.completed_per_s + 1e-9
        finished += summary.completed_per_s
    assert finished > 0, "no request finished"


def test_latency_histograms_count_since_the_start(core: CoreService) -> None:
    for number in range(1, 40):
        tick(core, number)
    parsed = families(scrape(core))
    for name, histograms in (
        ("vllm:time_to_first_token_seconds", core.world.ttft),
        ("vllm:e2e_request_latency_seconds", core.world.e2e),
    ):
        assert histograms.since_start is not None
        for pool, total in zip(core.world.pools.pools, histograms.since_start.total(), strict=True):
            buckets = [
                s
                for s in parsed[name].samples
                if s.labels["pool"] == pool and s.name.endswith("_bucket")
            ]
            counts = [s.value for s in buckets]
            assert counts == sorted(counts)
            assert buckets[-1].labels["le"] == "+Inf"
            assert counts[-1] == math.floor(total), "whole requests"
    assert core.world.ttft.since_start is not None
    assert core.world.ttft.since_start.total().sum() > core.world.ttft.total().sum(), "decayed"


def test_since_start_histograms_keep_what_decay_forgets() -> None:
    histograms = Histograms(2, since_start=True)
    histograms.add([0, 1, 1], [0.01, 0.2, 5.0], [1.0, 2.0, 3.0])
    histograms.decay(0.5)
    histograms.add([1], [0.2], [4.0])
    histograms.resize(3)
    assert histograms.since_start is not None
    np.testing.assert_allclose(histograms.since_start.total(), [1.0, 9.0, 0.0])
    np.testing.assert_allclose(histograms.since_start.sum_s, [0.01, 2 * 0.2 + 15.0 + 0.8, 0.0])
    np.testing.assert_allclose(histograms.total(), [0.5, 6.5, 0.0])


def test_filters_choose_racks_nodes_and_kinds(core: CoreService) -> None:
    parsed = families(scrape(core, "rack=r001"))
    assert {s.labels["Hostname"] for s in parsed["DCGM_FI_DEV_GPU_TEMP"].samples} == {
        "r001-n01",
        "r001-n02",
    }
    assert not [n for n in parsed if n.startswith(("aidc_lpu_", "aidc_switch_port_"))]
    assert {s.labels["rack"] for s in parsed["aidc_rack_devices"].samples} == {"r001"}
    parsed = families(scrape(core, "node=r001-n02&node=lpu1-n01"))
    assert {s.labels["Hostname"] for s in parsed["DCGM_FI_DEV_GPU_TEMP"].samples} == {"r001-n02"}
    assert len(parsed["aidc_lpu_temperature_c"].samples) == LPUS
    parsed = families(scrape(core, "kind=gpu,lpu"))
    assert not [n for n in parsed if n.startswith(("aidc_nic_", "aidc_switch_port_"))]
    assert len(parsed["DCGM_FI_DEV_GPU_TEMP"].samples) == GPUS
    text = scrape(core, "rack=r999")
    assert "# rack r999 is not in the fleet (yet)" in text
    assert "DCGM_FI_DEV_GPU_TEMP" not in families(text)


def test_scattered_nodes_are_copied_row_by_row_with_their_own_values(core: CoreService) -> None:
    core.fleet.on_birth(hgx_rack("r2", 4), START)  # 32 GPUs after r001's 8
    gpus = core.fleet.devices["gpu"]
    temperature = gpus.gauge("DCGM_FI_DEV_GPU_TEMP")
    temperature[:] = np.arange(len(temperature))
    parsed = families(scrape(core, "node=r001-n01&node=r2-n3"))
    seen = {
        (s.labels["Hostname"], s.labels["gpu"], s.labels["rack"]): s.value
        for s in parsed["DCGM_FI_DEV_GPU_TEMP"].samples
    }
    rows = {
        node: core.fleet.nodes["first_gpu"][core.fleet.nodes.rows[node]]
        for node in ("r001-n01", "r2-n3")
    }
    assert seen == {
        (node, str(gpu), node.split("-")[0]): float(rows[node] + gpu)
        for node in rows
        for gpu in range(4 if node == "r001-n01" else 8)
    }


def test_aggregate_mode_and_the_limit_leave_devices_out(core: CoreService) -> None:
    everything = GPUS + NICS + PORTS + LPUS
    for query, note in (
        ("aggregate=1", False),
        ("limit=20", True),
        ("aggregate=true&limit=all", False),
    ):
        text = scrape(core, query)
        parsed = families(text)
        assert not [
            n for n in parsed if n.startswith(("DCGM_", "aidc_nic", "aidc_lpu", "aidc_switch"))
        ]
        assert parsed["aidc_scrape_devices_left_out"].samples[0].value == everything
        assert ("per-device series left out" in text) == note, query
        assert parsed["aidc_rack_temperature_c"].samples
        assert parsed["vllm:e2e_request_latency_seconds"].samples
    assert "DCGM_FI_DEV_GPU_TEMP" in families(scrape(core, "limit=all"))
    assert everything <= DEFAULT_LIMIT


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("racks=r001", "unknown parameter 'racks'"),
        ("kind=cpu", "kind 'cpu' is not one of gpu, nic, port, lpu"),
        ("aggregate=maybe", "aggregate='maybe' is not 1, true, 0 or false"),
        ("aggregate=1&aggregate=0", "parameter 'aggregate' is given 2 times"),
        ("limit=-1", "limit='-1' is not a number of devices or 'all'"),
        ("rack=R%201", "rack 'R 1' is not valid"),
    ],
)
def test_bad_parameters_are_one_sentence(query: str, sentence: str) -> None:
    with pytest.raises(ValueError, match=re.escape(sentence)):
        Selection.parse(query)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


class ThreadNoting(CoreMetrics):
    """Notes the thread each snapshot is taken on."""

    threads: ClassVar[list[int]] = []

    def snapshot(self, selection: Selection) -> Snapshot:
        self.threads.append(threading.get_ident())
        return super().snapshot(selection)


async def test_the_server_answers_scrapes_and_refuses_bad_ones(core: CoreService) -> None:
    async with serving(ThreadNoting(core), "127.0.0.1", 0) as server:
        status, content_type, body = await asyncio.to_thread(get, server.url)
        assert status == 200
        assert content_type.startswith("text/plain; version=0.0.4")
        assert len(families(body)["DCGM_FI_DEV_GPU_TEMP"].samples) == GPUS
        assert ThreadNoting.threads == [threading.get_ident()], "not on the event loop's thread"
        status, _, body = await asyncio.to_thread(get, server.url + "?kind=cpu")
        assert (status, body) == (400, "kind 'cpu' is not one of gpu, nic, port, lpu.\n")
        status, _, body = await asyncio.to_thread(get, server.url.replace("/metrics", "/x"))
        assert status == 404
        assert "/metrics" in body


async def test_a_port_in_use_is_an_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            async with serving(CoreMetrics(offline_core()), "127.0.0.1", taken.getsockname()[1]):
                pass
