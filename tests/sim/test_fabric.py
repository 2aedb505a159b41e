"""The fabric: KV streaming and weight loading on NICs, leaf ports and uplinks, congestion
when the uplinks fill, and the fabric view from port telemetry."""

import msgspec
import numpy as np

from protocols.columns import PortColumns, layout
from protocols.messages import Birth, GpuInfo, NicInfo, NodeInventory, PortInfo, Telemetry
from sim.fabric import Fabric
from sim.fleet_state import FleetState
from sim.pools import READY, Pools, PoolSpec

H100 = "NVIDIA H100 80GB HBM3"


def site() -> tuple[FleetState, Pools, Fabric]:
    fleet = FleetState()
    node = NodeInventory(
        "r1-n0",
        "gpu",
        "HGX H100",
        gpus=[GpuInfo(i, f"G{i}", H100, 81559, 700.0, "r1-n0") for i in range(8)],
        nics=[NicInfo(i, "ConnectX-7", 400.0, gpu=i, peer=f"leaf01/{i}") for i in range(8)],
    )
    fleet.on_birth(Birth("r1", "r1", 1, 0.0, 1.0, [node]), 0.0)
    leaf = NodeInventory(
        "leaf01",
        "switch",
        "SN5600",
        ports=[PortInfo(p, 800.0, f"r1-n0/nic{p}" if p < 8 else "") for p in range(64)],
    )
    fleet.on_birth(Birth("net01", "net01", 1, 0.0, 1.0, [leaf]), 0.0)
    pools = Pools(fleet)
    pools.add(PoolSpec("p", "llama-3-1-70b", H100, 8, replicas=1))
    pools.reconcile({k: np.ones(len(d.table), bool) for k, d in fleet.devices.items()}, 0.0)
    return fleet, pools, Fabric(fleet, pools)


def test_kv_streaming_lands_on_the_nics_of_the_replica_and_their_leaf_ports() -> None:
    _, pools, fabric = site()
    pools.replicas["state"][:] = READY
    load = fabric.load(np.array([10_000.0]), dt=1.0)
    expected = 10_000 * pools.pools["p"].perf.kv_bytes_per_token / 8 * 8 / 1e9
    np.testing.assert_allclose(load.nic_gbps, expected)
    assert np.all(load.port_busy[:8] > 0)
    assert load.port_busy[8:32].sum() == 0
    assert not load.nic_congestion.any()


def test_warming_replicas_load_their_weights_over_the_nics() -> None:
    _, _, fabric = site()
    load = fabric.load(np.zeros(1), dt=1.0)
    np.testing.assert_allclose(load.nic_gbps, 16.0)


def test_full_uplinks_mean_congestion_for_the_nics_behind_them() -> None:
    _, pools, fabric = site()
    pools.replicas["state"][:] = READY
    load = fabric.load(np.array([1e9]), dt=1.0)
    assert np.all(load.nic_congestion == 1.0)
    assert np.all(load.port_congestion == 1.0)


def test_the_view_reports_switches_rates_and_the_hottest_ports() -> None:
    fleet, _, fabric = site()
    spec = layout(PortColumns)
    ports: dict[str, np.ndarray] = {name: np.zeros(64) for name in spec.names}
    ports["port"] = np.arange(64)
    ports["link_state"] = np.where(np.arange(64) == 5, 0, 1)
    ports["utilization"] = np.linspace(0, 63, 64)
    message = Telemetry("net01", 1, 1, 1.0, ["leaf01"], port=layout(PortColumns).pack(ports))
    assert fleet.on_telemetry(message, 1.0) is None
    fabric.view(1.0)
    ports["ecn_marked_packets"] = np.full(64, 10.0)
    later = msgspec.structs.replace(message, seq=2, port=layout(PortColumns).pack(ports))
    assert fleet.on_telemetry(later, 2.0) is None
    view = fabric.view(3.0)
    (switch,) = view.switches
    assert (switch.switch, switch.ports_up, switch.ports) == ("leaf01", 63, 64)
    assert switch.max_utilization == 63.0
    assert switch.ecn_marks_per_s == 64 * 10 / 2
    assert view.hottest[0].port == 63
    assert view.hottest[-1].utilization < view.hottest[0].utilization


def test_nics_born_before_their_leaf_are_cabled_once_it_is_born() -> None:
    fleet = FleetState()
    fabric = Fabric(fleet, Pools(fleet))

    def rack(name: str, leaf: str) -> Birth:
        nics = [NicInfo(i, "ConnectX-7", 400.0, gpu=i, peer=f"{leaf}/{i}") for i in range(2)]
        node = NodeInventory(f"{name}-n0", "gpu", "HGX H100", nics=nics)
        return Birth(name, name, 1, 0.0, 1.0, [node])

    def leaf(name: str) -> Birth:
        ports = [PortInfo(p, 800.0, "") for p in range(4)]
        return Birth(
            name, name, 1, 0.0, 1.0, [NodeInventory(name, "switch", "SN5600", ports=ports)]
        )

    fleet.on_birth(rack("r1", "leaf01"), 0.0)
    assert fabric._nic_ports().tolist() == [-1, -1], "no leaf yet"
    fleet.on_birth(leaf("leaf01"), 0.0)
    fleet.on_birth(rack("r2", "leaf02"), 0.0)
    assert fabric._nic_ports().tolist() == [0, 1, -1, -1]
    fleet.on_birth(leaf("leaf02"), 0.0)
    fleet.on_birth(rack("r3", "leaf01"), 0.0)
    assert fabric._nic_ports().tolist() == [0, 1, 4, 5, 0, 1]
