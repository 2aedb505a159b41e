"""The core's picture of the fleet, from births, deaths and telemetry alone."""

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.columns import GpuColumns, layout
from protocols.messages import Death, Telemetry
from sim.fleet_state import DeviceTable, FleetState, scatter
from tests import naive
from tests.samples import SAMPLES, TELEMETRY, block

BIRTH = SAMPLES["birth"][0]


def fleet() -> FleetState:
    state = FleetState()
    state.on_birth(BIRTH, now=100.0)
    return state


def test_a_birth_creates_racks_nodes_and_devices() -> None:
    state = fleet()
    assert state.racks.ids == ["r001"]
    assert state.nodes.ids == ["r001-n01", "r001-n02"]
    assert len(state.devices["gpu"].table) == 8
    assert list(state.nodes["gpus"]) == [4, 4]
    assert list(state.devices["gpu"].table["slot"]) == [0, 1, 2, 3] * 2
    state.on_birth(BIRTH, now=101.0)
    assert len(state.devices["gpu"].table) == 8, "a re-birth must not add devices"
    gpus = state.devices["gpu"].table
    assert [state.models.ids[m] for m in gpus["model"]] == ["NVIDIA GB200"] * 8
    assert [state.domains.ids[d] for d in gpus["domain"]] == ["r001-nvl"] * 8
    nics = state.devices["nic"].table
    assert [state.domains.ids[d] for d in nics["domain"]] == ["r001-n01"] * 4 + ["r001-n02"] * 4


def test_telemetry_lands_in_the_rows_of_its_devices() -> None:
    state = fleet()
    assert state.on_telemetry(TELEMETRY, now=101.0) is None
    gpu = state.devices["gpu"]
    sent = layout(GpuColumns).unpack(TELEMETRY.gpu, "t", 2)  # type: ignore[arg-type]
    np.testing.assert_array_equal(
        gpu.gauge("DCGM_FI_DEV_POWER_USAGE"), sent["DCGM_FI_DEV_POWER_USAGE"]
    )
    assert gpu.table["present"].all()
    assert state.counts.ingested == 1


def test_a_gpu_missing_from_telemetry_is_not_present() -> None:
    state = fleet()
    spec = layout(GpuColumns)
    full = spec.unpack(TELEMETRY.gpu, "t", 2)  # type: ignore[arg-type]
    keep = np.arange(8) != 5
    partial = spec.pack({n: full[n][keep] for n in spec.names})
    assert state.on_telemetry(msgspec.structs.replace(TELEMETRY, gpu=partial), now=101.0) is None
    assert list(state.devices["gpu"].table["present"]) == [True] * 5 + [False] + [True] * 2


def test_unknown_agents_old_sessions_and_unknown_devices_are_rejected() -> None:
    state = fleet()
    assert state.on_telemetry(msgspec.structs.replace(TELEMETRY, agent="r9"), 1.0)
    assert state.on_telemetry(msgspec.structs.replace(TELEMETRY, session=2), 1.0)
    too_many = msgspec.structs.replace(TELEMETRY, gpu=block(GpuColumns, 5, 2))
    assert "unknown gpu" in (state.on_telemetry(too_many, 1.0) or "")
    stranger = msgspec.structs.replace(TELEMETRY, nodes=["r001-n01", "r777-n01"])
    assert "unknown node" in (state.on_telemetry(stranger, 1.0) or "")
    assert state.counts.rejected == {
        "unknown agent": 1,
        "stale session": 1,
        "unknown device": 1,
        "unknown node": 1,
    }
    assert state.counts.ingested == 0


def test_sequence_gaps_are_counted() -> None:
    state = fleet()
    for seq in (1, 2, 5, 6, 9):
        assert state.on_telemetry(msgspec.structs.replace(TELEMETRY, seq=seq), 1.0) is None
    assert state.agents["r001"].gaps == 4


def test_a_death_of_the_current_session_takes_the_devices_away() -> None:
    state = fleet()
    state.on_telemetry(TELEMETRY, 1.0)
    assert not state.on_death(Death("r001", session=2))
    assert state.devices["gpu"].table["present"].all()
    assert state.on_death(Death("r001", session=3))
    assert not state.devices["gpu"].table["present"].any()
    assert not state.agents["r001"].alive


def test_tables_grow_and_keep_their_rows() -> None:
    state = FleetState()
    for rack in range(40):
        birth = msgspec.structs.replace(
            BIRTH,
            agent=f"r{rack:03d}",
            rack=f"r{rack:03d}",
            nodes=[
                msgspec.structs.replace(n, node=f"r{rack:03d}-n{i}")
                for i, n in enumerate(BIRTH.nodes)
            ],
        )
        state.on_birth(birth, 1.0)
    assert len(state.devices["gpu"].table) == 320
    assert state.nodes.rows["r039-n1"] == 79
    assert list(state.devices["gpu"].table["node"][-4:]) == [79] * 4


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**31))
def test_scatter_kernel_equals_its_naive_twin(rows: int, lanes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = rng.integers(rows, rows * 3)
    picked = rng.choice(table, rows, replace=False)
    values = rng.random((lanes, rows)).astype(np.float32)
    fast = np.zeros((lanes, table), np.float32)
    slow = np.zeros((lanes, table), np.float32)
    scatter(picked, values, fast)
    naive.scatter(picked, values, slow)
    np.testing.assert_array_equal(fast, slow)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.booleans(), st.integers(0, 2**31))
def test_a_block_lands_the_same_in_consecutive_rows_as_in_scattered_ones(
    rows: int, consecutive: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    spec = layout(GpuColumns)
    record = spec.unpack(
        spec.pack(
            {n: rng.integers(0, 90, rows).astype(spec.dtypes[i]) for i, n in enumerate(spec.names)}
        ),
        "t",
        100,
    )
    devices = DeviceTable(GpuColumns)
    devices.table.add_anonymous(rows * 3)
    start = int(rng.integers(0, rows * 2))
    picked = np.arange(start, start + rows) if consecutive else rng.choice(rows * 3, rows, False)
    devices.ingest(picked.astype(np.intp), record, now=5.0)
    expected = np.zeros((len(devices.gauges), rows * 3), np.float32)
    naive.scatter(picked, np.stack([record[n] for n in devices.gauges]), expected)
    np.testing.assert_array_equal(devices.table["gauges"], expected)
    for lane, name in enumerate(devices.counters):
        np.testing.assert_array_equal(devices.table["counters"][lane, picked], record[name])
    assert devices.table["seen"][picked].tolist() == [5.0] * rows
    assert int(devices.table["samples"].sum()) == rows


def test_telemetry_without_a_birth_is_unknown() -> None:
    state = FleetState()
    assert (
        state.on_telemetry(Telemetry("r1", 1, 1, 0.0, []), 1.0) == "telemetry from unknown agent r1"
    )
