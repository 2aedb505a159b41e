"""What dashboards are sent: devices counted by their own state, and no stale readings."""

import pytest

from protocols.columns import RackColumns, layout
from protocols.commands import Query
from protocols.queries import NodeDetail
from sim.views import Pace, Views
from sim.world import World
from tests.sim.test_world import run, site

GAUGES = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP")
LIVE = dict(zip(GAUGES, (50.0, 300.0, 60.0), strict=True))
STALE = dict(zip(GAUGES, (100.0, 673.0, 80.0), strict=True))
"""Every GPU's readings, and the last ones of a GPU that then fell off the bus."""


def with_readings(world: World, gone: int) -> None:
    """Every GPU reads LIVE but GPU `gone`, which stopped reporting after reading STALE."""
    gpus = world.fleet.devices["gpu"]
    for name, value in LIVE.items():
        gpus.gauge(name)[:] = value
        gpus.gauge(name)[gone] = STALE[name]
    gpus.table["present"][gone] = False


def first_gpu(world: World, node: str) -> int:
    """The row of a node's first GPU."""
    return int(world.fleet.nodes["first_gpu"][world.fleet.nodes.rows[node]])


def rack(views: Views, now: float, name: str) -> dict[str, float]:
    """One rack's figures as the racks view sends them."""
    states = views.racks(now)
    record = layout(RackColumns).unpack(states.columns, "racks", len(states.racks))
    r = states.racks.index(name)
    return {key: float(record[key][r]) for key in layout(RackColumns).names}


def test_a_failed_node_loses_only_its_missing_gpu() -> None:
    world = site()
    _, t = run(world, 0.0, 10.0)
    world.fleet.devices["gpu"].table["present"][first_gpu(world, "r0-n1") + 3] = False
    report, t = run(world, t, 0.5)  # the health policy drains the node
    views = Views(world)
    summary = views.summary(report, 1, 1.0, Pace(0.0), 0)
    assert summary.nodes["failed"] == 1
    counts = (summary.gpus_healthy, summary.gpus_cordoned, summary.gpus_lost)
    assert counts == (56, 7, 1), "its 7 other GPUs are on a drained node, not lost"
    r0 = rack(views, t, "r0")
    assert (r0["healthy"], r0["cordoned"], r0["lost"]) == (24, 7, 1)


def test_a_gpu_that_does_not_report_shows_no_readings_and_figures_skip_it() -> None:
    world = site()
    _, t = run(world, 0.0, 10.0)
    gone = first_gpu(world, "r0-n1") + 3
    with_readings(world, gone)
    views = Views(world)
    detail = views.query(Query(id="d", what="node", node="r0-n1"), t)
    assert isinstance(detail, NodeDetail)
    readings = [set(device.gauges) & set(LIVE) for device in detail.devices]
    assert readings[3] == set(), "no readings from a GPU that does not report"
    assert all(reading == set(LIVE) for i, reading in enumerate(readings) if i != 3)
    assert (detail.utilization, detail.power_w) == (50.0, 7 * 300.0)
    assert detail.temperature_c == 60.0
    r0 = rack(views, t, "r0")
    assert r0["utilization"] == 50.0
    assert r0["temperature_c"] == 60.0
    assert r0["power_kw"] == pytest.approx(31 * 0.3)
    report, _ = run(world, t, 0.5)
    assert views.summary(report, 1, 1.0, Pace(0.0), 0).power_w == pytest.approx(63 * 300.0)


def test_a_silent_nodes_last_samples_are_not_live() -> None:
    world = site()
    _, t = run(world, 0.0, 10.0)
    with_readings(world, first_gpu(world, "r1-n1"))
    row = world.fleet.nodes.rows["r1-n2"]
    world.fleet.nodes["seen"][row] = t - 3600.0  # lost: its agent has gone quiet
    views = Views(world)
    detail = views.query(Query(id="d", what="node", node="r1-n2"), t)
    assert isinstance(detail, NodeDetail)
    assert detail.state == "lost"
    assert all(not set(device.gauges) & set(LIVE) for device in detail.devices)
    assert detail.power_w is None, "nothing measured it"
    assert rack(views, t, "r1")["power_kw"] == pytest.approx(23 * 0.3)
    assert rack(views, t, "r1")["lost"] == 9
