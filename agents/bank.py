"""What every device bank shares: wire records per rack, row selection, fault parameters and
counters that carry fractions exactly."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from protocols.columns import MAX_ROWS, Columns, layout

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Index = npt.NDArray[np.intp]
Records = npt.NDArray[np.void]
"""An array of column-block records, one per rack (`layout(X).record_dtype(rows)`)."""
Rows = slice | int | Sequence[int] | npt.NDArray[np.integer[Any]] | npt.NDArray[np.bool_]
"""Rows of one rack's block: a slice, indices or a boolean mask."""
Params = Mapping[str, int | float | str | bool]
"""Fault parameters as `InjectFault.params` carries them."""

SECONDS_PER_HOUR = 3600.0
US_PER_S = 1e6


@dataclass(frozen=True, slots=True)
class Param:
    """One fault parameter: its type, bounds and default (None: required)."""

    kind: type[int] | type[float]
    low: float
    high: float
    default: float | None = None


def relax(value: F32, target: F32 | F64 | float, dt: float, tau_s: float) -> None:
    """Move `value` in place toward `target` as a first-order system with time constant `tau_s`
    does in `dt` seconds (exact for a constant target, whatever `dt`)."""
    value += (target - value) * np.float32(-math.expm1(-dt / tau_s))


def unit(values: F32) -> F32:
    """Load ratios clipped to 0..1, NaN read as 0."""
    return np.fmin(np.fmax(values, np.float32(0.0)), np.float32(1.0))


def bounded(values: F32, high: float) -> F32:
    """Load values clipped to 0..high, NaN read as 0."""
    return np.fmin(np.fmax(values, np.float32(0.0)), np.float32(high))


class DeviceBank:
    """Every device of one kind in a group of racks of one kind, as numpy arrays.

    `wire` holds one record per rack in the wire layout of `block`; hidden state lives in
    (racks, rows) arrays. Subclasses declare their faults and implement `step`, `present`,
    `_inject`, `_clear` and `_reset`; this class validates what callers pass and keeps the
    counters.
    """

    block: ClassVar[type[Columns]]
    load_block: ClassVar[type[Columns]]
    device_param: ClassVar[str]
    """The fault parameter naming a device within its node ("gpu", "nic", "port", "chip")."""
    noun: ClassVar[str]
    """One device, for messages: "a GPU"."""
    faults: ClassVar[Mapping[str, Mapping[str, Param]]]
    idle_load: ClassVar[Mapping[str, float]] = {}
    """The load fields (others 0) under which a device idles as with no core at all."""
    """Fault kinds this bank takes, and their parameters besides `device_param`."""

    def __init__(
        self,
        racks: int,
        nodes_per_rack: int,
        per_node: int,
        fault_rates: Mapping[str, float] | None = None,
    ) -> None:
        for name, value in (("racks", racks), ("nodes_per_rack", nodes_per_rack)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if per_node < 1:
            raise ValueError(f"devices per node must be at least 1, not {per_node}")
        rows = nodes_per_rack * per_node
        if rows > MAX_ROWS:
            raise ValueError(f"a rack of {rows} devices exceeds the {MAX_ROWS} rows of a block")
        self.racks = racks
        self.rows = rows
        self.per_node = per_node
        self.shape = (racks, rows)
        self.fault_rates = self._check_rates(fault_rates or {})
        names = layout(self.block).names
        self.wire: Records = np.zeros(racks, layout(self.block).record_dtype(rows))
        self.wire[names[0]] = np.arange(rows) // per_node
        self.wire[names[1]] = np.arange(rows) % per_node
        self._counters = tuple(
            n for n, c in layout(self.block).columns.items() if c.kind == "counter"
        )
        self._totals: dict[str, F64] = {}

    # -- what callers use ---------------------------------------------------------------------

    def step(self, load: Records | None, dt: float, rng: np.random.Generator) -> None:
        """Advance every device `dt` seconds under `load` (None: no core, devices idle)."""
        raise NotImplementedError

    def present(self) -> Mask:
        """Rows that report telemetry."""
        raise NotImplementedError

    def inject(self, rack: int, rows: Rows, kind: str, params: Params) -> None:
        """Start a fault of `kind` on `rows` of `rack` (narrowed by `params[device_param]`)."""
        spec = self._spec(kind)
        index = self._narrow(self._select(rack, rows), kind, params)
        self._inject(kind, rack, index, self._values(kind, spec, params))

    def clear(self, rack: int, rows: Rows, kind: str | None = None) -> None:
        """End faults of `kind` (every kind when None) on `rows` of `rack`."""
        index = self._select(rack, rows)
        for each in [self._spec_kind(kind)] if kind else list(self.faults):
            self._clear(each, rack, index)

    def reset(self, rack: int, rows: Rows) -> None:
        """Reboot `rows` of `rack`: counters restart at 0, faults a reset fixes clear."""
        index = self._select(rack, rows)
        for name in self._counters:
            self.wire[name][rack, index] = 0
        for total in self._totals.values():
            total[rack, index] = 0.0
        self._reset(rack, index)

    # -- for subclasses ------------------------------------------------------------------------

    def _inject(self, kind: str, rack: int, index: Index, values: dict[str, float]) -> None:
        raise NotImplementedError

    def _clear(self, kind: str, rack: int, index: Index) -> None:
        raise NotImplementedError

    def _reset(self, rack: int, index: Index) -> None:
        raise NotImplementedError

    def _random_params(self, kind: str, rng: np.random.Generator) -> dict[str, float]:
        """Parameters of a fault drawn at random: the defaults unless a subclass knows better."""
        return {name: p.default for name, p in self.faults[kind].items() if p.default is not None}

    def _check_step(self, load: Records | None, dt: float) -> Records | None:
        """Check a step's arguments; the load, or None for no assignment."""
        if not (math.isfinite(dt) and dt >= 0):
            raise ValueError(f"dt must be a finite number of seconds >= 0, not {dt}")
        if load is None:
            return None
        expected = layout(self.load_block).record_dtype(self.rows)
        if load.shape != (self.racks,) or load.dtype != expected:
            raise ValueError(
                f"load must be an array of {self.racks} {self.load_block.__name__} records "
                f"of {self.rows} rows"
            )
        return load

    def _accrue(self, name: str, increment: F64 | F32) -> None:
        """Add to a counter through its float64 total, so fractions carry over exactly."""
        total = self._totals.get(name)
        if total is None:
            total = self._totals[name] = np.zeros(self.shape, np.float64)
        total += increment
        np.copyto(self.wire[name], total, casting="unsafe")

    def _noise(self, rng: np.random.Generator, count: int) -> F32:
        """`count` arrays of standard normal noise, one value per device."""
        return rng.standard_normal((count, *self.shape), np.float32)

    def _random_faults(self, dt: float, rng: np.random.Generator) -> None:
        """Draw the faults `fault_rates` makes happen in `dt` seconds and inject them."""
        devices = self.racks * self.rows
        for kind, rate in self.fault_rates.items():
            probability = -math.expm1(-rate * dt / SECONDS_PER_HOUR)
            hits = rng.integers(0, devices, rng.binomial(devices, probability))
            for flat in hits.tolist():
                rack, row = divmod(flat, self.rows)
                index = np.array([row], np.intp)
                self._inject(kind, rack, index, self._random_params(kind, rng))

    # -- checks ---------------------------------------------------------------------------------

    def _spec_kind(self, kind: str) -> str:
        if kind not in self.faults:
            takes = ", ".join(sorted(self.faults))
            raise ValueError(f"{self.noun} has no fault {kind!r} (it takes {takes})")
        return kind

    def _spec(self, kind: str) -> Mapping[str, Param]:
        return self.faults[self._spec_kind(kind)]

    def _check_rates(self, rates: Mapping[str, float]) -> dict[str, float]:
        for kind, rate in rates.items():
            self._spec_kind(kind)
            if not (math.isfinite(rate) and rate >= 0):
                raise ValueError(f"fault rate of {kind} must be >= 0 per device-hour, not {rate}")
        return {kind: float(rate) for kind, rate in rates.items() if rate > 0}

    def _select(self, rack: int, rows: Rows) -> Index:
        """The row indices of `rows` of `rack`."""
        if not (isinstance(rack, int | np.integer) and 0 <= rack < self.racks):
            raise ValueError(f"rack {rack!r} is not within 0..{self.racks - 1}")
        try:
            return np.atleast_1d(np.arange(self.rows)[rows])
        except (IndexError, TypeError, ValueError):
            raise ValueError(f"rows {rows!r} are not rows 0..{self.rows - 1}") from None

    def _narrow(self, index: Index, kind: str, params: Params) -> Index:
        """`index` narrowed to the one device per node that `params[device_param]` names."""
        device = params.get(self.device_param)
        if device is None:
            return index
        if not (isinstance(device, int) and not isinstance(device, bool)):
            raise ValueError(f"{kind} param {self.device_param!r} must be an integer")
        if not 0 <= device < self.per_node:
            raise ValueError(
                f"{self.device_param} {device} is not on a node of {self.per_node} "
                f"(0..{self.per_node - 1})"
            )
        index = index[index % self.per_node == device]
        if not index.size:
            raise ValueError(f"{self.device_param} {device} is not among the rows given")
        return index

    def _values(self, kind: str, spec: Mapping[str, Param], params: Params) -> dict[str, float]:
        """The checked parameters of a fault, defaults filled in."""
        unknown = set(params) - set(spec) - {self.device_param}
        if unknown:
            takes = ", ".join(sorted({*spec, self.device_param}))
            raise ValueError(f"{kind} does not take {', '.join(sorted(unknown))} (takes {takes})")
        values: dict[str, float] = {}
        for name, param in spec.items():
            value = params.get(name, param.default)
            if value is None:
                raise ValueError(f"{kind} needs param {name!r}")
            if isinstance(value, bool) or not isinstance(value, param.kind | int):
                kind_name = "an integer" if param.kind is int else "a number"
                raise ValueError(f"{kind} param {name!r} must be {kind_name}, not {value!r}")
            if not (param.low <= value <= param.high):
                raise ValueError(
                    f"{kind} param {name!r} must be within {param.low:g}..{param.high:g}, "
                    f"not {value!r}"
                )
            values[name] = float(value)
        return values
