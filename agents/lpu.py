"""LPU emulation: Groq-style inference chips under the core's load."""

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from agents.bank import (
    F32,
    SECONDS_PER_HOUR,
    DeviceBank,
    Index,
    Mask,
    Param,
    Records,
    bounded,
    relax,
    unit,
)
from agents.catalog import INLET_C, LpuModel
from protocols.columns import LpuColumns, LpuLoad

STATUS_OK = 0
STATUS_FAILED = 2
C2C_ERRORS_PER_HOUR = 0.05
"""Chip-to-chip link errors per working chip per hour: rare, and recovered by retry."""
MAX_TOKENS_PER_S = 1e6
"""Tokens per second per chip above which the core's figure is not believed."""
UTIL_NOISE = 0.01
POWER_NOISE = 0.01
TEMP_NOISE_C = 0.3
"""Gauge noise: relative for utilisation and power, standard deviation in °C otherwise."""


class LpuBank(DeviceBank):
    """Every inference chip of `racks` racks, on the wire as LpuColumns.

    Utilisation, tokens and SRAM follow the load (SRAM capped at the chip's); power rises from
    idle to max with utilisation and temperature follows it as a first-order system. Fault
    "lpu_chip" {chip?}: the chip fails (status 2, no work, idle power) but still reports, until
    cleared or reset. Hidden state: `temperature_c`, `power_w`, `failed`, all (racks, rows).
    """

    block = LpuColumns
    load_block = LpuLoad
    device_param = "chip"
    noun = "an LPU chip"
    faults: ClassVar[Mapping[str, Mapping[str, Param]]] = {"lpu_chip": {}}

    def __init__(
        self,
        model: LpuModel,
        racks: int,
        nodes_per_rack: int,
        per_node: int,
        rng: np.random.Generator,
        fault_rates: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(racks, nodes_per_rack, per_node, fault_rates)
        self.model = model
        self.failed: Mask = np.zeros(self.shape, np.bool_)
        self.power_w: F32 = np.full(self.shape, model.idle_power_w, np.float32)
        self.temperature_c: F32 = np.full(self.shape, self._idle_temperature(), np.float32)

    def present(self) -> Mask:
        """Every chip reports, failed or not."""
        return np.ones(self.shape, np.bool_)

    def step(self, load: Records | None, dt: float, rng: np.random.Generator) -> None:
        """Advance every chip by `dt` seconds under `load` (None: idle) and update `wire`."""
        load = self._check_step(load, dt)
        self._random_faults(dt, rng)
        m, w = self.model, self.wire
        working = (~self.failed).astype(np.float32)
        if load is None:
            busy: F32 | float = 0.0
            tokens: F32 | float = 0.0
            sram: F32 | float = 0.0
        else:
            busy = unit(load["busy"])
            tokens = bounded(load["tokens_per_second"], MAX_TOKENS_PER_S)
            sram = bounded(load["sram_mb"], m.spec.sram_mb)
        busy = busy * working
        self.power_w = (m.idle_power_w + (m.max_power_w - m.idle_power_w) * busy).astype(np.float32)
        steady = INLET_C + m.thermal_resistance_c_per_w * self.power_w
        relax(self.temperature_c, steady, dt, m.thermal_tau_s)
        self._link_errors(dt, rng)

        noise = self._noise(rng, 3)
        w["utilization"] = np.clip(100 * busy * (1 + UTIL_NOISE * noise[0]), 0, 100)
        w["tokens_per_second"] = tokens * working
        w["sram_used_mb"] = sram
        w["power_w"] = self.power_w * (1 + POWER_NOISE * noise[1])
        w["temperature_c"] = self.temperature_c + TEMP_NOISE_C * noise[2]
        w["status"] = np.where(self.failed, STATUS_FAILED, STATUS_OK)

    def _link_errors(self, dt: float, rng: np.random.Generator) -> None:
        """Count the rare chip-to-chip link errors of working chips in `dt` seconds."""
        chips = self.racks * self.rows
        probability = -math.expm1(-C2C_ERRORS_PER_HOUR * dt / SECONDS_PER_HOUR)
        hits = rng.integers(0, chips, rng.binomial(chips, probability))
        racks, rows = np.divmod(hits, self.rows)
        keep = ~self.failed[racks, rows]
        np.add.at(self.wire["c2c_link_errors"], (racks[keep], rows[keep]), 1)

    def _idle_temperature(self) -> float:
        return INLET_C + self.model.thermal_resistance_c_per_w * self.model.idle_power_w

    def _inject(self, kind: str, rack: int, index: Index, values: dict[str, float]) -> None:
        self.failed[rack, index] = True
        self.wire["status"][rack, index] = STATUS_FAILED

    def _clear(self, kind: str, rack: int, index: Index) -> None:
        self.failed[rack, index] = False
        self.wire["status"][rack, index] = STATUS_OK

    def _reset(self, rack: int, index: Index) -> None:
        self._clear("lpu_chip", rack, index)
        self.power_w[rack, index] = self.model.idle_power_w
        self.temperature_c[rack, index] = self._idle_temperature()
