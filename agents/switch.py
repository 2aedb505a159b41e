"""Switch emulation: Spectrum-X switch ports under the core's load, with ECN, PFC and drops."""

from collections.abc import Mapping

import numpy as np

from agents.bank import F32, F64, Index, Records, bounded, unit
from agents.catalog import SwitchModel
from agents.nic import (
    BITS_PER_BYTE,
    ECN_MARK_PROBABILITY,
    ROCE_MTU_BYTES,
    EthernetBank,
    pause_frame_us,
)
from protocols.columns import PortColumns, PortLoad

MAX_OFFERED = 4.0
"""Offered load (relative to port speed) above which the core's figure is not believed."""
DROP_CONGESTION = 0.95
DROP_RATIO_MAX = 1e-4
"""Above DROP_CONGESTION the lossless headroom runs out: up to DROP_RATIO_MAX of the packets
sent are dropped, at full congestion."""
BUFFER_PER_CONGESTION = 0.6
BUFFER_IN_STORM = 0.9
"""Share of the shared buffer a port's queues hold under full congestion, and in a storm."""
UTIL_NOISE = 0.01
BUFFER_NOISE = 0.05
"""Relative gauge noise."""


class SwitchBank(EthernetBank):
    """Every port of a group of switches, on the wire as PortColumns: a "rack" is a block of
    `nodes_per_rack` switches (one, or a network rack of them), each a node of `per_node` ports.

    A port carries min(busy, 1) of its speed in each direction (the core's load is symmetric),
    less the time it is paused or down. ECN marks follow congestion; persistent congestion
    makes PFC pauses, extreme congestion drops. Faults as EthernetBank, with param "port".
    """

    block = PortColumns
    load_block = PortLoad
    device_param = "port"
    noun = "a switch port"
    link_down_counter = "link_down_events"

    def __init__(
        self,
        model: SwitchModel,
        racks: int,
        nodes_per_rack: int,
        per_node: int,
        rng: np.random.Generator,
        fault_rates: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(racks, nodes_per_rack, per_node, fault_rates)
        self.model = model

    def step(self, load: Records | None, dt: float, rng: np.random.Generator) -> None:
        """Advance every port by `dt` seconds under `load` (None: no traffic); update `wire`."""
        load = self._check_step(load, dt)
        self._random_faults(dt, rng)
        speed = self.model.port_gbps
        if load is None:
            busy: F32 | float = 0.0
            congestion: F32 | float = 0.0
        else:
            busy = bounded(load["busy"], MAX_OFFERED)
            congestion = unit(load["congestion"])
        up_s, paused = self._link(congestion, dt)
        carried: F64 = (np.minimum(busy, 1.0) * (1 - paused) * up_s).astype(np.float64)
        sent = carried * (speed * 1e9 / BITS_PER_BYTE)
        self._accrue("tx_bytes", sent)
        self._accrue("rx_bytes", sent)
        packets = sent / ROCE_MTU_BYTES
        self._accrue("ecn_marked_packets", packets * (congestion * ECN_MARK_PROBABILITY))
        extreme = np.clip((congestion - DROP_CONGESTION) / (1 - DROP_CONGESTION), 0.0, 1.0)
        self._accrue("tx_drops", packets * (extreme * DROP_RATIO_MAX))
        frames = paused * up_s * (1e6 / pause_frame_us(speed))
        self._accrue("rx_prio3_pause", frames)
        self._accrue("tx_prio3_pause", frames)

        link = self.wire["link_state"].astype(np.float32)
        noise = self._noise(rng, 2)
        share = carried / dt if dt else np.zeros(self.shape)
        utilization = np.clip(100 * share * (1 + UTIL_NOISE * noise[0]), 0, 100)
        self.wire["utilization"] = utilization * link
        buffer = np.where(self.storm, BUFFER_IN_STORM, BUFFER_PER_CONGESTION * congestion)
        occupancy = np.clip(100 * buffer * (1 + BUFFER_NOISE * noise[1]), 0, 100)
        self.wire["buffer_occupancy"] = occupancy * link

    def _reset(self, rack: int, index: Index) -> None:
        super()._reset(rack, index)
        self.wire["utilization"][rack, index] = 0.0
        self.wire["buffer_occupancy"][rack, index] = 0.0
