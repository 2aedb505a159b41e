"""The scale dialog: a pool's desired replicas, checked as a whole number in range."""

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Static

from protocols.commands import Scale
from protocols.messages import PoolState
from tui.dialogs.form import Form
from tui.validate import command, number

MAX_REPLICAS = 1_000_000


class ScaleDialog(Form[Scale]):
    """Set how many replicas a pool should run."""

    SUBMIT = "Scale"

    def __init__(self, pool: PoolState, new_id: Callable[[], str]) -> None:
        super().__init__()
        self.pool, self.new_id = pool, new_id

    def title_text(self) -> str:
        return f"Scale pool {self.pool.pool}"

    def fields(self) -> ComposeResult:
        pool = self.pool
        yield Static(
            f"{pool.model} on {pool.hardware}: desired {pool.replicas_desired}, "
            f"ready {pool.replicas_ready}, warming {pool.replicas_warming}, "
            f"min available {pool.min_available}"
            + (" · the autoscaler is on and may change this" if pool.autoscale else ""),
            classes="dialog-note",
        )
        with Horizontal(classes="dialog-row"):
            yield Label("replicas", classes="dialog-label")
            yield Input(str(pool.replicas_desired), id="replicas", type="integer")

    def result(self) -> Scale:
        replicas = number(self.text("replicas"), "replicas", whole=True, low=0, high=MAX_REPLICAS)
        return command(Scale, id=self.new_id(), pool=self.pool.pool, replicas=int(replicas))
