"""The split the console shows for a model without a route matches the core's default."""

from protocols.messages import PoolState, PoolStates, RouteState
from tui.dialogs.route import current_split


def pools(*ready: int) -> list[PoolState]:
    return [PoolState(f"p{i}", "m", "H100", replicas_ready=n) for i, n in enumerate(ready)]


def test_without_a_route_the_split_is_even_over_pools_that_can_serve() -> None:
    assert current_split(PoolStates(0.0, pools(2, 0, 1)), "m") == {
        "p0": 50.0,
        "p1": 0.0,
        "p2": 50.0,
    }
    assert current_split(PoolStates(0.0, pools(0, 0)), "m") == {"p0": 50.0, "p1": 50.0}


def test_a_route_is_shown_as_it_is() -> None:
    states = PoolStates(0.0, pools(2, 0), [RouteState("m", {"p1": 100.0})])
    assert current_split(states, "m") == {"p0": 0.0, "p1": 100.0}
