"""Lost and failed nodes: agents gone or silent, GPUs missing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.liveness import STALE_INTERVALS, mark_lost_and_failed
from sim.tables import Table
from tests import naive

LOST, FAILED = 4, 5


def tables(nodes: int, gpu_node: np.ndarray) -> tuple[Table, Table]:
    """A node table and a GPU table (every GPU present) of the given sizes."""
    node_table = Table({"alive": np.bool_, "seen": np.float64, "interval": np.float64})
    node_table.add([f"n{i}" for i in range(nodes)])
    gpu_table = Table({"node": np.int32, "present": np.bool_})
    gpu_table.add_anonymous(gpu_node.size)
    gpu_table["node"][:] = gpu_node
    gpu_table["present"][:] = True
    return node_table, gpu_table


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 120), st.integers(0, 2**31), st.floats(0.5, 50.0))
def test_marks_equal_the_naive_twin(nodes: int, gpus: int, seed: int, speed: float) -> None:
    rng = np.random.default_rng(seed)
    node_table, gpu_table = tables(nodes, rng.integers(0, nodes, gpus))
    node_table["alive"][:] = rng.random(nodes) > 0.2
    node_table["seen"][:] = rng.uniform(0.0, 100.0, nodes)
    node_table["interval"][:] = rng.choice([1.0, 2.0, 5.0], nodes)
    gpu_table["present"][:] = rng.random(gpus) > 0.1
    states = rng.integers(0, 4, nodes).astype(np.uint8)
    twin = naive.mark_lost_and_failed(
        states,
        (node_table["alive"], node_table["seen"], node_table["interval"]),
        (gpu_table["node"], gpu_table["present"]),
        STALE_INTERVALS * speed,
        100.0,
        LOST,
        FAILED,
    )
    mark_lost_and_failed(states, node_table, gpu_table, 100.0, speed, LOST, FAILED)
    assert states.tolist() == twin


def test_a_node_is_lost_after_three_silent_intervals_scaled_by_speed() -> None:
    node_table, gpu_table = tables(2, np.array([0, 1]))
    node_table["alive"][:] = True
    node_table["seen"][:] = 10.0
    node_table["interval"][:] = [1.0, 2.0]
    states = np.zeros(2, np.uint8)
    mark_lost_and_failed(states, node_table, gpu_table, 10.0 + 3 * 2.0 * 10.0, 10.0, LOST, FAILED)
    assert states.tolist() == [LOST, 0]  # 60 simulated seconds: 20 intervals of 1 s, 10 of 2 s


def test_a_missing_gpu_naming_no_node_is_refused() -> None:
    node_table, gpu_table = tables(2, np.array([0, 7]))
    node_table["alive"][:] = True
    gpu_table["present"][1] = False
    with pytest.raises(ValueError, match="beyond the node table"):
        mark_lost_and_failed(np.zeros(2, np.uint8), node_table, gpu_table, 0.0, 1.0, LOST, FAILED)
