"""The fault dialogs, for drills: inject one kind of fault into a node or switch, or clear."""

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static

from protocols.commands import ClearFault, InjectFault
from tui.command_line import FAULT_KINDS, parameter
from tui.dialogs.form import Form
from tui.validate import InvalidInput, command, entity

PARAMS = {
    "xid": "code=79 gpu=3",
    "cooling": "severity=0.8",
    "link_flap": "nic=2  (or port=17 on a switch)",
    "pause_storm": "nic=0",
    "lpu_chip": "chip=5",
    "power_loss": "duration_s=30",
}
"""An example of each kind's parameters (protocols.commands.InjectFault)."""


def parameters(text: str) -> dict[str, int | float | str | bool]:
    """`code=79 gpu=3` as a dict of numbers and words."""
    out: dict[str, int | float | str | bool] = {}
    for word in text.split():
        key, equals, value = word.partition("=")
        if not equals or not key:
            raise InvalidInput(f"parameter {word!r} is not NAME=VALUE")
        out[key] = parameter(value)
    return out


class FaultDialog(Form[InjectFault]):
    """Inject a fault into a target."""

    SUBMIT = "Inject"
    AUTO_FOCUS = "#params"

    def __init__(
        self, target: str, new_id: Callable[[], str], kind: str = "xid", params: str | None = None
    ) -> None:
        super().__init__()
        self.target, self.new_id, self.kind = target, new_id, kind
        self.params = PARAMS[kind].split("  ")[0] if params is None else params

    def title_text(self) -> str:
        return f"Inject a fault (drill) into {self.target}"

    def fields(self) -> ComposeResult:
        with Horizontal(classes="dialog-row"):
            yield Label("kind", classes="dialog-label")
            yield Select(
                [(k, k) for k in FAULT_KINDS], value=self.kind, allow_blank=False, id="kind"
            )
        with Horizontal(classes="dialog-row"):
            yield Label("parameters", classes="dialog-label")
            yield Input(self.params, id="params")
        yield Static(f"e.g. {PARAMS[self.kind]}", id="params-help", classes="dialog-note")

    def on_select_changed(self, event: Select.Changed) -> None:
        kind = str(event.value)
        self.query_one("#params", Input).value = PARAMS[kind].split("  ")[0]
        self.query_one("#params-help", Static).update(f"e.g. {PARAMS[kind]}")

    def result(self) -> InjectFault:
        return command(
            InjectFault,
            id=self.new_id(),
            target=entity(self.target, "target"),
            kind=str(self.query_one("#kind", Select).value),
            params=parameters(self.text("params")),
        )


class ClearFaultDialog(Form[ClearFault]):
    """Clear one kind of fault, or every fault, from a target."""

    SUBMIT = "Clear"
    AUTO_FOCUS = "#submit"

    def __init__(self, target: str, new_id: Callable[[], str]) -> None:
        super().__init__()
        self.target, self.new_id = target, new_id

    def title_text(self) -> str:
        return f"Clear faults of {self.target}"

    def fields(self) -> ComposeResult:
        with Horizontal(classes="dialog-row"):
            yield Label("kind", classes="dialog-label")
            yield Select(
                [("every fault", "all"), *((k, k) for k in FAULT_KINDS)],
                value="all",
                allow_blank=False,
                id="kind",
            )

    def result(self) -> ClearFault:
        kind = str(self.query_one("#kind", Select).value)
        return command(
            ClearFault,
            id=self.new_id(),
            target=entity(self.target, "target"),
            kind=None if kind == "all" else kind,
        )
