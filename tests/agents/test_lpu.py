"""The LPU emulator: utilisation, tokens, SRAM, power, temperature and chip failures."""

import numpy as np
import numpy.typing as npt
import pytest

from agents.catalog import GROQ_LPU, INLET_C, RACK_KINDS
from agents.lpu import C2C_ERRORS_PER_HOUR, STATUS_FAILED, STATUS_OK, LpuBank
from protocols.columns import LpuColumns, LpuLoad, layout

RACK = RACK_KINDS["lpu"]


def bank(racks: int = 1, **kwargs: object) -> LpuBank:
    rng = np.random.default_rng(4)
    return LpuBank(GROQ_LPU, racks, RACK.nodes_per_rack, RACK.lpus_per_node, rng, **kwargs)  # type: ignore[arg-type]


def load(chips: LpuBank, **fields: float | npt.NDArray[np.float64]) -> npt.NDArray[np.void]:
    out = np.zeros(chips.racks, layout(LpuLoad).record_dtype(chips.rows))
    for name, value in fields.items():
        out[name] = value
    return out


def run(chips: LpuBank, work: npt.NDArray[np.void] | None, seconds: float, dt: float = 1) -> None:
    rng = np.random.default_rng(1)
    for _ in range(round(seconds / dt)):
        chips.step(work, dt, rng)


def test_idle_chips_draw_idle_power_and_report_ok() -> None:
    chips = bank()
    run(chips, None, 600)
    w = chips.wire
    assert w.dtype == layout(LpuColumns).record_dtype(72)
    assert w["chip"][0].tolist() == [r % 8 for r in range(72)]
    assert chips.present().all()
    assert not w["utilization"].any()
    assert not w["tokens_per_second"].any()
    assert not w["sram_used_mb"].any()
    assert np.allclose(w["power_w"], GROQ_LPU.idle_power_w, rtol=0.05)
    assert np.all(w["status"] == STATUS_OK)
    idle = INLET_C + GROQ_LPU.thermal_resistance_c_per_w * GROQ_LPU.idle_power_w
    assert np.allclose(w["temperature_c"], idle, atol=1.5)


def test_work_tokens_and_sram_follow_the_load() -> None:
    chips = bank()
    busy = np.linspace(0, 1, 72)
    run(chips, load(chips, busy=busy, tokens_per_second=busy * 500, sram_mb=busy * 300), 5)
    w = chips.wire
    assert np.allclose(w["utilization"][0], 100 * busy, rtol=0.05)
    assert np.allclose(w["tokens_per_second"][0], busy * 500, rtol=1e-6)
    assert np.allclose(
        w["sram_used_mb"][0], np.minimum(busy * 300, GROQ_LPU.spec.sram_mb), rtol=1e-6
    )
    assert w["sram_used_mb"].max() == GROQ_LPU.spec.sram_mb
    assert np.all(np.diff(chips.power_w[0]) > 0)
    assert chips.power_w[0, 0] == GROQ_LPU.idle_power_w
    assert chips.power_w[0, -1] == pytest.approx(GROQ_LPU.max_power_w)


@pytest.mark.parametrize("dt", [0.5, 8.0])
def test_temperature_converges_to_the_analytical_steady_state(dt: float) -> None:
    chips = bank()
    run(chips, load(chips, busy=0.6, tokens_per_second=300), 20 * GROQ_LPU.thermal_tau_s, dt)
    steady = INLET_C + GROQ_LPU.thermal_resistance_c_per_w * chips.power_w
    assert np.allclose(chips.temperature_c, steady, atol=1e-3)
    assert steady.min() > 60


def test_a_failed_chip_stops_working_but_still_reports() -> None:
    chips = bank()
    work = load(chips, busy=0.8, tokens_per_second=400, sram_mb=200)
    run(chips, work, 5)
    node2 = np.arange(16, 24)
    chips.inject(0, node2, "lpu_chip", {"chip": 5})
    w = chips.wire
    assert w["status"][0, 21] == STATUS_FAILED
    run(chips, work, 5)
    assert chips.present().all()
    assert np.flatnonzero(w["status"][0] == STATUS_FAILED).tolist() == [21]
    assert w["utilization"][0, 21] == 0
    assert w["tokens_per_second"][0, 21] == 0
    assert chips.power_w[0, 21] == GROQ_LPU.idle_power_w
    assert w["tokens_per_second"][0, 20] == 400
    chips.clear(0, node2, "lpu_chip")
    run(chips, work, 1)
    assert np.all(w["status"] == STATUS_OK)
    assert w["tokens_per_second"][0, 21] == 400
    chips.inject(0, node2, "lpu_chip", {})
    assert np.all(w["status"][0, node2] == STATUS_FAILED)
    chips.reset(0, node2)
    assert np.all(w["status"] == STATUS_OK)


def test_chip_to_chip_errors_are_rare_and_only_grow() -> None:
    chips = bank(racks=200)
    rng = np.random.default_rng(6)
    chips.inject(0, slice(None), "lpu_chip", {})
    before = chips.wire["c2c_link_errors"].copy()
    for _ in range(100):
        chips.step(None, 10, rng)
        assert np.all(chips.wire["c2c_link_errors"] >= before)
        before = chips.wire["c2c_link_errors"].copy()
    errors = int(before.sum())
    expected = C2C_ERRORS_PER_HOUR * 1000 / 3600 * 199 * 72
    assert 0.7 * expected < errors < 1.3 * expected
    assert not before[0].any(), "failed chips make no link errors"
    chips.reset(1, slice(None))
    assert not chips.wire["c2c_link_errors"][1].any()


def test_random_chip_failures_and_bad_faults() -> None:
    chips = bank(racks=10, fault_rates={"lpu_chip": 3.6})
    run(chips, None, 100)
    expected = 720 * -np.expm1(-3.6 * 100 / 3600)
    assert 0.7 * expected < chips.failed.sum() < 1.3 * expected
    with pytest.raises(ValueError, match="chip 8"):
        chips.inject(0, slice(None), "lpu_chip", {"chip": 8})
    with pytest.raises(ValueError, match="xid"):
        chips.inject(0, slice(None), "xid", {"code": 79})
    with pytest.raises(ValueError, match="takes"):
        chips.inject(0, slice(None), "lpu_chip", {"gpu": 1})
