"""Published specs of the GPU and LPU models that agents and core both know by name, with their
sources."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU model as nvidia-smi and NVIDIA's datasheets describe it."""

    name: str
    """Product name as nvidia-smi prints it: births carry it and the core knows the GPU by it."""
    memory_mib: int
    """FB memory total as nvidia-smi reports it, MiB."""
    sm_clock_max_mhz: float
    nvlink_bytes_per_s: float
    """NVLink bandwidth each way: half the bidirectional total NVIDIA quotes."""


@dataclass(frozen=True, slots=True)
class LpuSpec:
    """One inference chip (Groq-style LPU) model as its vendor describes it."""

    name: str
    """Chip name: births carry it and the core knows the chip by it."""
    sram_mb: float
    """On-die SRAM in decimal MB, as Groq quotes it."""
    c2c_links: int
    """Chip-to-chip links per chip; the core's interconnect figure is their bandwidth each way."""


# Hopper: nvidia-smi -q of an H100 SXM5 80GB / HGX H800 board (81559 MiB, SM max 1980 MHz); H200:
# NVIDIA H200 product page (141 GB HBM3e) and nvidia-smi (143771 MiB). NVLink 4: 900 GB/s per GPU
# (NVIDIA H100/H200 datasheets).
H100_SXM = GpuSpec(
    name="NVIDIA H100 80GB HBM3",
    memory_mib=81559,
    sm_clock_max_mhz=1980.0,
    nvlink_bytes_per_s=450e9,
)
H200 = GpuSpec(
    name="NVIDIA H200",
    memory_mib=143771,
    sm_clock_max_mhz=1980.0,
    nvlink_bytes_per_s=450e9,
)
# Blackwell: HGX B200 datasheet (180 GB HBM3e, NVLink 5 at 1.8 TB/s per GPU); nvidia-smi on B200
# (183359 MiB, SM max 1965 MHz) and GB200 (189471 MiB, SM max 2062 MHz); GB200 NVL72 page
# (72 GPUs, 13.4 TB HBM3e per rack, i.e. ~186 GB each).
B200 = GpuSpec(
    name="NVIDIA B200",
    memory_mib=183359,
    sm_clock_max_mhz=1965.0,
    nvlink_bytes_per_s=900e9,
)
GB200 = GpuSpec(
    name="NVIDIA GB200",
    memory_mib=189471,
    sm_clock_max_mhz=2062.0,
    nvlink_bytes_per_s=900e9,
)

# Groq's GroqChip product brief: 230 MB on-die SRAM per chip; 16 chip-to-chip links (Linley Fall
# Processor Conference 2020).
GROQ_LPU = LpuSpec(name="GroqChip LPU", sram_mb=230.0, c2c_links=16)
