"""GPU emulation: every GPU of a group of racks as arrays, stepped under the core's load."""

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from agents.bank import F32, US_PER_S, DeviceBank, Index, Mask, Param, Records, bounded, unit
from agents.catalog import INLET_C, GpuModel
from protocols.columns import GpuColumns, GpuLoad

Gauge = F32 | np.float32
"""A load field: one value per GPU, or one for all."""

# Power: P = idle + demand * (clock / max clock) ** CLOCK_POWER_EXPONENT, where the demand at
# full clock grows with the work (P ~ f V^2 and V rises with f, so the exponent is 2..3).
CLOCK_POWER_EXPONENT = 2.5
BASE_ACTIVITY = 0.5
TENSOR_ACTIVITY = 0.35
DRAM_ACTIVITY = 0.15
"""A busy GPU's activity (0..1) is BASE + TENSOR * tensor + DRAM * dram ratio."""
PEAK_DEMAND = 1.15
"""Dynamic power of full activity at max clock, relative to the limit's headroom over idle:
above 1, so dense GEMMs hit the power limit and the clock backs off, as on real parts."""
BOOST_BUSY = 0.1
"""Busy ratio from which the GPU holds its max clock; below it the clock ramps from idle."""

IDLE_BUSY = 0.03
IDLE_DRAM = 0.01
"""What a GPU does with no assignment: monitoring and the odd kernel."""
IDLE: tuple[Gauge, ...] = tuple(np.float32(v) for v in (IDLE_BUSY, 0, IDLE_DRAM, 0, 0))
"""Busy, tensor, dram, memory and NVLink of a GPU with no assignment."""
DRIVER_RESERVED_MIB = 512.0
"""Framebuffer the driver and context hold whatever the load."""

THERMAL_HYSTERESIS_C = 5.0
"""A thermal slowdown releases only this far below the slowdown temperature."""
COOLING_RESISTANCE_GAIN = 3.0
COOLING_INLET_RISE_C = 50.0
"""A cooling fault of severity s multiplies thermal resistance by 1 + GAIN * s and warms the
inlet by RISE * s: from about s = 0.75 even an idle GPU passes its shutdown temperature."""
MEMORY_TEMP_OFFSET_C = 4.0
MEMORY_TEMP_DRAM_C = 6.0
"""HBM runs a few degrees above the die, more when its bandwidth is busy."""

POWER_NOISE = 0.01
TEMP_NOISE_C = 0.3
UTIL_NOISE = 0.5
"""Gauge noise: relative for power, standard deviation in °C and % otherwise."""
RESISTANCE_SPREAD = 0.03
IDLE_POWER_SPREAD = 0.05
"""Part-to-part variation (uniform, relative) drawn once per device."""

XID_OFF_BUS = 79
DBE_XIDS = frozenset({48, 94, 95})
ROW_REMAP_XIDS = frozenset({63, 64})
ROW_REMAP_SBE_ERRORS = 1
"""Correctable errors a row remapping event adds (it follows a run of them)."""
XID_CODE_MAX = 999
RANDOM_XIDS = (13, 31, 43, 45, 68, 63, 64, 94, 95, 48, 79)
RANDOM_XID_WEIGHTS = (0.15, 0.3, 0.15, 0.1, 0.05, 0.08, 0.02, 0.06, 0.02, 0.03, 0.04)
"""Mix of XIDs drawn by random faults: application errors dominate, as in field studies."""


class GpuBank(DeviceBank):
    """Every GPU of `racks` racks of one kind, on the wire as GpuColumns.

    Each step, the SM clock is the one the load asks for, lowered by the power limit and by a
    thermal slowdown; power follows activity and clock; temperature follows power as a first-
    order system (solved exactly, switching power once within the step when the slowdown engages
    or releases, so the result hardly depends on dt). Hidden state: `temperature_c`, `power_w`,
    `throttled`, `off_bus`, `shut_down`, `cooling` (fault severity), `thermal_resistance` and
    `idle_power_w` (per part), all (racks, rows).

    Faults: "xid" {code, gpu?} and "cooling" {severity 0..1 (default 1), gpu?}. XID 79
    takes the GPU off the bus until reset; clearing "xid" only forgets the last XID value.
    A GPU shut down by heat stays down until its cooling is cleared and it is reset.
    """

    block = GpuColumns
    load_block = GpuLoad
    device_param = "gpu"
    noun = "a GPU"
    idle_load: ClassVar[Mapping[str, float]] = {"busy": IDLE_BUSY, "dram": IDLE_DRAM}
    faults: ClassVar[Mapping[str, Mapping[str, Param]]] = {
        "xid": {"code": Param(int, 1, XID_CODE_MAX)},
        "cooling": {"severity": Param(float, 0.0, 1.0, 1.0)},
    }

    def __init__(
        self,
        model: GpuModel,
        racks: int,
        nodes_per_rack: int,
        per_node: int,
        rng: np.random.Generator,
        fault_rates: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(racks, nodes_per_rack, per_node, fault_rates)
        self.model = model
        self.thermal_resistance: F32 = self._spread(
            rng, model.thermal_resistance_c_per_w, RESISTANCE_SPREAD
        )
        self.idle_power_w: F32 = self._spread(rng, model.idle_power_w, IDLE_POWER_SPREAD)
        self.cooling: F32 = np.zeros(self.shape, np.float32)
        self.throttled: Mask = np.zeros(self.shape, np.bool_)
        self.off_bus: Mask = np.zeros(self.shape, np.bool_)
        self.shut_down: Mask = np.zeros(self.shape, np.bool_)
        self.power_w: F32 = self.idle_power_w.copy()
        self.temperature_c: F32 = self._idle_temperature()

    def present(self) -> Mask:
        """GPUs that answer: not off the bus, not shut down by heat."""
        return ~(self.off_bus | self.shut_down)

    def step(self, load: Records | None, dt: float, rng: np.random.Generator) -> None:
        """Advance every GPU by `dt` seconds under `load` (None: idle) and update `wire`."""
        load = self._check_step(load, dt)
        self._random_faults(dt, rng)
        m = self.model
        max_clock = m.spec.sm_clock_max_mhz
        if load is None:
            busy, tensor, dram, memory, nvlink = IDLE
        else:
            busy, tensor, dram = unit(load["busy"]), unit(load["tensor"]), unit(load["dram"])
            memory = bounded(load["memory_mib"], m.spec.memory_mib)
            nvlink = bounded(load["nvlink_bytes_per_s"], m.spec.nvlink_bytes_per_s)
        up = self.present()

        # Clocks and power, free of thermal slowdown and under it.
        headroom = m.power_limit_w - self.idle_power_w
        activity = busy * (BASE_ACTIVITY + TENSOR_ACTIVITY * tensor + DRAM_ACTIVITY * dram)
        demand = headroom * (PEAK_DEMAND * activity) * up
        boost = np.minimum(busy / BOOST_BUSY, 1.0)
        wanted = m.sm_clock_min_mhz + (max_clock - m.sm_clock_min_mhz) * boost
        limit = max_clock * (headroom / np.maximum(demand, headroom)) ** (1 / CLOCK_POWER_EXPONENT)
        capped = limit < wanted
        free_clock = np.maximum(np.minimum(wanted, limit), m.sm_clock_min_mhz)
        idle = self.idle_power_w * up
        free_power = idle + demand * (free_clock / max_clock) ** CLOCK_POWER_EXPONENT
        slow_power = idle + demand * (m.sm_clock_min_mhz / max_clock) ** CLOCK_POWER_EXPONENT

        # Temperature, switching power where the slowdown engages or releases within the step.
        was = self.throttled
        power_a = np.where(was, slow_power, free_power)
        power_b = np.where(was, free_power, slow_power)
        t_a, t_b = self._heat(power_a, power_b, was, dt)
        now = self.throttled
        self.shut_down |= up & (self.temperature_c > m.shutdown_temp_c)
        self.power_w = np.where(now, slow_power, free_power) * self.present()

        self._accrue("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", (power_a * t_a + power_b * t_b) * 1e3)
        slow_s = np.where(was, t_a, t_b) * up
        self._accrue("DCGM_FI_DEV_THERMAL_VIOLATION", slow_s * US_PER_S)
        self._accrue("DCGM_FI_DEV_POWER_VIOLATION", (dt - slow_s) * (capped & up) * US_PER_S)

        clock = np.where(now, np.float32(m.sm_clock_min_mhz), free_clock).astype(np.float32)
        self._write(busy, tensor, dram, memory, nvlink, clock, clock / wanted, rng)

    # -- physics ---------------------------------------------------------------------------------

    def _heat(self, power_a: F32, power_b: F32, was: Mask, dt: float) -> tuple[F32, F32]:
        """Advance temperature by `dt` with `power_a`, switching to `power_b` from the moment it
        crosses the slowdown (or release) temperature; update `throttled`. Returns the time
        spent at each power."""
        m = self.model
        inlet = INLET_C + COOLING_INLET_RISE_C * self.cooling
        resistance = self.thermal_resistance * (1 + COOLING_RESISTANCE_GAIN * self.cooling)
        steady_a = inlet + resistance * power_a
        boundary = np.where(
            was, np.float32(m.slowdown_temp_c - THERMAL_HYSTERESIS_C), np.float32(m.slowdown_temp_c)
        )
        start = self.temperature_c
        end_a = steady_a + (start - steady_a) * np.float32(math.exp(-dt / m.thermal_tau_s))
        crossed = np.where(was, end_a < boundary, end_a > boundary)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = m.thermal_tau_s * np.log((steady_a - start) / (steady_a - boundary))
        crossing = np.where(np.isfinite(crossing) & (crossing > 0), np.minimum(crossing, dt), 0)
        t_a = np.where(crossed, crossing, np.float32(dt)).astype(np.float32)
        t_b = np.float32(dt) - t_a
        temperature = steady_a + (start - steady_a) * np.exp(-t_a / np.float32(m.thermal_tau_s))
        steady_b = inlet + resistance * power_b
        relax_b = np.exp(-t_b / np.float32(m.thermal_tau_s))
        self.temperature_c = (steady_b + (temperature - steady_b) * relax_b).astype(np.float32)
        self.throttled = was ^ crossed
        return t_a, t_b

    def _write(
        self,
        busy: Gauge,
        tensor: Gauge,
        dram: Gauge,
        memory: Gauge,
        nvlink: Gauge,
        clock: F32,
        pace: F32,
        rng: np.random.Generator,
    ) -> None:
        """Write every gauge: `pace` is the clock relative to the one the load wanted."""
        m, w = self.model, self.wire
        up = self.present().astype(np.float32)
        noise = self._noise(rng, 3)
        util = np.clip(100 * busy + UTIL_NOISE * noise[0], 0, 100) * up
        used = (
            np.minimum(memory + np.float32(DRIVER_RESERVED_MIB), np.float32(m.spec.memory_mib)) * up
        )
        w["DCGM_FI_DEV_GPU_UTIL"] = util
        w["DCGM_FI_DEV_MEM_COPY_UTIL"] = 100 * dram * up
        w["DCGM_FI_DEV_SM_CLOCK"] = clock * up
        w["DCGM_FI_DEV_MEM_CLOCK"] = np.float32(m.mem_clock_mhz) * up
        w["DCGM_FI_DEV_FB_USED"] = used
        w["DCGM_FI_DEV_FB_FREE"] = (m.spec.memory_mib - used) * up
        w["DCGM_FI_DEV_POWER_USAGE"] = self.power_w * (1 + POWER_NOISE * noise[1])
        w["DCGM_FI_DEV_GPU_TEMP"] = self.temperature_c + TEMP_NOISE_C * noise[2]
        w["DCGM_FI_DEV_MEMORY_TEMP"] = (
            self.temperature_c
            + MEMORY_TEMP_OFFSET_C
            + MEMORY_TEMP_DRAM_C * dram
            + TEMP_NOISE_C * noise[2]
        )
        active = pace * up
        w["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] = busy * active
        w["DCGM_FI_PROF_SM_ACTIVE"] = busy * active
        w["DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"] = tensor * active
        w["DCGM_FI_PROF_DRAM_ACTIVE"] = dram * active
        w["DCGM_FI_PROF_NVLINK_TX_BYTES"] = nvlink * active
        w["DCGM_FI_PROF_NVLINK_RX_BYTES"] = nvlink * active

    def _spread(self, rng: np.random.Generator, value: float, spread: float) -> F32:
        """`value` per device, varied uniformly by +-`spread` (relative)."""
        return (value * (1 + rng.uniform(-spread, spread, self.shape))).astype(np.float32)

    def _idle_temperature(self) -> F32:
        """Where an idle GPU settles under its current cooling."""
        inlet = INLET_C + COOLING_INLET_RISE_C * self.cooling
        resistance = self.thermal_resistance * (1 + COOLING_RESISTANCE_GAIN * self.cooling)
        return (inlet + resistance * self.idle_power_w).astype(np.float32)

    # -- faults ----------------------------------------------------------------------------------

    def _inject(self, kind: str, rack: int, index: Index, values: dict[str, float]) -> None:
        w = self.wire
        if kind == "cooling":
            self.cooling[rack, index] = values["severity"]
            return
        code = int(values["code"])
        w["DCGM_FI_DEV_XID_ERRORS"][rack, index] = code
        w["xid_count"][rack, index] += 1
        if code in DBE_XIDS:
            w["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"][rack, index] += 1
        if code in ROW_REMAP_XIDS:
            w["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"][rack, index] += ROW_REMAP_SBE_ERRORS
        if code == XID_OFF_BUS:
            self.off_bus[rack, index] = True

    def _clear(self, kind: str, rack: int, index: Index) -> None:
        if kind == "cooling":
            self.cooling[rack, index] = 0.0
        elif kind == "xid":
            self.wire["DCGM_FI_DEV_XID_ERRORS"][rack, index] = 0

    def _reset(self, rack: int, index: Index) -> None:
        self.wire["DCGM_FI_DEV_XID_ERRORS"][rack, index] = 0
        self.off_bus[rack, index] = False
        self.shut_down[rack, index] = False
        self.throttled[rack, index] = False
        self.temperature_c[rack, index] = self._idle_temperature()[rack, index]
        self.power_w[rack, index] = self.idle_power_w[rack, index]

    def _random_params(self, kind: str, rng: np.random.Generator) -> dict[str, float]:
        if kind == "xid":
            return {"code": float(rng.choice(RANDOM_XIDS, p=RANDOM_XID_WEIGHTS))}
        if kind == "cooling":
            return {"severity": float(rng.uniform(0.2, 1.0))}
        return super()._random_params(kind, rng)
