"""Roofline serving times: prefill and decode iterations of a replica, and its KV-cache capacity.

A step takes the longer of its compute time (FLOPs over the devices' FLOP/s) and its memory time
(weights and KV cache read over their bandwidth), each at a stated efficiency, plus the
tensor-parallel all-reduces and a fixed host overhead. A throttled clock stretches compute only.
"""

import math
from dataclasses import dataclass

from numba import njit

from sim.catalog import GROQ_LPU, Accelerator, LlmModel

MFU = 0.5
"""Model FLOPs utilisation: the fraction of dense peak FLOP/s that prefill and large decode
batches reach (vLLM and TensorRT-LLM report 40-60% on H100)."""
MBU = 0.7
"""Model bandwidth utilisation: the fraction of peak memory bandwidth decode reaches reading
weights and KV cache (60-80% is typical of tuned decode kernels)."""
MEMORY_UTILISATION = 0.9
"""Fraction of device memory the server claims for weights and KV cache (vLLM's default
gpu_memory_utilization); the rest holds activations, CUDA graphs and the driver's context."""
ITERATION_OVERHEAD_S = 0.5e-3
"""Host-side cost of every engine step: scheduling, sampling and launching (with CUDA graphs)."""
ACTIVATION_BYTES = 2
"""Precision of the activations the tensor-parallel devices all-reduce (BF16)."""
ALLREDUCES_PER_LAYER = 2
"""Megatron-style tensor parallelism: one all-reduce after attention, one after the MLP."""
LPU_KV_TOKENS = 32_768
"""KV-cache room `chips_needed` adds to the weights unless told otherwise: a few long chats."""


@dataclass(frozen=True, slots=True)
class ReplicaPerf:
    """The constants a serving kernel needs for one (model, accelerator, tensor parallel) replica.

    `tensor_parallel` is the number of devices a replica spans: GPUs in an NVLink domain, or the
    hundreds of chips of an LPU replica. Rates are for the whole replica, efficiencies applied.
    """

    model: LlmModel
    accelerator: Accelerator
    tensor_parallel: int
    weight_bytes_per_device: float
    kv_capacity_tokens: int
    flops_per_token: float
    effective_flops: float
    """tensor_parallel * peak FLOP/s at the model's precision * MFU."""
    effective_bandwidth: float
    """tensor_parallel * memory bandwidth * MBU."""
    dense_weight_bytes: float
    """Weights every step reads whatever the batch: all but the routed experts."""
    expert_weight_bytes: float
    expert_fraction: float
    """Share of the routed experts one token uses (experts_per_token / experts)."""
    kv_bytes_per_token: float
    comm_latency_s: float
    """All-reduce latency per step: zero on one device."""
    comm_s_per_token: float
    """All-reduce transfer time per token of the step."""
    overhead_s: float

    @property
    def prefill_s_per_token(self) -> float:
        """Compute-bound prefill time per prompt token at full clock, all-reduce included."""
        return self.flops_per_token / self.effective_flops + self.comm_s_per_token

    @property
    def decode_fixed_s(self) -> float:
        """The part of a one-sequence decode iteration no batch or context adds to."""
        weights = _weight_read_bytes(
            self.dense_weight_bytes, self.expert_weight_bytes, self.expert_fraction, 1
        )
        return float(weights) / self.effective_bandwidth + self.comm_latency_s + self.overhead_s

    @property
    def decode_s_per_context_token(self) -> float:
        """Decode iteration time per token of KV cache read."""
        return self.kv_bytes_per_token / self.effective_bandwidth

    @property
    def decode_s_per_sequence(self) -> float:
        """Compute floor of a decode iteration per sequence in the batch, at full clock."""
        return self.flops_per_token / self.effective_flops


@njit(cache=True)
def _weight_read_bytes(
    dense_bytes: float, expert_bytes: float, expert_fraction: float, tokens: int
) -> float:
    """Dense weights, and the experts `tokens` tokens route to if routing is uniform."""
    return dense_bytes + expert_bytes * (1.0 - (1.0 - expert_fraction) ** tokens)


@njit(cache=True)
def _kv_capacity_tokens(
    memory_bytes: float,
    devices: int,
    memory_utilisation: float,
    weight_bytes: float,
    kv_bytes_per_token: float,
) -> int:
    """Tokens of KV cache left once the weights are in: negative when they do not fit."""
    return math.floor(
        (memory_bytes * devices * memory_utilisation - weight_bytes) / kv_bytes_per_token
    )


@njit(cache=True)
def _prefill_time(
    tokens: int,
    flops_per_token: float,
    effective_flops: float,
    dense_weight_bytes: float,
    expert_weight_bytes: float,
    expert_fraction: float,
    kv_bytes_per_token: float,
    effective_bandwidth: float,
    comm_latency_s: float,
    comm_s_per_token: float,
    overhead_s: float,
    clock_factor: float,
) -> float:
    """One step prefilling `tokens` prompt tokens: compute-bound but never under the weight read."""
    if tokens <= 0:
        return 0.0
    compute = tokens * flops_per_token / (effective_flops * clock_factor)
    weights = _weight_read_bytes(dense_weight_bytes, expert_weight_bytes, expert_fraction, tokens)
    memory = (weights + tokens * kv_bytes_per_token) / effective_bandwidth
    return max(compute, memory) + comm_latency_s + tokens * comm_s_per_token + overhead_s


@njit(cache=True)
def _decode_iteration_time(
    batch: int,
    context_tokens: int,
    flops_per_token: float,
    effective_flops: float,
    dense_weight_bytes: float,
    expert_weight_bytes: float,
    expert_fraction: float,
    kv_bytes_per_token: float,
    effective_bandwidth: float,
    comm_latency_s: float,
    comm_s_per_token: float,
    overhead_s: float,
    clock_factor: float,
) -> float:
    """One decode step of `batch` sequences holding `context_tokens` tokens of KV cache in all:
    memory-bound but never under the compute time."""
    if batch <= 0:
        return 0.0
    compute = batch * flops_per_token / (effective_flops * clock_factor)
    weights = _weight_read_bytes(dense_weight_bytes, expert_weight_bytes, expert_fraction, batch)
    memory = (weights + context_tokens * kv_bytes_per_token) / effective_bandwidth
    return max(compute, memory) + comm_latency_s + batch * comm_s_per_token + overhead_s


def _check_count(what: str, value: int, least: int = 0) -> None:
    if value < least:
        raise ValueError(f"{what} must be at least {least}, not {value}")


def _check_clock(clock_factor: float) -> None:
    if not (math.isfinite(clock_factor) and 0.0 < clock_factor <= 1.0):
        raise ValueError(
            f"clock factor (SM clock over max clock) must be above 0 and at most 1, "
            f"not {clock_factor}"
        )


def _usable_bytes(accelerator: Accelerator, devices: int) -> float:
    return accelerator.memory_bytes * devices * MEMORY_UTILISATION


def fits(model: LlmModel, accelerator: Accelerator, tensor_parallel: int) -> bool:
    """Whether the weights, and a token of KV cache, fit in the devices' usable memory."""
    _check_count("tensor parallel", tensor_parallel, least=1)
    capacity = _kv_capacity_tokens(
        accelerator.memory_bytes,
        tensor_parallel,
        MEMORY_UTILISATION,
        model.weight_bytes,
        model.kv_bytes_per_token,
    )
    return bool(capacity >= 1)


def devices_needed(model: LlmModel, accelerator: Accelerator, kv_tokens: int = 0) -> int:
    """The fewest devices whose usable memory holds the weights and `kv_tokens` of KV cache."""
    _check_count("KV tokens", kv_tokens)
    needed = model.weight_bytes + max(kv_tokens, 1) * model.kv_bytes_per_token
    devices = max(1, math.ceil(needed / _usable_bytes(accelerator, 1)))
    while _usable_bytes(accelerator, devices) < needed:  # ceil of a rounded quotient
        devices += 1
    return devices


def chips_needed(model: LlmModel, kv_tokens: int = LPU_KV_TOKENS) -> int:
    """LPU chips a replica spans: the weights and the KV cache live in aggregate SRAM."""
    return devices_needed(model, GROQ_LPU, kv_tokens)


def kv_capacity_tokens(model: LlmModel, accelerator: Accelerator, tensor_parallel: int) -> int:
    """Tokens of KV cache a replica holds beside its weights; ValueError if they do not fit."""
    _check_fits(model, accelerator, tensor_parallel)
    return int(
        _kv_capacity_tokens(
            accelerator.memory_bytes,
            tensor_parallel,
            MEMORY_UTILISATION,
            model.weight_bytes,
            model.kv_bytes_per_token,
        )
    )


def _check_fits(model: LlmModel, accelerator: Accelerator, tensor_parallel: int) -> None:
    if not fits(model, accelerator, tensor_parallel):
        raise ValueError(
            f"{model.name} does not fit on {tensor_parallel} x {accelerator.name}: "
            f"{model.weight_bytes / 1e9:.1f} GB of weights, "
            f"{_usable_bytes(accelerator, tensor_parallel) / 1e9:.1f} GB usable "
            f"at {MEMORY_UTILISATION:.0%}; it needs at least "
            f"{devices_needed(model, accelerator)} devices"
        )


def replica_perf(model: LlmModel, accelerator: Accelerator, tensor_parallel: int) -> ReplicaPerf:
    """The roofline constants of a replica; ValueError if the model does not fit on it."""
    capacity = kv_capacity_tokens(model, accelerator, tensor_parallel)
    tp = tensor_parallel
    allreduces = ALLREDUCES_PER_LAYER * model.layers if tp > 1 else 0
    ring_bytes_per_token = 2.0 * (tp - 1) / tp * model.hidden_size * ACTIVATION_BYTES
    return ReplicaPerf(
        model=model,
        accelerator=accelerator,
        tensor_parallel=tp,
        weight_bytes_per_device=model.weight_bytes / tp,
        kv_capacity_tokens=capacity,
        flops_per_token=model.flops_per_token,
        effective_flops=tp * accelerator.peak_flops(model.bytes_per_param) * MFU,
        effective_bandwidth=tp * accelerator.memory_bytes_per_s * MBU,
        dense_weight_bytes=model.weight_bytes - model.expert_bytes,
        expert_weight_bytes=model.expert_bytes,
        expert_fraction=model.experts_per_token / model.experts,
        kv_bytes_per_token=model.kv_bytes_per_token,
        comm_latency_s=allreduces * accelerator.collective_latency_s,
        comm_s_per_token=allreduces * ring_bytes_per_token / accelerator.interconnect_bytes_per_s,
        overhead_s=ITERATION_OVERHEAD_S,
    )


def prefill_time(perf: ReplicaPerf, tokens: int, clock_factor: float = 1.0) -> float:
    """Seconds of one step prefilling `tokens` prompt tokens (of one or many requests)."""
    _check_count("prompt tokens", tokens)
    _check_clock(clock_factor)
    return float(
        _prefill_time(
            tokens,
            perf.flops_per_token,
            perf.effective_flops,
            perf.dense_weight_bytes,
            perf.expert_weight_bytes,
            perf.expert_fraction,
            perf.kv_bytes_per_token,
            perf.effective_bandwidth,
            perf.comm_latency_s,
            perf.comm_s_per_token,
            perf.overhead_s,
            clock_factor,
        )
    )


def decode_iteration_time(
    perf: ReplicaPerf, batch: int, context_tokens: int, clock_factor: float = 1.0
) -> float:
    """Seconds of one decode step of `batch` sequences with `context_tokens` of KV cache in all."""
    _check_count("batch", batch)
    _check_count("context tokens", context_tokens)
    _check_clock(clock_factor)
    if context_tokens > perf.kv_capacity_tokens:
        raise ValueError(
            f"{context_tokens} tokens of context exceed the replica's KV cache of "
            f"{perf.kv_capacity_tokens} tokens"
        )
    return float(
        _decode_iteration_time(
            batch,
            context_tokens,
            perf.flops_per_token,
            perf.effective_flops,
            perf.dense_weight_bytes,
            perf.expert_weight_bytes,
            perf.expert_fraction,
            perf.kv_bytes_per_token,
            perf.effective_bandwidth,
            perf.comm_latency_s,
            perf.comm_s_per_token,
            perf.overhead_s,
            clock_factor,
        )
    )


def decode_tokens_per_s(
    perf: ReplicaPerf, batch: int, context_tokens: int, clock_factor: float = 1.0
) -> float:
    """Tokens a replica generates per second: one per sequence per decode step."""
    step = decode_iteration_time(perf, batch, context_tokens, clock_factor)
    return batch / step if batch else 0.0


def max_batch(perf: ReplicaPerf, tokens_per_sequence: int) -> int:
    """Sequences of `tokens_per_sequence` tokens the replica's KV cache holds at once."""
    _check_count("tokens per sequence", tokens_per_sequence, least=1)
    return perf.kv_capacity_tokens // tokens_per_sequence
