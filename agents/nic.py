"""NIC emulation: ConnectX ports under RoCE traffic (DCQCN, ECN/CNP, PFC), and the Ethernet
link behaviour switch ports share."""

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from agents.bank import (
    F32,
    F64,
    US_PER_S,
    DeviceBank,
    Index,
    Mask,
    Param,
    Records,
    bounded,
    relax,
    unit,
)
from agents.catalog import NicModel
from protocols.columns import NicColumns, NicLoad

BITS_PER_BYTE = 8
ROCE_MTU_BYTES = 4096
"""RoCE payload per packet: the packet count is bytes / MTU."""
DCQCN_ALPHA = 0.5
"""A congested sender's rate falls to 1 - ALPHA * congestion of what it offers."""
ECN_MARK_PROBABILITY = 0.01
"""Share of packets marked while a queue is above its ECN threshold (DCQCN's Pmax of 1%)."""
OUT_OF_SEQUENCE_RATIO = 1e-6
"""Out-of-sequence packets per received packet, scaled by congestion (adaptive routing)."""

PFC_CONGESTION = 0.5
PFC_ONSET_S = 3.0
"""Congestion above PFC_CONGESTION for more than PFC_ONSET_S fills the headroom: PFC pauses."""
PFC_MAX_PAUSED = 0.3
"""Share of time paused under full, persistent congestion."""
PAUSE_STORM_PAUSED = 0.99
"""Share of time paused in a pause storm: throughput collapses."""
PFC_PAUSE_QUANTA = 65535
"""Pause time a PFC frame asks for, in 512-bit quanta; senders refresh it at half-time."""
LINK_FLAP_DOWN_S = 5.0

NIC_TEMP_IDLE_C = 45.0
NIC_TEMP_FULL_C = 70.0
NIC_THERMAL_TAU_S = 60.0
NIC_TEMP_NOISE_C = 0.3


def pause_frame_us(speed_gbps: float) -> float:
    """Microseconds of pause each PFC frame accounts for at `speed_gbps`."""
    return PFC_PAUSE_QUANTA * 512 / (speed_gbps * 1e3) / 2


class EthernetBank(DeviceBank):
    """Ethernet ports that can flap and be paused: link timers, PFC state and the two faults
    "link_flap" {down_s} (down for a few seconds, then up; no traffic meanwhile) and
    "pause_storm" (pauses nearly all the time until cleared or reset).

    Hidden state: `down_s` (seconds the link stays down), `congested_s` (how long congestion
    has stayed above PFC_CONGESTION), `storm`, all (racks, rows).
    """

    faults: ClassVar[Mapping[str, Mapping[str, Param]]] = {
        "link_flap": {"down_s": Param(float, 0.0, 3600.0, LINK_FLAP_DOWN_S)},
        "pause_storm": {},
    }
    link_down_counter: ClassVar[str]

    def __init__(
        self,
        racks: int,
        nodes_per_rack: int,
        per_node: int,
        fault_rates: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(racks, nodes_per_rack, per_node, fault_rates)
        self.down_s: F32 = np.zeros(self.shape, np.float32)
        self.congested_s: F32 = np.zeros(self.shape, np.float32)
        self.storm: Mask = np.zeros(self.shape, np.bool_)
        self.wire["link_state"] = 1

    def present(self) -> Mask:
        """Every port reports, link up or down."""
        return np.ones(self.shape, np.bool_)

    def _link(self, congestion: F32 | float, dt: float) -> tuple[F32, F32]:
        """Advance link timers and PFC state by `dt`; return the seconds each link was up and
        the share of that time it was paused."""
        up_s = np.clip(dt - self.down_s, 0.0, dt)
        np.maximum(self.down_s - dt, 0.0, out=self.down_s)
        self.wire["link_state"] = self.down_s == 0
        over = (congestion > PFC_CONGESTION) & (up_s > 0)
        self.congested_s = np.where(over, self.congested_s + dt, 0.0).astype(np.float32)
        excess = np.clip((congestion - PFC_CONGESTION) / (1 - PFC_CONGESTION), 0.0, 1.0)
        paused = np.where(self.congested_s > PFC_ONSET_S, PFC_MAX_PAUSED * excess, 0.0)
        paused = np.where(self.storm, PAUSE_STORM_PAUSED, paused).astype(np.float32)
        return up_s, paused

    def _inject(self, kind: str, rack: int, index: Index, values: dict[str, float]) -> None:
        if kind == "link_flap":
            self.down_s[rack, index] = np.maximum(self.down_s[rack, index], values["down_s"])
            self.wire[self.link_down_counter][rack, index] += 1
            self.wire["link_state"][rack, index] = 0
        else:
            self.storm[rack, index] = True

    def _clear(self, kind: str, rack: int, index: Index) -> None:
        if kind == "link_flap":
            self.down_s[rack, index] = 0.0
            self.wire["link_state"][rack, index] = 1
        else:
            self.storm[rack, index] = False

    def _reset(self, rack: int, index: Index) -> None:
        for kind in self.faults:
            self._clear(kind, rack, index)
        self.congested_s[rack, index] = 0.0


class NicBank(EthernetBank):
    """Every back-end NIC of `racks` racks, on the wire as NicColumns.

    Offered rates are cut by DCQCN (rate * (1 - DCQCN_ALPHA * congestion)), by PFC pauses and
    by link downtime. Congestion marks ECN on received packets; the receiver answers each mark
    with a CNP (np_cnp_sent == np_ecn_marked_roce_packets), and a sender handles CNPs in
    proportion to its sent packets * congestion. Counters carry their fractions, with no noise,
    so where the core gives both ends of each flow the same rate and congestion, the CNPs sent
    fleet-wide equal those handled to within one per NIC. rx_discards_phy stays 0: the RoCE
    class is lossless. Hidden state: `temperature_c`, and the link state of EthernetBank.
    """

    block = NicColumns
    load_block = NicLoad
    device_param = "nic"
    noun = "a NIC"
    link_down_counter = "link_down_events_phy"

    def __init__(
        self,
        model: NicModel,
        racks: int,
        nodes_per_rack: int,
        per_node: int,
        rng: np.random.Generator,
        fault_rates: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(racks, nodes_per_rack, per_node, fault_rates)
        self.model = model
        self.temperature_c: F32 = np.full(self.shape, NIC_TEMP_IDLE_C, np.float32)
        self.wire["temperature_c"] = self.temperature_c

    def step(self, load: Records | None, dt: float, rng: np.random.Generator) -> None:
        """Advance every NIC by `dt` seconds under `load` (None: no traffic) and update `wire`."""
        load = self._check_step(load, dt)
        self._random_faults(dt, rng)
        speed = self.model.speed_gbps
        if load is None:
            tx: F32 | float = 0.0
            rx: F32 | float = 0.0
            congestion: F32 | float = 0.0
        else:
            tx, rx = bounded(load["tx_gbps"], speed), bounded(load["rx_gbps"], speed)
            congestion = unit(load["congestion"])
        up_s, paused = self._link(congestion, dt)
        rate = (1 - DCQCN_ALPHA * congestion) * (1 - paused)
        carried: F64 = (up_s * rate).astype(np.float64)
        sent = carried * (1e9 / BITS_PER_BYTE) * tx
        received = carried * (1e9 / BITS_PER_BYTE) * rx
        self._accrue("tx_bytes", sent)
        self._accrue("rx_bytes", received)
        marks = received * (congestion * ECN_MARK_PROBABILITY / ROCE_MTU_BYTES)
        self._accrue("np_ecn_marked_roce_packets", marks)
        self._accrue("np_cnp_sent", marks)
        self._accrue("rp_cnp_handled", sent * (congestion * ECN_MARK_PROBABILITY / ROCE_MTU_BYTES))
        self._accrue(
            "out_of_sequence", received * (congestion * OUT_OF_SEQUENCE_RATIO / ROCE_MTU_BYTES)
        )
        paused_us = paused * up_s * US_PER_S
        frames = paused_us / pause_frame_us(speed)
        for side in ("rx", "tx"):
            self._accrue(f"{side}_prio3_pause_duration", paused_us)
            self._accrue(f"{side}_prio3_pause", frames)

        share = np.maximum(tx, rx) * (up_s * rate) / (speed * dt) if dt else 0.0
        target = NIC_TEMP_IDLE_C + (NIC_TEMP_FULL_C - NIC_TEMP_IDLE_C) * share
        relax(self.temperature_c, target, dt, NIC_THERMAL_TAU_S)
        noise = self._noise(rng, 1)[0]
        self.wire["temperature_c"] = self.temperature_c + NIC_TEMP_NOISE_C * noise

    def _reset(self, rack: int, index: Index) -> None:
        super()._reset(rack, index)
        self.temperature_c[rack, index] = NIC_TEMP_IDLE_C
