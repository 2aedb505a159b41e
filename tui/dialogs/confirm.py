"""Yes or no before a command goes out."""

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.dialogs.form import Form


class Confirm(Form[bool]):
    """Asks one question; `y` sends; `n`, escape or enter (on Cancel) does not."""

    BINDINGS: ClassVar = [
        Binding("y", "yes", "Yes", id="confirm-yes"),
        Binding("n", "cancel", "No", id="confirm-no"),
    ]
    TITLE_TEXT = "Confirm"
    SUBMIT = "Yes (y)"

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question, self.detail = question, detail

    def fields(self) -> ComposeResult:
        yield Static(self.question, classes="dialog-question", id="question")
        if self.detail:
            yield Static(self.detail, classes="dialog-note")

    def asks(self) -> str:
        return self.question

    def result(self) -> bool:
        return True

    def action_yes(self) -> None:
        self.dismiss(True)
