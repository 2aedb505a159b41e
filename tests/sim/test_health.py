"""The health policy: XID severities, GPUs that fall off the bus, throttling and link flaps."""

from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.columns import Columns, GpuColumns, Layout, NicColumns, layout
from sim.fleet_state import FleetState
from sim.health import Finding, GpuBaseline, HealthPolicy, grew, scan_gpus
from tests import naive
from tests.samples import SAMPLES, TELEMETRY

BIRTH = SAMPLES["birth"][0]
GPU, NIC = layout(GpuColumns), layout(NicColumns)


def columns(spec: Layout[Any], block: Columns | None) -> dict[str, np.ndarray]:
    """A sample block's arrays, copied for a test to edit."""
    assert block is not None
    record = spec.unpack(block, "t", 2)
    return {name: record[name].copy() for name in spec.names}


class Site:
    """A rack of 2 nodes x 4 GPUs whose telemetry a test edits between ticks."""

    def __init__(self) -> None:
        self.fleet = FleetState()
        self.fleet.on_birth(BIRTH, 0.0)
        self.gpu = columns(GPU, TELEMETRY.gpu)
        self.nic = columns(NIC, TELEMETRY.nic)
        for name in ("xid_count", "DCGM_FI_DEV_THERMAL_VIOLATION"):
            self.gpu[name][:] = 0
        self.nic["link_down_events_phy"][:] = 0
        self.policy = HealthPolicy(self.fleet)
        self.seq = 0
        self.report()
        assert self.policy.check(np.ones(2, bool)) == []

    def report(self, keep: np.ndarray | None = None) -> None:
        keep = np.ones(8, bool) if keep is None else keep
        self.seq += 1
        gpu = GPU.pack({n: v[keep] for n, v in self.gpu.items()})
        message = msgspec.structs.replace(TELEMETRY, seq=self.seq, gpu=gpu, nic=NIC.pack(self.nic))
        assert self.fleet.on_telemetry(message, float(self.seq)) is None

    def findings(self) -> list[Finding]:
        self.report()
        return self.policy.check(np.ones(2, bool))


@pytest.mark.parametrize(
    ("code", "severity", "drain"),
    [
        (13, "info", False),
        (43, "info", False),
        (48, "critical", True),
        (94, "critical", True),
        (63, "warning", False),
        (999, "warning", False),
    ],
)
def test_each_xid_has_its_severity(code: int, severity: str, drain: bool) -> None:
    site = Site()
    site.gpu["xid_count"][5] += 1
    site.gpu["DCGM_FI_DEV_XID_ERRORS"][5] = code
    (finding,) = site.findings()
    assert (finding.severity, finding.drain, finding.node) == (severity, drain, "r001-n02")
    assert finding.subject == "gpu/r001-n02/1"
    assert f"XID {code}" in finding.message
    assert site.findings() == [], "an XID is reported once"


def test_repeated_row_remapping_turns_critical() -> None:
    site = Site()
    severities = []
    for _ in range(3):
        site.gpu["xid_count"][0] += 1
        site.gpu["DCGM_FI_DEV_XID_ERRORS"][0] = 64
        severities.append(site.findings()[0].severity)
    assert severities == ["warning", "warning", "critical"]


def test_a_gpu_that_stops_reporting_fell_off_the_bus() -> None:
    site = Site()
    keep = np.ones(8, bool)
    keep[2] = False
    site.report(keep)
    (finding,) = site.policy.check(np.ones(2, bool))
    assert finding.drain
    assert finding.message == "gpu/r001-n01/2 stopped reporting: it fell off the bus"
    site.report(keep)
    assert site.policy.check(np.ones(2, bool)) == []


def test_a_dead_agent_is_not_a_gpu_off_the_bus() -> None:
    site = Site()
    site.fleet.devices["gpu"].table["present"][:] = False
    assert site.policy.check(np.zeros(2, bool)) == []


def test_throttling_is_reported_when_it_starts() -> None:
    site = Site()
    site.gpu["DCGM_FI_DEV_THERMAL_VIOLATION"][3] += 500_000
    (finding,) = site.findings()
    assert finding.kind == "thermal"
    assert "thermally throttling" in finding.message
    site.gpu["DCGM_FI_DEV_THERMAL_VIOLATION"][3] += 500_000
    assert site.findings() == [], "still throttling is not news"


def test_a_tick_without_telemetry_does_not_end_throttling() -> None:
    site = Site()
    site.gpu["DCGM_FI_DEV_THERMAL_VIOLATION"][3] += 500_000
    assert [f.kind for f in site.findings()] == ["thermal"]
    assert site.policy.check(np.ones(2, bool)) == [], "no new samples since"
    site.gpu["DCGM_FI_DEV_THERMAL_VIOLATION"][3] += 500_000
    assert site.findings() == [], "still throttling is not news"


def test_a_gpu_that_stops_reporting_while_throttling_shut_down_from_heat() -> None:
    site = Site()
    site.gpu["DCGM_FI_DEV_THERMAL_VIOLATION"][2] += 500_000
    site.gpu["DCGM_FI_DEV_GPU_TEMP"][2] = 91.4
    site.findings()
    assert site.policy.check(np.ones(2, bool)) == [], "a tick without telemetry"
    keep = np.ones(8, bool)
    keep[2] = False
    site.report(keep)
    (finding,) = site.policy.check(np.ones(2, bool))
    assert (finding.kind, finding.severity, finding.drain) == ("thermal-shutdown", "critical", True)
    assert finding.message == (
        "gpu/r001-n01/2 stopped reporting while throttling at 91 C: a thermal shutdown"
    )


def test_link_flaps_are_reported() -> None:
    site = Site()
    site.nic["link_down_events_phy"][6] += 1
    (finding,) = site.findings()
    assert (finding.kind, finding.subject) == ("link-flap", "nic/r001-n02/2")


def test_no_telemetry_no_findings() -> None:
    fleet = FleetState()
    assert HealthPolicy(fleet).check(np.zeros(0, bool)) == []


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 50), st.integers(0, 2**31))
def test_grew_equals_its_naive_twin(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4, n).astype(np.uint64)
    last = rng.integers(0, 4, n).astype(np.uint64)
    twin_last = last.copy()
    np.testing.assert_array_equal(grew(values, last), naive.grew(values, twin_last))
    np.testing.assert_array_equal(last, twin_last)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 40), st.integers(0, 2**31))
def test_scan_gpus_equals_its_naive_twin(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    node = rng.integers(0, 5, n)
    baseline = GpuBaseline()
    twin: dict[str, list[object]] = {}
    for tick in range(4):
        present = rng.random(n) > 0.3
        alive = rng.random(5) > 0.3
        xid = rng.integers(0, 3, n).astype(np.uint64) + np.uint64(tick)
        thermal = rng.integers(0, 2, n).astype(np.uint64) * np.uint64(tick)
        samples = rng.integers(0, 2, n).astype(np.uint8)
        rows, found = scan_gpus(present, node, alive, xid, thermal, samples, baseline)
        if tick == 0:  # the first scan only sets the baseline
            assert rows.size == 0
            twin = {
                "gone": [bool(g) for g in ~present & alive[node]],
                "xid": xid.tolist(),
                "thermal": thermal.tolist(),
                "throttling": [False] * n,
                "samples": samples.tolist(),
            }
            continue
        twin_rows, twin_found = naive.scan_gpus(present, node, alive, xid, thermal, samples, twin)
        assert rows.tolist() == twin_rows
        assert found.tolist() == twin_found


def test_a_missing_gpu_naming_no_node_is_refused_after_the_others_are_scanned() -> None:
    present = np.array([True, False, True])
    node = np.array([0, 9, 1])
    alive = np.ones(2, np.bool_)
    zeros, samples = np.zeros(3, np.uint64), np.zeros(3, np.uint8)
    baseline = GpuBaseline()
    scan_gpus(np.ones(3, np.bool_), np.array([0, 1, 1]), alive, zeros, zeros, samples, baseline)
    with pytest.raises(ValueError, match="beyond alive_nodes"):
        scan_gpus(present, node, alive, zeros + np.uint64(1), zeros, samples, baseline)
    assert baseline.last_xid.tolist() == [1, 0, 1]  # the others were scanned
