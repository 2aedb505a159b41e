"""The pools table: a pool the site has no hardware for says so instead of an SLO figure, and
is not shown short of replicas."""

from protocols.messages import PoolState
from tui.screens.pools import POOL_COLUMNS, pool_cells


def _cell(pool: PoolState, column: str) -> str:
    return str(pool_cells(pool)[[key for key, _ in POOL_COLUMNS].index(column)])


def test_a_pool_without_hardware_says_so_instead_of_an_slo() -> None:
    empty = PoolState("p", "m", "NVIDIA B200", replicas_desired=2, has_hardware=False)
    assert _cell(empty, "slo") == "no hardware"
    assert pool_cells(empty)[3].style == "dim"  # type: ignore[union-attr]
    served = PoolState("q", "m", "NVIDIA H100", replicas_desired=2, slo_attainment=0.5)
    assert _cell(served, "slo") == "50%"
    assert pool_cells(served)[3].style == "yellow"  # type: ignore[union-attr]
