"""The roofline serving-time model: its bounds, its limits and plausible figures."""

from collections.abc import Callable
from typing import NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sim.catalog import (
    ACCELERATORS,
    B200,
    GROQ_LPU,
    H100,
    LLAMA_3_1_8B,
    LLAMA_3_1_70B,
    LLAMA_3_1_405B,
    MIXTRAL_8X22B,
    MODELS,
    Accelerator,
    LlmModel,
)
from sim.roofline import (
    ITERATION_OVERHEAD_S,
    MBU,
    MEMORY_UTILISATION,
    MFU,
    ReplicaPerf,
    _decode_iteration_time,
    _kv_capacity_tokens,
    _prefill_time,
    _weight_read_bytes,
    chips_needed,
    decode_iteration_time,
    decode_tokens_per_s,
    devices_needed,
    fits,
    kv_capacity_tokens,
    max_batch,
    prefill_time,
    replica_perf,
)
from tests import naive


@pytest.fixture(scope="module")
def small() -> ReplicaPerf:
    """Llama 3.1 8B on one H100."""
    return replica_perf(LLAMA_3_1_8B, H100, 1)


@pytest.fixture(scope="module")
def large() -> ReplicaPerf:
    """Llama 3.1 70B on an 8-GPU H100 node."""
    return replica_perf(LLAMA_3_1_70B, H100, 8)


def test_decode_is_bandwidth_bound_at_small_batch(small: ReplicaPerf) -> None:
    context = 1000
    read = LLAMA_3_1_8B.weight_bytes + context * LLAMA_3_1_8B.kv_bytes_per_token
    expected = read / H100.memory_bytes_per_s / MBU + ITERATION_OVERHEAD_S
    assert decode_iteration_time(small, 1, context) == pytest.approx(expected, rel=0.01)


def test_decode_time_grows_with_batch_and_context(large: ReplicaPerf) -> None:
    times = [decode_iteration_time(large, b, b * 2048) for b in (1, 8, 64, 256)]
    assert times == sorted(times)
    assert times[0] < times[-1]
    assert decode_iteration_time(large, 8, 8 * 4096) > decode_iteration_time(large, 8, 8 * 1024)
    assert decode_iteration_time(large, 512, 512) > decode_iteration_time(large, 64, 512)


def test_throughput_saturates_as_the_batch_grows(small: ReplicaPerf) -> None:
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    rates = [decode_tokens_per_s(small, b, b * 256) for b in batches]
    assert rates == sorted(rates)
    assert rates[1] / rates[0] > 1.9, "at small batch a sequence more is almost free"
    assert rates[-1] / rates[-2] < 1.1, "at large batch it is not"
    assert rates[-1] < small.effective_flops / small.flops_per_token


def test_prefill_is_compute_bound_for_long_prompts(small: ReplicaPerf) -> None:
    tokens = 8192
    compute = tokens * LLAMA_3_1_8B.flops_per_token / (H100.bf16_flops * MFU)
    assert prefill_time(small, tokens) == pytest.approx(compute + ITERATION_OVERHEAD_S, rel=0.01)
    weights_read = LLAMA_3_1_8B.weight_bytes / (H100.memory_bytes_per_s * MBU)
    assert prefill_time(small, 1) >= weights_read, "one token still reads every weight"


def test_a_throttled_clock_slows_compute_but_not_memory_reads(small: ReplicaPerf) -> None:
    full = prefill_time(small, 2048)
    throttled = prefill_time(small, 2048, clock_factor=0.5)
    assert throttled == pytest.approx(2 * full - ITERATION_OVERHEAD_S, rel=0.01)
    assert decode_iteration_time(small, 1, 1000, clock_factor=0.5) == decode_iteration_time(
        small, 1, 1000
    )
    assert decode_iteration_time(small, 512, 512 * 64, clock_factor=0.2) > 2 * (
        decode_iteration_time(small, 512, 512 * 64)
    )


def test_kv_capacity_bounds_the_batch(large: ReplicaPerf) -> None:
    usable = H100.memory_bytes * 8 * MEMORY_UTILISATION
    expected = (usable - LLAMA_3_1_70B.weight_bytes) / LLAMA_3_1_70B.kv_bytes_per_token
    assert large.kv_capacity_tokens == int(expected)
    assert kv_capacity_tokens(LLAMA_3_1_70B, H100, 8) == large.kv_capacity_tokens
    batch = max_batch(large, 8192)
    assert batch == large.kv_capacity_tokens // 8192
    assert batch * 8192 <= large.kv_capacity_tokens < (batch + 1) * 8192
    decode_iteration_time(large, batch, batch * 8192)
    with pytest.raises(ValueError, match="exceed the replica's KV cache of"):
        decode_iteration_time(large, batch + 1, (batch + 1) * 8192)


def test_fit_and_the_devices_a_model_needs() -> None:
    assert fits(LLAMA_3_1_8B, H100, 1)
    assert not fits(LLAMA_3_1_70B, H100, 1)
    assert devices_needed(LLAMA_3_1_70B, H100) == 2
    assert fits(LLAMA_3_1_70B, H100, 2)
    assert devices_needed(LLAMA_3_1_405B, H100) == 6, "FP8 405B"
    assert fits(MIXTRAL_8X22B, H100, 4)
    assert fits(LLAMA_3_1_70B, B200, 1)


def test_an_lpu_replica_spans_hundreds_of_chips() -> None:
    eight_bit = LLAMA_3_1_70B.with_precision(1)
    chips = chips_needed(eight_bit)
    assert 300 < chips < 600
    assert chips_needed(eight_bit, kv_tokens=0) == pytest.approx(
        eight_bit.weight_bytes / (GROQ_LPU.memory_bytes * MEMORY_UTILISATION), abs=1
    )
    assert chips_needed(LLAMA_3_1_70B) > chips, "BF16 weights need more SRAM"
    assert not fits(eight_bit, GROQ_LPU, chips // 2)
    perf = replica_perf(eight_bit, GROQ_LPU, chips)
    assert perf.kv_capacity_tokens >= 32_768
    assert perf.effective_bandwidth == chips * GROQ_LPU.memory_bytes_per_s * MBU
    assert 200 < decode_tokens_per_s(perf, 1, 1024) < 600, "a few hundred tokens/s per user"


class StepConstants(NamedTuple):
    """A replica's constants in the order the step kernels take them, after the token counts."""

    flops_per_token: float
    effective_flops: float
    dense_weight_bytes: float
    expert_weight_bytes: float
    expert_fraction: float
    kv_bytes_per_token: float
    effective_bandwidth: float
    comm_latency_s: float
    comm_s_per_token: float
    overhead_s: float

    @classmethod
    def of(cls, perf: ReplicaPerf) -> "StepConstants":
        """The constants of a replica, read from the fields of the same names."""
        return cls(*(getattr(perf, name) for name in cls._fields))


def close(value: float) -> object:
    """Equal to `value` but for rounding, however small it is."""
    return pytest.approx(value, rel=1e-9, abs=0.0)


EXPERT_FRACTION = st.integers(1, 256).flatmap(
    lambda experts: st.integers(1, experts).map(lambda used: used / experts)
)
"""experts_per_token / experts of a model: 1 for a dense one."""
REPLICA = st.builds(
    StepConstants,
    flops_per_token=st.floats(1e9, 2e12),
    effective_flops=st.floats(1e14, 1e19),
    dense_weight_bytes=st.floats(1e8, 2e12),
    expert_weight_bytes=st.floats(0.0, 2e12),
    expert_fraction=EXPERT_FRACTION,
    kv_bytes_per_token=st.floats(1e3, 1e7),
    effective_bandwidth=st.floats(1e12, 1e17),
    comm_latency_s=st.floats(0.0, 1e-2),
    comm_s_per_token=st.floats(0.0, 1e-6),
    overhead_s=st.floats(0.0, 1e-2),
)
"""Step constants over wider ranges than the catalog's replicas (one GPU to an LPU replica's
thousands of chips), drawn independently, so that steps of either bound occur."""
DENSE = StepConstants.of(replica_perf(LLAMA_3_1_8B, H100, 1))
MOE = StepConstants.of(replica_perf(MIXTRAL_8X22B, H100, 4))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200_000), st.integers(0, 10**8), REPLICA, st.floats(0.01, 1.0))
@example(0, 0, MOE, 1.0)  # an empty step
@example(1, 0, DENSE, 1.0)  # one token, no comm: the weight read
@example(1, 10**6, MOE, 1.0)  # one token and its experts, a long context
@example(200_000, 0, DENSE, 0.01)  # compute-bound, throttled
@example(256, 256, MOE, 0.5)  # a batch that reads nearly every expert
def test_the_step_kernels_equal_their_naive_twins(
    tokens: int, context: int, replica: StepConstants, clock: float
) -> None:
    assert _prefill_time(tokens, *replica, clock) == close(
        naive.prefill_time(tokens, *replica, clock)
    )
    assert _decode_iteration_time(tokens, context, *replica, clock) == close(
        naive.decode_iteration_time(tokens, context, *replica, clock)
    )


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 2e12), st.floats(0.0, 2e12), EXPERT_FRACTION, st.integers(0, 200_000))
@example(1e9, 1e11, 0.25, 0)  # no token: the dense weights only
@example(1e9, 1e11, 1.0, 1)  # every expert at once
@example(1e9, 1e11, 1 / 256, 1)
@example(1e9, 1e11, 1 / 256, 10_000)
def test_the_weight_read_kernel_equals_its_naive_twin(
    dense: float, experts: float, fraction: float, tokens: int
) -> None:
    fast = _weight_read_bytes(dense, experts, fraction, tokens)
    assert fast == close(naive.weight_read_bytes(dense, experts, fraction, tokens))


@given(
    st.sampled_from([a.memory_bytes for a in ACCELERATORS.values()]) | st.floats(1e6, 1e12),
    st.integers(1, 4096),
    st.floats(0.5, 1.0),
    st.floats(0.0, 1e14),
    st.floats(1e3, 1e7),
)
@example(1000.0, 2, 0.5, 1000.0, 1.0)  # the weights fill the memory: no token
@example(1000.0, 2, 0.5, 1000.5, 1.0)  # they do not fit: below zero
@example(1000.0, 2, 0.5, 0.0, 3.0)  # a token's last bytes do not fit
def test_the_kv_capacity_kernel_equals_its_naive_twin(
    memory: float, devices: int, utilisation: float, weights: float, kv_per_token: float
) -> None:
    args = (memory, devices, utilisation, weights, kv_per_token)
    assert _kv_capacity_tokens(*args) == naive.kv_capacity_tokens(*args)


@pytest.mark.parametrize("accelerator", ACCELERATORS.values(), ids=list(ACCELERATORS))
@pytest.mark.parametrize("model", MODELS.values(), ids=list(MODELS))
def test_the_wrappers_give_the_kernels_the_replica_s_constants(
    model: LlmModel, accelerator: Accelerator
) -> None:
    tp = devices_needed(model, accelerator)
    perf = replica_perf(model, accelerator, tp)
    assert perf.kv_capacity_tokens == naive.kv_capacity_tokens(
        accelerator.memory_bytes,
        tp,
        MEMORY_UTILISATION,
        model.weight_bytes,
        model.kv_bytes_per_token,
    )
    constants = StepConstants.of(perf)
    for tokens, clock in ((0, 1.0), (1, 1.0), (2048, 0.7), (32_768, 0.3)):
        twin = naive.prefill_time(tokens, *constants, clock)
        assert prefill_time(perf, tokens, clock) == close(twin)
    for batch, context, clock in ((0, 0, 1.0), (1, 100, 1.0), (64, perf.kv_capacity_tokens, 0.5)):
        twin = naive.decode_iteration_time(batch, context, *constants, clock)
        assert decode_iteration_time(perf, batch, context, clock) == close(twin)


def test_mixture_of_experts_reads_only_the_experts_its_batch_routes_to() -> None:
    perf = replica_perf(MIXTRAL_8X22B, H100, 4)
    one = decode_iteration_time(perf, 1, 1)
    all_weights = MIXTRAL_8X22B.weight_bytes / perf.effective_bandwidth
    assert one < 0.5 * all_weights
    assert decode_iteration_time(perf, 64, 64) == pytest.approx(
        all_weights + perf.comm_latency_s + perf.overhead_s, rel=0.01
    )


def test_linear_pieces_add_up_to_the_dense_decode_time(small: ReplicaPerf) -> None:
    context = 5000
    pieces = small.decode_fixed_s + context * small.decode_s_per_context_token
    assert decode_iteration_time(small, 1, context) == pytest.approx(pieces, rel=1e-9)
    assert small.decode_s_per_sequence == small.flops_per_token / small.effective_flops


def test_tensor_parallel_pays_for_its_all_reduces(large: ReplicaPerf) -> None:
    assert replica_perf(LLAMA_3_1_8B, H100, 1).comm_latency_s == 0.0
    assert large.comm_latency_s == 2 * 80 * H100.collective_latency_s
    assert large.comm_s_per_token > 0
    assert large.weight_bytes_per_device == LLAMA_3_1_70B.weight_bytes / 8


def test_figures_are_plausible(small: ReplicaPerf, large: ReplicaPerf) -> None:
    assert 100 < decode_tokens_per_s(small, 1, 512) < 200
    assert 0.010 < prefill_time(small, 2048) < 0.100
    assert 60 < decode_tokens_per_s(large, 1, 512) < 200
    assert 2000 < decode_tokens_per_s(large, 64, 64 * 1024) < 20_000
    assert prefill_time(large, 2048) < LLAMA_3_1_70B.ttft_slo_s
    assert decode_iteration_time(large, 64, 64 * 1024) < LLAMA_3_1_70B.itl_slo_s


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: prefill_time(p, -1), "prompt tokens must be at least 0, not -1"),
        (lambda p: decode_iteration_time(p, -2, 10), "batch must be at least 0, not -2"),
        (lambda p: decode_iteration_time(p, 1, -5), "context tokens must be at least 0"),
        (lambda p: prefill_time(p, 10, clock_factor=0.0), "clock factor .* must be above 0"),
        (lambda p: prefill_time(p, 10, clock_factor=1.5), "at most 1, not 1.5"),
        (lambda p: decode_iteration_time(p, 1, 1, float("nan")), "clock factor"),
        (lambda p: max_batch(p, 0), "tokens per sequence must be at least 1, not 0"),
        (lambda p: replica_perf(LLAMA_3_1_8B, H100, 0), "tensor parallel must be at least 1"),
        (lambda p: devices_needed(LLAMA_3_1_8B, H100, -1), "KV tokens must be at least 0"),
        (
            lambda p: replica_perf(LLAMA_3_1_70B, H100, 1),
            r"Llama 3.1 70B does not fit on 1 x NVIDIA H100 80GB HBM3: 141.1 GB of weights, "
            r".* it needs at least 2 devices",
        ),
    ],
)
def test_bad_inputs_raise_a_clear_sentence(
    small: ReplicaPerf, call: Callable[[ReplicaPerf], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(small)
