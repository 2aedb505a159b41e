"""The autoscaler dialog: on or off, replica bounds, and its queue-depth or TTFT target."""

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Switch

from protocols.commands import Autoscale
from protocols.messages import PoolState
from tui.dialogs.form import Form
from tui.validate import command, number

FIELDS = (
    ("min_replicas", "min replicas", "1", True),
    ("max_replicas", "max replicas", "16", True),
    ("target_queue_depth", "waiting per replica", "", False),
    ("target_ttft_s", "TTFT p99 target (s)", "", False),
    ("cooldown_s", "cooldown (s)", "60", False),
)
"""(field, label, default, whole number) of each input; empty means the core's default."""


def _said(enabled: bool) -> str:
    return "on: it resizes the pool" if enabled else "off: the pool keeps its size"


class AutoscaleDialog(Form[Autoscale]):
    """Turn a pool's autoscaler on or off and set its targets."""

    SUBMIT = "Apply"

    def __init__(self, pool: PoolState, new_id: Callable[[], str]) -> None:
        super().__init__()
        self.pool, self.new_id = pool, new_id

    def title_text(self) -> str:
        state = "on" if self.pool.autoscale else "off"
        return f"Autoscaler of pool {self.pool.pool} (now {state})"

    def fields(self) -> ComposeResult:
        with Horizontal(classes="dialog-row"):
            yield Label("enabled", classes="dialog-label")
            yield Switch(not self.pool.autoscale, id="enabled")
            yield Label(_said(not self.pool.autoscale), id="enabled-said")
        for field, label, default, whole in FIELDS:
            with Horizontal(classes="dialog-row"):
                yield Label(label, classes="dialog-label")
                yield Input(default, id=field, type="integer" if whole else "number")

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one("#enabled-said", Label).update(_said(event.value))

    def result(self) -> Autoscale:
        fields: dict[str, Any] = {
            "id": self.new_id(),
            "pool": self.pool.pool,
            "enabled": self.query_one("#enabled", Switch).value,
        }
        for field, label, _, whole in FIELDS:
            text = self.text(field).strip()
            if text:
                value = number(text, label, whole=whole, low=0)
                fields[field] = int(value) if whole else value
        return command(Autoscale, **fields)
