"""The racks view: every rack's GPUs, LPU chips and switches, and what each of them measures."""

import numpy as np

from protocols.codec import arrays
from protocols.messages import Birth, NodeInventory, PortInfo
from sim.fleet_state import DeviceTable
from sim.views import Views
from sim.world import World
from tests.sim.test_world import lpu_rack, run, site


def network_rack(rack: str) -> Birth:
    """Two four-port switches."""
    ports = [PortInfo(i, 800.0) for i in range(4)]
    switches = [NodeInventory(name, "switch", "SN5600", ports=ports) for name in ("leaf1", "leaf2")]
    return Birth(rack, rack, 1, 0.0, 1.0, switches)


def report(devices: DeviceTable, **gauges: float | np.ndarray) -> None:
    """Every device of a kind reports these gauges."""
    for name, value in gauges.items():
        devices.table["gauges"][devices.gauges.index(name)] = value


def mixed_site() -> tuple[World, float]:
    """Two GPU racks, an LPU rack whose chips are half busy at 97 C and 375 W, and a network
    rack of two switches with ports 10-40% busy on the first; the time a tick later."""
    world = site()
    world.fleet.on_birth(lpu_rack("l0"), 0.0)
    world.fleet.on_birth(network_rack("net01"), 0.0)
    fleet = world.fleet
    report(fleet.devices["lpu"], utilization=50.0, temperature_c=97.0, power_w=375.0)
    report(fleet.devices["port"], utilization=np.array([10.0, 20, 30, 40, 0, 0, 0, 0]))
    _, t = run(world, 0.0, 1.0)
    return world, t


def test_racks_count_gpus_lpu_chips_and_switches() -> None:
    world, t = mixed_site()
    message = Views(world).racks(t)
    record = arrays(message, "columns")
    assert record is not None
    rack = {name: i for i, name in enumerate(message.racks)}
    assert record["devices"].tolist() == [32, 32, 72, 2]
    assert record["healthy"][rack["l0"]] == 72
    assert record["healthy"][rack["net01"]] == 2
    l0, net = rack["l0"], rack["net01"]
    assert record["utilization"][l0] == 50.0
    assert record["temperature_c"][l0] == 97.0
    assert record["power_kw"][l0] == np.float32(72 * 375 / 1000)
    assert record["utilization"][net] == (25.0 + 0.0) / 2, "each switch its ports' mean"
    assert np.isnan(record["temperature_c"][net]), "switches report no temperature"
    assert np.isnan(record["power_kw"][net]), "nor power"
    assert record["health"].tolist() == [0, 0, 0, 0], "only a GPU's heat makes a warning"
