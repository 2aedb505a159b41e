"""The route dialog: a model's traffic split across its pools, in percent summing to 100."""

import math
from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Static

from protocols.commands import ROUTE_SUM_TOLERANCE, Route
from protocols.messages import PoolStates
from tui.dialogs.form import Form
from tui.validate import InvalidInput, command, number


def current_split(states: PoolStates, model: str) -> dict[str, float]:
    """A model's route weights; without a route the core splits evenly over its pools that
    have ready replicas (over all of them when none has)."""
    pools = [p.pool for p in states.pools if p.model == model]
    route = next((r for r in states.routes if r.model == model), None)
    if route is not None:
        return {pool: route.weights.get(pool, 0.0) for pool in pools}
    able = [p.pool for p in states.pools if p.model == model and p.replicas_ready] or pools
    return {pool: 100.0 / len(able) if pool in able else 0.0 for pool in pools}


class RouteDialog(Form[Route]):
    """Edit one model's split; the total must be 100% before it can be sent."""

    SUBMIT = "Route"

    def __init__(self, model: str, split: dict[str, float], new_id: Callable[[], str]) -> None:
        super().__init__()
        self.model, self.split, self.new_id = model, split, new_id

    def title_text(self) -> str:
        return f"Route model {self.model}"

    def fields(self) -> ComposeResult:
        for index, (pool, weight) in enumerate(self.split.items()):
            with Horizontal(classes="dialog-row"):
                yield Label(pool, classes="dialog-label wide")
                yield Input(f"{weight:.4g}", id=f"weight-{index}", type="number")
                yield Label("%")
        yield Static("", id="route-sum", classes="dialog-note")

    def on_mount(self) -> None:
        self._show_sum()

    def on_input_changed(self, _: Input.Changed) -> None:
        self._show_sum()

    def _weights(self) -> dict[str, float]:
        return {
            pool: number(self.text(f"weight-{index}") or "0", f"weight of {pool}", low=0, high=100)
            for index, pool in enumerate(self.split)
        }

    def _show_sum(self) -> None:
        note = self.query_one("#route-sum", Static)
        try:
            total = math.fsum(self._weights().values())
        except InvalidInput as error:
            note.update(f"[red]{error}[/]")
            return
        ok = abs(total - 100.0) <= ROUTE_SUM_TOLERANCE
        note.update(f"total [{'green' if ok else 'red'}]{total:g}%[/] (must be 100%)")

    def result(self) -> Route:
        weights = self._weights()
        total = math.fsum(weights.values())
        if abs(total - 100.0) > ROUTE_SUM_TOLERANCE:
            raise InvalidInput(f"the weights add up to {total:g}%, not 100%")
        return command(Route, id=self.new_id(), model=self.model, weights=weights)
