"""What dashboards are sent: devices counted by their own state, and no stale readings."""

from protocols.columns import RackColumns, layout
from sim.views import Views
from sim.world import World
from tests.sim.test_world import run, site


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
    summary = views.summary(report, 1, 1.0, 0.0, 0)
    assert summary.nodes["failed"] == 1
    counts = (summary.gpus_healthy, summary.gpus_cordoned, summary.gpus_lost)
    assert counts == (56, 7, 1), "its 7 other GPUs are on a drained node, not lost"
    r0 = rack(views, t, "r0")
    assert (r0["healthy"], r0["cordoned"], r0["lost"]) == (24, 7, 1)
