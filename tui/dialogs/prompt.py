"""The one-line prompt at the bottom of the screen, for command mode (`:`) and filters (`/`)."""

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label


class Prompt(ModalScreen[str | None]):
    """Asks for one line; enter gives it, escape gives None."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel", id="prompt-cancel")]

    def __init__(
        self,
        sign: str,
        value: str = "",
        placeholder: str = "",
        suggester: Suggester | None = None,
    ) -> None:
        super().__init__()
        self.sign, self.value, self.placeholder = sign, value, placeholder
        self.suggester = suggester

    def compose(self) -> ComposeResult:
        with Horizontal(id="prompt"):
            yield Label(self.sign, id="prompt-sign")
            yield Input(
                self.value,
                placeholder=self.placeholder,
                suggester=self.suggester,
                id="prompt-input",
                select_on_focus=False,
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
