"""The core's model and accelerator catalogues: known figures, and the agents' device names."""

import pytest

from agents.catalog import GPU_MODELS, LPU_MODELS
from sim.catalog import (
    ACCELERATORS,
    LLAMA_3_1_8B,
    LLAMA_3_1_70B,
    LLAMA_3_1_405B,
    MIB,
    MIXTRAL_8X22B,
    MODELS,
    Accelerator,
    LlmModel,
    UnknownAcceleratorError,
    UnknownModelError,
    accelerator,
    llm_model,
)


def test_llama_70b_kv_cache_is_the_known_327680_bytes_per_token() -> None:
    assert LLAMA_3_1_70B.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2 == 327_680


def test_kv_bytes_per_token_of_the_other_models() -> None:
    assert LLAMA_3_1_8B.kv_bytes_per_token == 131_072
    assert LLAMA_3_1_405B.kv_bytes_per_token == 2 * 126 * 8 * 128 * 2
    assert MIXTRAL_8X22B.kv_bytes_per_token == 2 * 56 * 8 * 128 * 2


def test_weight_bytes_follow_params_and_precision() -> None:
    assert LLAMA_3_1_8B.weight_bytes == pytest.approx(16.06e9, rel=1e-3)
    assert LLAMA_3_1_70B.weight_bytes == pytest.approx(141.1e9, rel=1e-3)
    assert LLAMA_3_1_405B.weight_bytes == pytest.approx(405.9e9, rel=1e-3), "FP8"
    assert LLAMA_3_1_70B.with_precision(1).weight_bytes == LLAMA_3_1_70B.params
    assert LLAMA_3_1_70B.flops_per_token == 2 * LLAMA_3_1_70B.params


def test_mixture_of_experts_splits_shared_and_routed_weights() -> None:
    m = MIXTRAL_8X22B
    assert m.flops_per_token == 2 * m.active_params < 2 * m.params / 3
    per_expert = m.expert_params / m.experts
    shared = m.params - m.expert_params
    assert shared + m.experts_per_token * per_expert == pytest.approx(m.active_params)
    assert 4e9 < shared < 6e9, "attention and embeddings of 56 layers"
    assert LLAMA_3_1_70B.expert_params == 0.0


@pytest.mark.parametrize("model", MODELS.values(), ids=list(MODELS))
def test_model_figures_are_sane(model: LlmModel) -> None:
    assert MODELS[model.key] is model
    assert llm_model(model.key) is model
    assert 0 < model.active_params <= model.params
    assert model.bytes_per_param in (1.0, 2.0)
    assert model.head_dim * model.kv_heads <= model.hidden_size
    assert 0.1 <= model.ttft_slo_s <= 5.0
    assert 0.01 <= model.itl_slo_s <= 0.2
    assert (model.experts > 1) == (model.active_params < model.params)


def test_every_device_the_agents_publish_is_in_the_catalogue() -> None:
    for gpu in GPU_MODELS.values():
        device = accelerator(gpu.spec.name)
        assert device.kind == "gpu"
        assert device.memory_bytes == gpu.spec.memory_mib * MIB
        assert device.max_clock_mhz == gpu.spec.sm_clock_max_mhz
        assert device.interconnect_bytes_per_s == gpu.spec.nvlink_bytes_per_s
    for lpu in LPU_MODELS.values():
        device = accelerator(lpu.spec.name)
        assert device.kind == "lpu"
        assert device.memory_bytes == lpu.spec.sram_mb * 1e6


@pytest.mark.parametrize("device", ACCELERATORS.values(), ids=list(ACCELERATORS))
def test_accelerator_figures_are_sane(device: Accelerator) -> None:
    assert ACCELERATORS[device.name] is device
    assert device.bf16_flops < device.fp8_flops <= 4 * device.bf16_flops
    assert device.peak_flops(1) == device.fp8_flops
    assert device.peak_flops(2) == device.bf16_flops
    if device.kind == "gpu":
        assert 0.9e15 < device.bf16_flops < 3e15
        assert 3e12 <= device.memory_bytes_per_s <= 8e12
        assert 80e9 < device.memory_bytes < 200e9
    else:
        assert device.memory_bytes == 230e6
        assert device.memory_bytes_per_s == 80e12


def test_unknown_names_raise_a_key_error_with_a_sentence() -> None:
    with pytest.raises(UnknownAcceleratorError) as caught:
        accelerator("NVIDIA A100-SXM4-80GB")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value).startswith("no accelerator named 'NVIDIA A100-SXM4-80GB'; known: ")
    with pytest.raises(UnknownModelError, match="no model 'gpt-5'"):
        llm_model("gpt-5")


def test_with_precision_rejects_a_nonsense_precision() -> None:
    with pytest.raises(ValueError, match="bytes per parameter must be positive"):
        LLAMA_3_1_8B.with_precision(0)
