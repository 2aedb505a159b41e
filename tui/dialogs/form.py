"""The frame of every dialog: a title, the fields, a line for what is wrong, and the buttons.
Every dialog changes the site, so it opens with Cancel focused: keys typed by mistake and
an enter cannot send it. Enter in a field, or on the submit button, submits; escape
cancels; a result that does not validate keeps the dialog open."""

from typing import ClassVar, Generic, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.validate import InvalidInput

T = TypeVar("T")


class Form(ModalScreen[T | None], Generic[T]):
    """A dialog whose `result` is checked before it closes."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel", id="dialog-cancel")]
    AUTO_FOCUS = "#cancel"
    TITLE_TEXT: ClassVar[str] = ""
    SUBMIT: ClassVar[str] = "OK"
    error = ""
    """Why the last submission was not accepted."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text(), classes="dialog-title")
            yield from self.fields()
            yield Static("", classes="dialog-error", id="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.submit_label(), variant="primary", id="submit")
                yield Button("Cancel", id="cancel")

    def title_text(self) -> str:
        return self.TITLE_TEXT

    def asks(self) -> str:
        """What the dialog asks, in a few words."""
        return self.title_text()

    def submit_label(self) -> str:
        return self.SUBMIT

    def fields(self) -> ComposeResult:
        """The dialog's inputs."""
        yield from ()

    def result(self) -> T:
        """What the dialog gives; InvalidInput keeps it open with the reason shown."""
        raise NotImplementedError

    def text(self, input_id: str) -> str:
        """The value of one of the dialog's inputs."""
        return self.query_one(f"#{input_id}", Input).value

    def submit(self) -> None:
        try:
            value = self.result()
        except InvalidInput as error:
            self.error = str(error)
            self.query_one("#dialog-error", Static).update(self.error)
            return
        self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
