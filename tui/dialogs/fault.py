"""The fault dialogs, for drills: inject one kind of fault into a node or switch, or clear."""

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static

from protocols.commands import ClearFault, InjectFault
from protocols.faults import DEVICE_PARAMS, FAULT_DEVICES, FAULT_PARAMS
from tui.command_line import FAULT_KINDS, parameter
from tui.dialogs.form import Form
from tui.validate import InvalidInput, command, entity

NODE_DEVICES = {"gpu": ("gpu", "nic"), "lpu": ("lpu",), "switch": ("port",)}
"""The device kinds each kind of node has (aidc's catalog), for the dialog's offer; the core
refuses what does not fit the node itself."""
EXAMPLES = {
    "code": 79,
    "severity": 0.8,
    "duration_s": 30,
    "gpu": 3,
    "nic": 2,
    "port": 17,
    "chip": 5,
}
"""A value for each fault parameter the example shows (down_s has a default, so none)."""


def kinds_for(node_kind: str) -> list[str]:
    """The fault kinds a node of `node_kind` can take."""
    has = set(NODE_DEVICES.get(node_kind, ()))
    return [kind for kind in FAULT_KINDS if not FAULT_DEVICES[kind] or has & {*FAULT_DEVICES[kind]}]


def example(kind: str, node_kind: str) -> str:
    """Parameters of a `kind` fault that fit a node of `node_kind`: `code=79 gpu=3`."""
    devices = [d for d in FAULT_DEVICES[kind] if d in NODE_DEVICES.get(node_kind, ())]
    names = [*FAULT_PARAMS[kind], *(DEVICE_PARAMS[d] for d in devices[:1])]
    return " ".join(f"{name}={EXAMPLES[name]}" for name in names if name in EXAMPLES)


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

    def __init__(
        self,
        target: str,
        new_id: Callable[[], str],
        node_kind: str = "gpu",
        kind: str | None = None,
        params: str | None = None,
    ) -> None:
        super().__init__()
        self.target, self.new_id, self.node_kind = target, new_id, node_kind
        self.kinds = kinds_for(node_kind)
        self.kind = kind or self.kinds[0]
        self.params = example(self.kind, node_kind) if params is None else params

    def title_text(self) -> str:
        return f"Inject a fault (drill) into {self.target}"

    def fields(self) -> ComposeResult:
        with Horizontal(classes="dialog-row"):
            yield Label("kind", classes="dialog-label")
            yield Select(
                [(k, k) for k in self.kinds], value=self.kind, allow_blank=False, id="kind"
            )
        with Horizontal(classes="dialog-row"):
            yield Label("parameters", classes="dialog-label")
            yield Input(self.params, id="params")
        yield Static(self._help(self.kind), id="params-help", classes="dialog-note")

    def _help(self, kind: str) -> str:
        takes = example(kind, self.node_kind)
        target = {"switch": "a switch", "lpu": "an LPU node"}.get(self.node_kind, "a GPU node")
        return f"{target} takes e.g. {takes}" if takes else "no parameters"

    def on_select_changed(self, event: Select.Changed) -> None:
        kind = str(event.value)
        if kind != self.kind:
            self.kind = kind
            self.query_one("#params", Input).value = example(kind, self.node_kind)
            self.query_one("#params-help", Static).update(self._help(kind))

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
