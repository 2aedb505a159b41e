"""The racks view's legend and figures: which devices each metric comes from, and racks of
switches, whose temperature and power nothing measures."""

import numpy as np

from tui.picture import Racks
from tui.screens.racks import legend, rack_line
from tui.widgets.heatmap import NO_DEVICES, shades


def gpu_lpu_and_switch_racks() -> Racks:
    """A GPU rack, an LPU rack and a network rack of 16 switches, as the core sends them."""
    columns = {
        "devices": [72.0, 72.0, 16.0],
        "healthy": [72.0, 72.0, 16.0],
        "cordoned": [0.0, 0.0, 0.0],
        "lost": [0.0, 0.0, 0.0],
        "utilization": [80.0, 100.0, 12.0],
        "temperature_c": [84.0, 97.0, np.nan],
        "power_kw": [90.0, 27.0, np.nan],
        "health": [0.0, 0.0, 0.0],
    }
    arrays = {name: np.array(values) for name, values in columns.items()}
    return Racks(0.0, ["r001", "r002", "net01"], arrays)


def test_a_rack_of_switches_shows_its_utilisation_and_no_temperature_or_power() -> None:
    racks = gpu_lpu_and_switch_racks()
    assert shades(racks, "utilization")[0][2] != NO_DEVICES
    for metric in ("temperature", "power"):
        levels = shades(racks, metric)[0]
        assert levels[2] == NO_DEVICES, metric
        assert NO_DEVICES not in levels[:2], metric
    assert shades(racks, "power")[2] == 90.0, "the scale ignores what is not measured"
    line = rack_line(racks, 2).plain
    assert "16 devices" in line
    assert "util 12%" in line
    assert "hottest —" in line
    assert "│  —" in line
    assert "nan" not in line


def test_the_legend_says_which_devices_each_metric_comes_from() -> None:
    everything, sensors = "GPUs, LPU chips, switches", "of GPUs, LPU chips "
    assert everything in legend("utilization", 0.0, 100.0, 3).plain
    assert everything in legend("health", 0.0, 2.0, 3).plain
    for metric in ("temperature", "power"):
        text = legend(metric, 25.0, 95.0, 3).plain
        assert sensors in text, metric
        assert "not measured" in text, metric
