"""The hardware catalogue: every rack kind is consistent and every figure is plausible."""

import pytest

from agents.catalog import (
    FULL_LOAD_HEADROOM_C,
    GPU_MODELS,
    INLET_C,
    LPU_MODELS,
    NIC_MODELS,
    RACK_KINDS,
    SPECTRUM_4,
    SWITCH_MODELS,
    GpuModel,
    RackKind,
)
from protocols.columns import MAX_ROWS


@pytest.mark.parametrize("kind", RACK_KINDS.values(), ids=list(RACK_KINDS))
def test_every_rack_kind_is_consistent(kind: RackKind) -> None:
    assert RACK_KINDS[kind.key] is kind
    assert kind.nodes_per_rack >= 1
    assert (kind.gpu is not None) == (kind.gpus_per_node > 0)
    assert (kind.lpu is not None) == (kind.lpus_per_node > 0)
    assert (kind.gpu is None) != (kind.lpu is None), "a rack holds GPUs or LPUs"
    assert kind.nics_per_node == kind.gpus_per_node, "one back-end NIC per GPU"
    assert (kind.nic is not None) == (kind.nics_per_node > 0)
    assert kind.gpus_per_rack + kind.lpus_per_rack <= MAX_ROWS
    if kind.gpu is not None:
        assert kind.gpu in GPU_MODELS.values()
        assert kind.nvlink_domain in ("rack", "node")
    else:
        assert kind.nvlink_domain == "none"
    if kind.nic is not None:
        assert kind.nic in NIC_MODELS.values()


def test_rack_kinds_match_the_systems_they_model() -> None:
    assert set(RACK_KINDS) == {"nvl72", "hgx-h100", "hgx-h200", "hgx-b200", "lpu"}
    nvl72 = RACK_KINDS["nvl72"]
    assert (nvl72.nodes_per_rack, nvl72.gpus_per_node, nvl72.nvlink_domain) == (18, 4, "rack")
    assert nvl72.gpus_per_rack == 72
    assert nvl72.gpu is GPU_MODELS["gb200"]
    for key, gpu in (("hgx-h100", "h100-sxm"), ("hgx-h200", "h200"), ("hgx-b200", "b200")):
        hgx = RACK_KINDS[key]
        assert (hgx.nodes_per_rack, hgx.gpus_per_node, hgx.nvlink_domain) == (4, 8, "node")
        assert hgx.gpu is GPU_MODELS[gpu]
        assert gpu.split("-")[0].upper() in hgx.system
    lpu = RACK_KINDS["lpu"]
    assert (lpu.nodes_per_rack, lpu.lpus_per_node, lpu.lpus_per_rack) == (9, 8, 72)


@pytest.mark.parametrize("gpu", GPU_MODELS.values(), ids=list(GPU_MODELS))
def test_gpu_figures_are_sane(gpu: GpuModel) -> None:
    assert GPU_MODELS[gpu.key] is gpu
    assert gpu.spec.name.startswith("NVIDIA ")
    assert 80_000 <= gpu.spec.memory_mib <= 200_000
    assert 600 <= gpu.power_limit_w <= 1300
    assert 0 < gpu.idle_power_w < gpu.power_limit_w / 4
    assert 100 <= gpu.sm_clock_min_mhz < gpu.spec.sm_clock_max_mhz <= 2500
    assert 1000 <= gpu.mem_clock_mhz <= 5000
    assert 80 <= gpu.slowdown_temp_c < gpu.shutdown_temp_c <= 110
    assert 10 <= gpu.thermal_tau_s <= 100
    assert 100e9 <= gpu.spec.nvlink_bytes_per_s <= 1e12
    full_load = INLET_C + gpu.thermal_resistance_c_per_w * gpu.power_limit_w
    margin = gpu.slowdown_temp_c - full_load
    assert FULL_LOAD_HEADROOM_C - 1 <= margin <= FULL_LOAD_HEADROOM_C + 1


def test_published_capacities() -> None:
    assert GPU_MODELS["h100-sxm"].spec.name == "NVIDIA H100 80GB HBM3"
    assert GPU_MODELS["h100-sxm"].power_limit_w == GPU_MODELS["h200"].power_limit_w == 700
    assert GPU_MODELS["h200"].spec.memory_mib * 2**20 == pytest.approx(141e9, rel=0.08)
    assert GPU_MODELS["gb200"].spec.memory_mib * 2**20 == pytest.approx(186e9, rel=0.08)
    assert GPU_MODELS["b200"].power_limit_w == 1000
    assert GPU_MODELS["gb200"].power_limit_w >= 1200
    assert {m.speed_gbps for m in NIC_MODELS.values()} == {400, 800}


def test_switch_and_lpu_figures_are_sane() -> None:
    assert SWITCH_MODELS[SPECTRUM_4.key] is SPECTRUM_4
    assert SPECTRUM_4.ports == 64
    assert SPECTRUM_4.port_gbps == 800
    assert SPECTRUM_4.ports * SPECTRUM_4.port_gbps == SPECTRUM_4.capacity_tbps * 1000
    assert 50 <= SPECTRUM_4.buffer_mb <= 500
    for lpu in LPU_MODELS.values():
        assert lpu.spec.sram_mb == 230
        assert 0 < lpu.idle_power_w < lpu.typical_power_w < lpu.max_power_w <= 500
        assert lpu.spec.c2c_links > 0
        assert INLET_C + lpu.thermal_resistance_c_per_w * lpu.max_power_w < 105
