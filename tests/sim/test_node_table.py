"""The nodes view: per-node figures from whole arrays, filters, sort order and paging."""

import msgspec
import numpy as np

from protocols.commands import Cordon, Query
from protocols.messages import NicInfo
from protocols.queries import NodeDetail
from sim.node_table import nodes_page
from sim.views import Views
from sim.world import World
from tests.sim.test_pools import hgx_rack
from tests.sim.test_rack_view import mixed_site
from tests.sim.test_world import run, site


def with_nics(world: World) -> World:
    """The site's racks born again, each node with one ConnectX-7 per GPU."""
    for rack in world.fleet.racks.ids:
        birth = hgx_rack(rack, 4)
        nodes = [
            msgspec.structs.replace(
                node, nics=[NicInfo(i, "ConnectX-7", 400.0, gpu=i) for i in range(8)]
            )
            for node in birth.nodes
        ]
        world.fleet.on_birth(msgspec.structs.replace(birth, nodes=nodes), 0.0)
    return world


def query(**fields: object) -> Query:
    return Query(id="q", what="nodes", **fields)  # type: ignore[arg-type]


def test_rows_carry_each_nodes_figures_and_its_pool() -> None:
    world = site()
    _, t = run(world, 0.0, 60.0)
    page = nodes_page(world, query(limit=1000), t, np.zeros(0))
    assert page.total == 8
    rows = {row.node: row for row in page.nodes}
    allocated = sum(row.allocated for row in rows.values())
    assert allocated == 3 * 8, "three replicas of eight GPUs each"
    held = [row for row in rows.values() if row.allocated]
    assert all(row.pool == "a" and row.kind == "gpu" for row in held)
    assert all(row.healthy == row.gpus == 8 for row in rows.values())
    assert [row.node for row in page.nodes] == sorted(rows)


def test_filters_sort_and_pages() -> None:
    world = site()
    _, t = run(world, 0.0, 30.0)
    world.control.handle(Cordon(id="c", nodes=["r1-n2"]), t)
    assert nodes_page(world, query(state="cordoned"), t, np.zeros(0)).total == 1
    assert nodes_page(world, query(rack="r1"), t, np.zeros(0)).total == 4
    assert nodes_page(world, query(rack="nowhere"), t, np.zeros(0)).total == 0
    assert nodes_page(world, query(filter="n3"), t, np.zeros(0)).total == 2
    assert nodes_page(world, query(pool="a"), t, np.zeros(0)).total == 3
    by_state = nodes_page(world, query(sort="state", descending=True), t, np.zeros(0)).nodes
    assert by_state[-1].state == "cordoned"
    first, second = (
        nodes_page(world, query(sort="node", offset=o, limit=3), t, np.zeros(0)).nodes
        for o in (0, 3)
    )
    assert len(first) == len(second) == 3
    assert first[-1].node < second[0].node


def test_nic_load_adds_up_per_node() -> None:
    world = with_nics(site())
    _, t = run(world, 0.0, 10.0)
    nics = len(world.fleet.devices["nic"].table)
    page = nodes_page(world, query(sort="nic_gbps", descending=True), t, np.full(nics, 2.5))
    assert nics == 64
    assert page.nodes[0].nic_gbps == 2.5 * 8


def test_node_detail_lists_devices_and_nics() -> None:
    world = with_nics(site())
    _, t = run(world, 0.0, 10.0)
    views = Views(world)
    detail = views.query(Query(id="d", what="node", node="r0-n1"), t)
    assert isinstance(detail, NodeDetail)
    assert detail.node == "r0-n1"
    assert len(detail.devices) == 8
    assert [nic.nic for nic in detail.nics] == list(range(8))
    (row,) = nodes_page(world, query(filter="r0-n1"), t, views.nic_gbps).nodes
    figures = {name: getattr(detail, name) for name in row.__struct_fields__}
    assert figures == msgspec.structs.asdict(row), "one node's figures as the list has them"
    assert "link_down_events_phy" in detail.nics[0].counters


def test_lpu_nodes_and_switches_count_their_own_devices() -> None:
    world, t = mixed_site()
    rows = {r.node: r for r in nodes_page(world, query(limit=1000), t, np.zeros(0)).nodes}
    chips = next(r for r in rows.values() if r.kind == "lpu")
    assert (chips.gpus, chips.healthy) == (8, 8)
    assert (chips.utilization, chips.temperature_c, chips.power_w) == (50.0, 97.0, 3000.0)
    leaf = rows["leaf1"]
    assert (leaf.kind, leaf.gpus, leaf.utilization) == ("switch", 4, 25.0)
    assert leaf.temperature_c is None, "a switch reports no temperature"
    assert leaf.power_w is None, "nor power"
    assert rows["r1-n0"].temperature_c is not None
