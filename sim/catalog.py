"""Model and accelerator catalogues of the serving model, with the public figures they come from
(the devices' shared specs are protocols.hardware's)."""

from dataclasses import dataclass, replace
from typing import Literal

from protocols import hardware
from protocols.errors import AidcError

MIB = 2**20
BYTES_PER_MB = 1e6
"""LPU SRAM is counted in decimal MB, as Groq quotes its 230 MB per chip."""


@dataclass(frozen=True, slots=True)
class LlmModel:
    """One served language model: its shape, its serving precision and its default SLOs."""

    key: str
    name: str
    params: int
    """Total parameters."""
    active_params: int
    """Parameters each token passes through: all of them for a dense model, fewer for an MoE."""
    layers: int
    hidden_size: int
    kv_heads: int
    head_dim: int
    bytes_per_param: float
    """Serving precision of the weights: 2 for BF16, 1 for FP8 or INT8."""
    kv_element_bytes: float
    """Precision of the KV cache: 2 for BF16."""
    ttft_slo_s: float
    itl_slo_s: float
    """Default time-to-first-token and inter-token-latency objectives for interactive chat."""
    experts: int = 1
    experts_per_token: int = 1
    """Routed experts per MoE layer and how many of them each token uses; 1 and 1 when dense."""

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> float:
        """A K and a V vector per KV head per layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_element_bytes

    @property
    def flops_per_token(self) -> float:
        """A multiply and an add per active parameter; attention's own FLOPs are left out."""
        return 2.0 * self.active_params

    @property
    def expert_params(self) -> float:
        """Parameters of all routed experts: the part of the weights a token reads only in part.

        From total = shared + E * e and active = shared + k * e.
        """
        if self.experts <= self.experts_per_token:
            return 0.0
        per_expert = (self.params - self.active_params) / (self.experts - self.experts_per_token)
        return per_expert * self.experts

    @property
    def expert_bytes(self) -> float:
        return self.expert_params * self.bytes_per_param

    def with_precision(self, bytes_per_param: float) -> "LlmModel":
        """The same model served with weights of another precision (say 1 for 8-bit on LPUs)."""
        if bytes_per_param <= 0:
            raise ValueError(f"bytes per parameter must be positive, not {bytes_per_param}")
        return replace(self, bytes_per_param=bytes_per_param)


# Llama 3.1: config.json of meta-llama/Llama-3.1-{8B,70B,405B} (layers, hidden size, 8 KV heads of
# head dim 128). Parameter counts follow from those configs (vocabulary 128256, untied embeddings,
# MLP 14336/28672/53248) and match the model cards' 8B/70B/405B. 405B is served in FP8 as Meta
# released it (Llama-3.1-405B-Instruct-FP8) so that it fits on one 8-GPU H100 node.
# SLOs: MLPerf Inference's interactive scenarios (Llama-3.1-8B: TTFT 0.5 s, TPOT 30 ms;
# Llama-2-70B: 450 ms, 40 ms); 405B and Mixtral get looser ones of the same spirit.
LLAMA_3_1_8B = LlmModel(
    key="llama-3-1-8b",
    name="Llama 3.1 8B",
    params=8_030_261_248,
    active_params=8_030_261_248,
    layers=32,
    hidden_size=4096,
    kv_heads=8,
    head_dim=128,
    bytes_per_param=2.0,
    kv_element_bytes=2.0,
    ttft_slo_s=0.5,
    itl_slo_s=0.030,
)
LLAMA_3_1_70B = LlmModel(
    key="llama-3-1-70b",
    name="Llama 3.1 70B",
    params=70_553_706_496,
    active_params=70_553_706_496,
    layers=80,
    hidden_size=8192,
    kv_heads=8,
    head_dim=128,
    bytes_per_param=2.0,
    kv_element_bytes=2.0,
    ttft_slo_s=0.45,
    itl_slo_s=0.040,
)
LLAMA_3_1_405B = LlmModel(
    key="llama-3-1-405b",
    name="Llama 3.1 405B",
    params=405_853_388_800,
    active_params=405_853_388_800,
    layers=126,
    hidden_size=16384,
    kv_heads=8,
    head_dim=128,
    bytes_per_param=1.0,
    kv_element_bytes=2.0,
    ttft_slo_s=2.0,
    itl_slo_s=0.080,
)
# Mixtral 8x22B: config.json of mistralai/Mixtral-8x22B-v0.1 (56 layers, hidden 6144, 48 heads of
# 128, 8 KV heads, 8 experts of MLP 16384, 2 per token, vocabulary 32000); Mistral AI's
# announcement: "39B active parameters out of 141B". The counts follow from the config.
MIXTRAL_8X22B = LlmModel(
    key="mixtral-8x22b",
    name="Mixtral 8x22B",
    params=140_620_634_112,
    active_params=39_152_031_744,
    layers=56,
    hidden_size=6144,
    kv_heads=8,
    head_dim=128,
    bytes_per_param=2.0,
    kv_element_bytes=2.0,
    ttft_slo_s=1.0,
    itl_slo_s=0.050,
    experts=8,
    experts_per_token=2,
)
MODELS: dict[str, LlmModel] = {
    m.key: m for m in (LLAMA_3_1_8B, LLAMA_3_1_70B, LLAMA_3_1_405B, MIXTRAL_8X22B)
}

AcceleratorKind = Literal["gpu", "lpu"]


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One device a replica runs on, by the name the agents publish in their births."""

    name: str
    kind: AcceleratorKind
    bf16_flops: float
    """Dense (not sparse) 16-bit tensor FLOP/s."""
    fp8_flops: float
    """Dense 8-bit tensor FLOP/s (INT8 op/s on the LPU)."""
    memory_bytes: float
    """HBM as nvidia-smi reports it, or on-die SRAM of an LPU."""
    memory_bytes_per_s: float
    interconnect_bytes_per_s: float
    """Per device, each way: NVLink for GPUs, the chip-to-chip links for the LPU."""
    collective_latency_s: float
    """Fixed cost of one small all-reduce across the devices of a replica."""
    max_clock_mhz: float
    """The clock telemetry's clock is divided by to give a replica's clock factor."""

    def peak_flops(self, bytes_per_param: float) -> float:
        """Dense FLOP/s at a weight precision: the 8-bit figure from 1 byte down."""
        return self.fp8_flops if bytes_per_param <= 1 else self.bf16_flops


class UnknownAcceleratorError(AidcError, KeyError):
    """A device name the catalogue does not hold."""

    def __str__(self) -> str:
        return f"no accelerator named {self.args[0]!r}; known: {', '.join(sorted(ACCELERATORS))}"


class UnknownModelError(AidcError, KeyError):
    """A model key the catalogue does not hold."""

    def __str__(self) -> str:
        return f"no model {self.args[0]!r}; known: {', '.join(sorted(MODELS))}"


# NVLink latency: a small all-reduce within an NVLink domain costs a few microseconds (NCCL and
# vLLM's custom all-reduce at decode message sizes).
NVLINK_COLLECTIVE_LATENCY_S = 5e-6


def _gpu(
    spec: hardware.GpuSpec, bf16_flops: float, fp8_flops: float, memory_bytes_per_s: float
) -> Accelerator:
    """A GPU: its spec's memory, NVLink and max SM clock, joined by NVLink's collective latency."""
    return Accelerator(
        name=spec.name,
        kind="gpu",
        bf16_flops=bf16_flops,
        fp8_flops=fp8_flops,
        memory_bytes=spec.memory_mib * MIB,
        memory_bytes_per_s=memory_bytes_per_s,
        interconnect_bytes_per_s=spec.nvlink_bytes_per_s,
        collective_latency_s=NVLINK_COLLECTIVE_LATENCY_S,
        max_clock_mhz=spec.sm_clock_max_mhz,
    )


# Hopper: H100 SXM and H200 datasheets: 1,979 TFLOPS BF16 and 3,958 TFLOPS FP8 with sparsity
# (half that dense), 3.35 TB/s (H100) and 4.8 TB/s (H200).
H100 = _gpu(hardware.H100_SXM, bf16_flops=989e12, fp8_flops=1979e12, memory_bytes_per_s=3.35e12)
H200 = _gpu(hardware.H200, bf16_flops=989e12, fp8_flops=1979e12, memory_bytes_per_s=4.8e12)
# Blackwell: HGX B200 datasheet (8 GPUs: 36 PFLOPS BF16 and 72 PFLOPS FP8 with sparsity, 8 TB/s
# each) and GB200 NVL72 datasheet (72 GPUs: 360 PFLOPS BF16 and 720 PFLOPS FP8 with sparsity,
# 576 TB/s HBM3e in all); dense is half the sparse figure.
B200 = _gpu(hardware.B200, bf16_flops=2.25e15, fp8_flops=4.5e15, memory_bytes_per_s=8e12)
GB200 = _gpu(hardware.GB200, bf16_flops=2.5e15, fp8_flops=5e15, memory_bytes_per_s=8e12)
# GroqChip product brief: 750 TOPS INT8, 188 TFLOPS FP16, SRAM at 80 TB/s, 900 MHz.
# Linley Fall Processor Conference 2020: 16 chip-to-chip links of four 30 Gb/s lanes, 480 GB/s
# in all (240 each way). The collective latency is not published: 15 us per all-reduce across the
# hundreds of chips (and several hops) of a replica makes Llama 3.1 decode near the few hundred
# tokens/s per user for 70B and several hundred for 8B that Groq's public endpoints show.
GROQ_LPU = Accelerator(
    name=hardware.GROQ_LPU.name,
    kind="lpu",
    bf16_flops=188e12,
    fp8_flops=750e12,
    memory_bytes=hardware.GROQ_LPU.sram_mb * BYTES_PER_MB,
    memory_bytes_per_s=80e12,
    interconnect_bytes_per_s=240e9,
    collective_latency_s=15e-6,
    max_clock_mhz=900.0,
)
ACCELERATORS: dict[str, Accelerator] = {a.name: a for a in (H100, H200, B200, GB200, GROQ_LPU)}


def accelerator(name: str) -> Accelerator:
    """The accelerator a birth's device name stands for."""
    try:
        return ACCELERATORS[name]
    except KeyError:
        raise UnknownAcceleratorError(name) from None


def llm_model(key: str) -> LlmModel:
    """The model a key names."""
    try:
        return MODELS[key]
    except KeyError:
        raise UnknownModelError(key) from None
