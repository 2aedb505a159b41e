"""The GPU emulator: power, clocks, temperature, throttling, counters and faults."""

import copy

import numpy as np
import numpy.typing as npt
import pytest

from agents.catalog import INLET_C, RACK_KINDS
from agents.gpu import DRIVER_RESERVED_MIB, THERMAL_HYSTERESIS_C, GpuBank
from protocols.columns import GpuColumns, GpuLoad, layout

H100 = RACK_KINDS["hgx-h100"]
COUNTERS = [n for n, c in layout(GpuColumns).columns.items() if c.kind == "counter"]


def bank(racks: int = 1, kind: str = "hgx-h100", seed: int = 7, **kwargs: object) -> GpuBank:
    k = RACK_KINDS[kind]
    assert k.gpu is not None
    rng = np.random.default_rng(seed)
    return GpuBank(k.gpu, racks, k.nodes_per_rack, k.gpus_per_node, rng, **kwargs)  # type: ignore[arg-type]


def load(gpus: GpuBank, **fields: float | npt.NDArray[np.floating]) -> npt.NDArray[np.void]:
    out = np.zeros(gpus.racks, layout(GpuLoad).record_dtype(gpus.rows))
    for name, value in fields.items():
        out[name] = value
    return out


def run(gpus: GpuBank, work: npt.NDArray[np.void] | None, seconds: float, dt: float) -> None:
    rng = np.random.default_rng(1)
    for _ in range(round(seconds / dt)):
        gpus.step(work, dt, rng)


FULL = {"busy": 1.0, "tensor": 1.0, "dram": 0.8, "memory_mib": 60000.0}


def test_the_wire_is_one_record_per_rack_in_wire_layout() -> None:
    gpus = bank(racks=3, kind="nvl72")
    assert gpus.wire.shape == (3,)
    assert gpus.wire.dtype == layout(GpuColumns).record_dtype(72)
    assert gpus.wire["DCGM_FI_DEV_POWER_USAGE"].shape == (3, 72)
    assert gpus.wire["node"][2].tolist() == [r // 4 for r in range(72)]
    assert gpus.wire["gpu"][1].tolist() == [r % 4 for r in range(72)]
    run(gpus, None, 1, 1)
    block = layout(GpuColumns).pack_record(gpus.wire[1])
    back = layout(GpuColumns).unpack(block, "gpu", 18)
    assert np.array_equal(back["DCGM_FI_DEV_GPU_TEMP"], gpus.wire["DCGM_FI_DEV_GPU_TEMP"][1])


def test_idle_with_no_assignment_is_plausible() -> None:
    gpus = bank()
    run(gpus, None, 300, 1)
    w, m = gpus.wire, H100.gpu
    assert m is not None
    assert gpus.present().all()
    assert w["DCGM_FI_DEV_GPU_UTIL"].min() >= 0
    assert w["DCGM_FI_DEV_GPU_UTIL"].max() < 10
    assert 1 <= w["DCGM_FI_DEV_GPU_UTIL"].mean() < 6
    assert np.allclose(w["DCGM_FI_DEV_POWER_USAGE"], m.idle_power_w, rtol=0.15)
    assert np.all(w["DCGM_FI_DEV_FB_USED"] == DRIVER_RESERVED_MIB)
    assert np.all(w["DCGM_FI_DEV_FB_FREE"] == m.spec.memory_mib - DRIVER_RESERVED_MIB)
    assert np.all(w["DCGM_FI_DEV_GPU_TEMP"] > INLET_C)
    assert np.all(w["DCGM_FI_DEV_GPU_TEMP"] < 45)
    assert np.all(w["DCGM_FI_DEV_MEMORY_TEMP"] > w["DCGM_FI_DEV_GPU_TEMP"])
    assert np.all(w["DCGM_FI_DEV_SM_CLOCK"] < m.spec.sm_clock_max_mhz / 2)
    assert np.all(w["DCGM_FI_DEV_MEM_CLOCK"] == m.mem_clock_mhz)
    assert np.all(w["DCGM_FI_DEV_POWER_VIOLATION"] == 0)
    assert np.all(w["DCGM_FI_DEV_THERMAL_VIOLATION"] == 0)
    assert np.all(w["DCGM_FI_DEV_XID_ERRORS"] == 0)
    assert np.all(w["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] > 0)


@pytest.mark.parametrize(("tensor", "dram"), [(0.0, 0.0), (0.5, 0.7), (1.0, 1.0)])
def test_power_rises_monotonically_with_utilisation(tensor: float, dram: float) -> None:
    gpus = bank()
    m = H100.gpu
    assert m is not None
    powers = []
    for busy in np.linspace(0, 1, 41):
        run(gpus, load(gpus, busy=busy, tensor=tensor, dram=dram), 0.1, 0.1)
        powers.append(gpus.power_w.copy())
    steps = np.diff(np.array(powers), axis=0)
    assert np.all(steps >= -1e-3)
    assert np.all(powers[-1] > powers[0] + 100)
    assert np.all(powers[-1] <= m.power_limit_w * 1.0001)
    assert not gpus.throttled.any()


def test_power_above_the_limit_lowers_the_clock_and_counts_violation() -> None:
    gpus = bank()
    m = H100.gpu
    assert m is not None
    run(gpus, load(gpus, **FULL), 10, 0.5)
    w = gpus.wire
    assert np.allclose(gpus.power_w, m.power_limit_w, rtol=1e-4)
    assert np.all(w["DCGM_FI_DEV_SM_CLOCK"] < m.spec.sm_clock_max_mhz * 0.99)
    assert np.all(w["DCGM_FI_DEV_SM_CLOCK"] > m.spec.sm_clock_max_mhz * 0.9)
    assert np.all(w["DCGM_FI_DEV_POWER_VIOLATION"] == 10_000_000)
    assert np.all(w["DCGM_FI_DEV_THERMAL_VIOLATION"] == 0)
    assert np.all(w["DCGM_FI_PROF_SM_ACTIVE"] < 1)
    assert np.all(w["DCGM_FI_PROF_SM_ACTIVE"] > 0.9)
    run(gpus, load(gpus, busy=0.6, tensor=0.2, dram=0.5), 10, 0.5)
    assert np.all(w["DCGM_FI_DEV_SM_CLOCK"] == m.spec.sm_clock_max_mhz)
    assert np.all(w["DCGM_FI_DEV_POWER_VIOLATION"] == 10_000_000)


@pytest.mark.parametrize("dt", [0.5, 7.0])
def test_temperature_converges_to_the_analytical_steady_state(dt: float) -> None:
    gpus = bank(seed=3)
    m = H100.gpu
    assert m is not None
    run(gpus, load(gpus, busy=0.8, tensor=0.5, dram=0.5), 20 * m.thermal_tau_s, dt)
    steady = INLET_C + gpus.thermal_resistance * gpus.power_w
    assert np.allclose(gpus.temperature_c, steady, atol=1e-3)
    assert np.allclose(gpus.wire["DCGM_FI_DEV_GPU_TEMP"], steady, atol=2.0)
    assert steady.min() > 60
    assert not gpus.throttled.any()


def test_a_step_of_dt_equals_two_steps_of_half_dt() -> None:
    gpus = bank()
    work = load(gpus, busy=0.7, tensor=0.4, dram=0.4)
    run(gpus, work, 2, 1)
    twin = copy.deepcopy(gpus)
    run(gpus, work, 8, 8)
    run(twin, work, 8, 4)
    assert np.allclose(gpus.temperature_c, twin.temperature_c, atol=1e-3)
    energy = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    assert np.allclose(gpus.wire[energy], twin.wire[energy], rtol=1e-6)


def test_slowdown_engages_above_its_threshold_and_releases_below_with_hysteresis() -> None:
    gpus = bank()
    m = H100.gpu
    assert m is not None
    work = load(gpus, **FULL)
    run(gpus, work, 300, 1)
    assert not gpus.throttled.any()
    assert np.all(gpus.temperature_c < m.slowdown_temp_c - 3)
    release = m.slowdown_temp_c - THERMAL_HYSTERESIS_C

    gpus.inject(0, slice(None), "cooling", {"severity": 0.2})
    rng = np.random.default_rng(2)
    temps, flags, clocks = [], [], []
    for _ in range(200):
        gpus.step(work, 0.5, rng)
        temps.append(gpus.temperature_c[0, 0])
        flags.append(gpus.throttled[0, 0])
        clocks.append(gpus.wire["DCGM_FI_DEV_SM_CLOCK"][0, 0])
    engaged = flags.index(True)
    assert engaged > 0
    assert max(temps[:engaged]) <= m.slowdown_temp_c
    assert temps[engaged] > m.slowdown_temp_c - 1, "engaged at the threshold, cooled since"
    assert clocks[engaged] == m.sm_clock_min_mhz
    assert gpus.wire["DCGM_FI_DEV_THERMAL_VIOLATION"][0, 0] > 0

    gpus.clear(0, slice(None), "cooling")
    temps, flags = [], []
    for _ in range(200):
        gpus.step(work, 0.5, rng)
        temps.append(gpus.temperature_c[0, 0])
        flags.append(gpus.throttled[0, 0])
    released = flags.index(False)
    band = [t for t, f in zip(temps, flags, strict=True) if f]
    assert any(release + 0.5 < t < m.slowdown_temp_c - 0.5 for t in band), "held in hysteresis"
    assert abs(temps[released] - release) < 1, "released at the lower threshold"
    assert not any(flags[released:]), "healthy cooling at full load stays under slowdown"
    assert gpus.wire["DCGM_FI_DEV_SM_CLOCK"][0, 0] > m.spec.sm_clock_max_mhz * 0.9


def test_counters_never_decrease_over_random_steps_and_faults() -> None:
    gpus = bank(racks=2, seed=11)
    rng = np.random.default_rng(5)
    before = {n: gpus.wire[n].copy() for n in COUNTERS}
    for i in range(300):
        shape = (gpus.racks, gpus.rows)
        work = load(
            gpus,
            busy=rng.uniform(-0.2, 1.2, shape),
            tensor=rng.random(shape),
            dram=rng.random(shape),
            memory_mib=rng.uniform(-1e3, 2e5, shape),
            nvlink_bytes_per_s=rng.uniform(0, 1e12, shape),
        )
        work["busy"][0, 0] = np.nan
        gpus.step(None if i % 7 == 0 else work, float(rng.uniform(0.1, 10)), rng)
        if i % 25 == 0:
            code = int(rng.choice([13, 31, 48, 63, 79, 94]))
            gpus.inject(int(rng.integers(2)), [int(rng.integers(32))], "xid", {"code": code})
        if i % 60 == 0:
            gpus.inject(1, slice(0, 8), "cooling", {"severity": float(rng.random())})
        for name in COUNTERS:
            assert np.all(gpus.wire[name] >= before[name]), name
            before[name] = gpus.wire[name].copy()
        w = gpus.wire
        assert np.all((w["DCGM_FI_DEV_GPU_UTIL"] >= 0) & (w["DCGM_FI_DEV_GPU_UTIL"] <= 100))
        assert np.all(w["DCGM_FI_DEV_FB_USED"] + w["DCGM_FI_DEV_FB_FREE"] <= 81559)
        assert np.all(np.isfinite(w["DCGM_FI_DEV_POWER_USAGE"]))
    assert all(before[n].any() for n in ("xid_count", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"))


def test_xid_79_takes_the_gpu_off_the_bus_until_reset() -> None:
    gpus = bank()
    work = load(gpus, **FULL)
    run(gpus, work, 5, 1)
    node1 = np.arange(8, 16)
    gpus.inject(0, node1, "xid", {"code": 79, "gpu": 3})
    run(gpus, work, 5, 1)
    present = gpus.present()
    assert not present[0, 11]
    assert present.sum() == gpus.rows - 1
    w = gpus.wire
    assert w["DCGM_FI_DEV_XID_ERRORS"][0, 11] == 79
    assert w["xid_count"][0, 11] == 1
    assert w["DCGM_FI_DEV_POWER_USAGE"][0, 11] == 0
    assert w["DCGM_FI_DEV_GPU_UTIL"][0, 11] == 0
    energy = w["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0, 11]
    run(gpus, work, 5, 1)
    assert w["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0, 11] == energy

    gpus.clear(0, node1, "xid")
    assert w["DCGM_FI_DEV_XID_ERRORS"][0, 11] == 0
    run(gpus, work, 1, 1)
    assert not gpus.present()[0, 11], "only a reset brings a GPU back on the bus"
    gpus.reset(0, node1)
    assert gpus.present().all()
    assert w["xid_count"][0, 11] == 0
    assert np.all(w["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0, node1] == 0)
    assert np.all(w["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0, :8] > 0), "other nodes untouched"
    run(gpus, work, 1, 1)
    assert w["DCGM_FI_DEV_POWER_USAGE"][0, 11] > 500


@pytest.mark.parametrize(
    ("code", "dbe", "sbe"), [(48, 1, 0), (94, 1, 0), (95, 1, 0), (63, 0, 1), (64, 0, 1), (13, 0, 0)]
)
def test_each_xid_leaves_its_signature(code: int, dbe: int, sbe: int) -> None:
    gpus = bank()
    run(gpus, None, 1, 1)
    gpus.inject(0, [5], "xid", {"code": code})
    gpus.inject(0, [5], "xid", {"code": code})
    run(gpus, None, 1, 1)
    w = gpus.wire
    assert w["DCGM_FI_DEV_XID_ERRORS"][0, 5] == code
    assert w["xid_count"][0, 5] == 2
    assert w["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"][0, 5] == 2 * dbe
    assert w["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"][0, 5] == 2 * sbe
    assert gpus.present().all()
    assert w["xid_count"].sum() == 2


def test_a_cooling_failure_heats_throttles_then_shuts_the_gpu_down() -> None:
    gpus = bank()
    m = H100.gpu
    assert m is not None
    work = load(gpus, **FULL)
    run(gpus, work, 120, 1)
    gpus.inject(0, slice(0, 8), "cooling", {})
    rng = np.random.default_rng(0)
    temps, throttled = [], []
    while gpus.present()[0, 0]:
        gpus.step(work, 1, rng)
        temps.append(gpus.temperature_c[0, 0])
        throttled.append(gpus.throttled[0, 0])
        assert len(temps) < 600, "never shut down"
    assert temps[-1] > m.shutdown_temp_c
    assert any(throttled), "throttled on the way up"
    assert gpus.wire["DCGM_FI_DEV_THERMAL_VIOLATION"][0, 0] > 0
    assert not gpus.present()[0, :8].any()
    assert gpus.present()[0, 8:].all()
    assert np.all(gpus.wire["DCGM_FI_DEV_POWER_USAGE"][0, :8] == 0)

    gpus.reset(0, slice(0, 8))
    run(gpus, work, 60, 1)
    assert not gpus.present()[0, :8].any(), "reset without fixing the cooling: down again"
    gpus.clear(0, slice(0, 8), "cooling")
    run(gpus, work, 60, 1)
    assert not gpus.present()[0, :8].any(), "cooling back, but still needs a reset"
    gpus.reset(0, slice(0, 8))
    run(gpus, work, 300, 1)
    assert gpus.present().all()
    assert not gpus.throttled.any()
    assert np.all(gpus.temperature_c < m.slowdown_temp_c)


@pytest.mark.parametrize(
    ("kind", "params", "rack", "rows"),
    [
        ("fire", {}, 0, slice(None)),
        ("link_flap", {}, 0, slice(None)),
        ("xid", {}, 0, slice(None)),
        ("xid", {"code": "79"}, 0, slice(None)),
        ("xid", {"code": 79.0}, 0, slice(None)),
        ("xid", {"code": True}, 0, slice(None)),
        ("xid", {"code": 0}, 0, slice(None)),
        ("xid", {"code": 79, "cod": 1}, 0, slice(None)),
        ("xid", {"code": 79, "gpu": 8}, 0, slice(None)),
        ("xid", {"code": 79, "gpu": 2}, 0, [3]),
        ("xid", {"code": 79}, 1, slice(None)),
        ("xid", {"code": 79}, 0, [40]),
        ("cooling", {"severity": 1.5}, 0, slice(None)),
        ("cooling", {"severity": float("nan")}, 0, slice(None)),
    ],
)
def test_bad_faults_are_refused_in_one_sentence(
    kind: str, params: dict[str, int | float | str | bool], rack: int, rows: object
) -> None:
    gpus = bank()
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        gpus.inject(rack, rows, kind, params)  # type: ignore[arg-type]
    assert gpus.present().all()
    assert gpus.wire["xid_count"].sum() == 0


def test_bad_steps_and_rates_are_refused() -> None:
    gpus = bank()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="dt"):
        gpus.step(None, -1, rng)
    with pytest.raises(ValueError, match="load"):
        gpus.step(np.zeros(1, layout(GpuLoad).record_dtype(8)), 1, rng)
    with pytest.raises(ValueError, match="load"):
        gpus.step(np.zeros(2, layout(GpuLoad).record_dtype(32)), 1, rng)
    with pytest.raises(ValueError, match="rate"):
        bank(fault_rates={"xid": -1.0})
    with pytest.raises(ValueError, match=r"no fault 'link_flap'"):
        bank(fault_rates={"link_flap": 1.0})
    with pytest.raises(ValueError, match="fire"):
        gpus.clear(0, slice(None), "fire")


def test_random_faults_follow_their_rates() -> None:
    quiet, busy = bank(racks=10), bank(racks=10, fault_rates={"xid": 36.0, "cooling": 0.0})
    run(quiet, None, 100, 1)
    run(busy, None, 100, 1)
    assert quiet.wire["xid_count"].sum() == 0
    hits = int(busy.wire["xid_count"].sum())
    expected = 36.0 * 100 / 3600 * 320
    assert 0.7 * expected < hits < 1.3 * expected
    assert busy.wire["DCGM_FI_DEV_XID_ERRORS"].any()


def test_same_seed_and_loads_give_the_same_wire() -> None:
    def history(seed: int) -> bytes:
        gpus = bank(racks=2, seed=seed, fault_rates={"xid": 100.0})
        rng = np.random.default_rng(seed)
        for i in range(20):
            busy = np.random.default_rng(i).random((2, 32)).astype(np.float32)
            gpus.step(load(gpus, busy=busy, tensor=0.5, dram=0.5), 1.5, rng)
        return gpus.wire.tobytes()

    assert history(1) == history(1)
    assert history(1) != history(2)


def test_a_bank_of_a_thousand_racks_steps_in_one_go() -> None:
    gpus = bank(racks=1000, kind="nvl72")
    rng = np.random.default_rng(0)
    busy = rng.random((1000, 72)).astype(np.float32)
    gpus.step(load(gpus, busy=busy, tensor=0.5, dram=0.5, memory_mib=1e5), 1.0, rng)
    gpus.step(None, 1.0, rng)
    assert gpus.wire["DCGM_FI_DEV_POWER_USAGE"].shape == (1000, 72)
    assert gpus.present().shape == (1000, 72)
    assert gpus.temperature_c.shape == (1000, 72)
    assert gpus.present().all()
