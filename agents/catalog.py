"""Hardware catalogue: GPUs, NICs, switches, LPUs and the rack kinds built from them, with the
public figures each comes from (the GPUs' and LPUs' shared specs are protocols.hardware's)."""

from dataclasses import dataclass
from typing import Literal

from protocols import hardware

INLET_C = 30.0
"""Coolant or inlet air temperature with healthy cooling, °C."""
FULL_LOAD_HEADROOM_C = 5.0
"""How far under its slowdown temperature a GPU settles at full power with healthy cooling."""


@dataclass(frozen=True, slots=True)
class GpuModel:
    """One GPU model as the agents emulate it: its published spec, and its power, clock and
    thermal behaviour."""

    key: str
    spec: hardware.GpuSpec
    power_limit_w: float
    idle_power_w: float
    sm_clock_min_mhz: float
    """Idle clock, and the clock a hardware thermal slowdown pulls down to."""
    mem_clock_mhz: float
    slowdown_temp_c: float
    shutdown_temp_c: float
    thermal_resistance_c_per_w: float
    """Rise above inlet per watt: INLET_C + R * power_limit_w = slowdown - FULL_LOAD_HEADROOM_C."""
    thermal_tau_s: float
    """Time constant of the die and cold plate's first-order thermal response."""


@dataclass(frozen=True, slots=True)
class NicModel:
    """One back-end NIC model."""

    key: str
    name: str
    speed_gbps: float


@dataclass(frozen=True, slots=True)
class SwitchModel:
    """One Ethernet switch model of the back-end fabric."""

    key: str
    name: str
    ports: int
    port_gbps: float
    capacity_tbps: float
    buffer_mb: float
    """Shared packet buffer."""


@dataclass(frozen=True, slots=True)
class LpuModel:
    """One inference chip (Groq-style LPU) model as the agents emulate it: its published spec,
    and its power and thermal behaviour."""

    key: str
    spec: hardware.LpuSpec
    idle_power_w: float
    typical_power_w: float
    max_power_w: float
    thermal_resistance_c_per_w: float
    thermal_tau_s: float


NvlinkDomain = Literal["rack", "node", "none"]


@dataclass(frozen=True, slots=True)
class RackKind:
    """One kind of rack: its nodes, the devices in each, and how far an NVLink domain reaches."""

    key: str
    system: str
    nodes_per_rack: int
    gpus_per_node: int
    nics_per_node: int
    """Back-end NICs: one per GPU."""
    lpus_per_node: int
    gpu: GpuModel | None
    nic: NicModel | None
    lpu: LpuModel | None
    nvlink_domain: NvlinkDomain
    """"rack": every GPU of the rack shares one domain (NVL72); "node": each node is one."""

    @property
    def gpus_per_rack(self) -> int:
        return self.nodes_per_rack * self.gpus_per_node

    @property
    def lpus_per_rack(self) -> int:
        return self.nodes_per_rack * self.lpus_per_node


# Hopper: nvidia-smi -q of an H100 SXM5 80GB / HGX H800 board (power limit 700 W, SM min 345 MHz,
# memory 2619 MHz, slowdown 89 C, shutdown 92 C, ~75 W idle); H200: NVIDIA H200 product page (up
# to 700 W) and nvidia-smi (memory 3201 MHz).
H100_SXM = GpuModel(
    key="h100-sxm",
    spec=hardware.H100_SXM,
    power_limit_w=700.0,
    idle_power_w=75.0,
    sm_clock_min_mhz=345.0,
    mem_clock_mhz=2619.0,
    slowdown_temp_c=89.0,
    shutdown_temp_c=92.0,
    thermal_resistance_c_per_w=0.077,
    thermal_tau_s=30.0,
)
H200 = GpuModel(
    key="h200",
    spec=hardware.H200,
    power_limit_w=700.0,
    idle_power_w=80.0,
    sm_clock_min_mhz=345.0,
    mem_clock_mhz=3201.0,
    slowdown_temp_c=89.0,
    shutdown_temp_c=92.0,
    thermal_resistance_c_per_w=0.077,
    thermal_tau_s=30.0,
)
# Blackwell: HGX B200 datasheet (1000 W class per GPU); nvidia-smi on B200 (memory 3996 MHz, ~140 W
# idle) and GB200 (1200 W enforced limit); GB200 NVL72 page (liquid cooled). No public slowdown or
# shutdown temperature was found for Blackwell: Hopper's 89/92 C are assumed, as is the idle
# clock. The shorter time constant of GB200 reflects its direct liquid cooling.
B200 = GpuModel(
    key="b200",
    spec=hardware.B200,
    power_limit_w=1000.0,
    idle_power_w=140.0,
    sm_clock_min_mhz=345.0,
    mem_clock_mhz=3996.0,
    slowdown_temp_c=89.0,
    shutdown_temp_c=92.0,
    thermal_resistance_c_per_w=0.054,
    thermal_tau_s=25.0,
)
GB200 = GpuModel(
    key="gb200",
    spec=hardware.GB200,
    power_limit_w=1200.0,
    idle_power_w=160.0,
    sm_clock_min_mhz=345.0,
    mem_clock_mhz=3996.0,
    slowdown_temp_c=89.0,
    shutdown_temp_c=92.0,
    thermal_resistance_c_per_w=0.045,
    thermal_tau_s=20.0,
)
GPU_MODELS: dict[str, GpuModel] = {m.key: m for m in (H100_SXM, H200, B200, GB200)}

# NVIDIA ConnectX-7 (up to 400 Gb/s) and ConnectX-8 SuperNIC (up to 800 Gb/s) product pages.
CONNECTX_7 = NicModel(key="cx7", name="NVIDIA ConnectX-7", speed_gbps=400.0)
CONNECTX_8 = NicModel(key="cx8", name="NVIDIA ConnectX-8 SuperNIC", speed_gbps=800.0)
NIC_MODELS: dict[str, NicModel] = {m.key: m for m in (CONNECTX_7, CONNECTX_8)}

# NVIDIA Spectrum-4 announcement and SN5000 series datasheet: 51.2 Tb/s, 64 x 800GbE in 2U,
# one fully shared packet buffer (160 MB in the datasheet; some summaries say 128 MB).
SPECTRUM_4 = SwitchModel(
    key="sn5600",
    name="NVIDIA Spectrum-4 SN5600",
    ports=64,
    port_gbps=800.0,
    capacity_tbps=51.2,
    buffer_mb=160.0,
)
SWITCH_MODELS: dict[str, SwitchModel] = {SPECTRUM_4.key: SPECTRUM_4}

# Groq's GroqCard product brief: card power 375 W max and ~240 W typical; a GroqNode holds 8
# cards, a GroqRack 9 nodes (8 plus one spare). Idle power and the thermal figures are estimates
# (an air-cooled PCIe card settling near 75 C at typical power).
GROQ_LPU = LpuModel(
    key="groq-lpu",
    spec=hardware.GROQ_LPU,
    idle_power_w=60.0,
    typical_power_w=240.0,
    max_power_w=375.0,
    thermal_resistance_c_per_w=0.18,
    thermal_tau_s=40.0,
)
LPU_MODELS: dict[str, LpuModel] = {GROQ_LPU.key: GROQ_LPU}


def _hgx(key: str, gpu: GpuModel) -> RackKind:
    """Four 8-GPU HGX nodes per rack, one ConnectX-7 per GPU, NVLink within each node."""
    return RackKind(
        key=key,
        system=f"NVIDIA HGX {gpu.spec.name.split()[1]} 8-GPU",
        nodes_per_rack=4,
        gpus_per_node=8,
        nics_per_node=8,
        lpus_per_node=0,
        gpu=gpu,
        nic=CONNECTX_7,
        lpu=None,
        nvlink_domain="node",
    )


# GB200 NVL72: 18 compute trays of 2 Grace CPUs + 4 Blackwell GPUs, one NVLink domain of 72 GPUs
# through 9 NVLink switch trays, 4 ConnectX-7 per tray for the back-end fabric.
RACK_KINDS: dict[str, RackKind] = {
    kind.key: kind
    for kind in (
        RackKind(
            key="nvl72",
            system="NVIDIA GB200 NVL72",
            nodes_per_rack=18,
            gpus_per_node=4,
            nics_per_node=4,
            lpus_per_node=0,
            gpu=GB200,
            nic=CONNECTX_7,
            lpu=None,
            nvlink_domain="rack",
        ),
        _hgx("hgx-h100", H100_SXM),
        _hgx("hgx-h200", H200),
        _hgx("hgx-b200", B200),
        RackKind(
            key="lpu",
            system="GroqRack",
            nodes_per_rack=9,
            gpus_per_node=0,
            nics_per_node=0,
            lpus_per_node=8,
            gpu=None,
            nic=None,
            lpu=GROQ_LPU,
            nvlink_domain="none",
        ),
    )
}
