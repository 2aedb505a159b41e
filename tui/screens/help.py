"""The help screen (`?`): every key binding, view by view, and every command-mode command."""

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.command_line import MUTATIONS, USAGE

Section = tuple[str, Sequence[type[DOMNode]]]
KEY_NAMES = {
    "question_mark": "?",
    "colon": ":",
    "slash": "/",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}


def bindings_of(classes: Iterable[type[DOMNode]]) -> list[Binding]:
    """The bindings in effect on these classes (a subclass's binding of a key replaces its
    bases'), each with a description, in declaration order."""
    effective: dict[str, Binding] = {}
    for cls in classes:
        for base in reversed(cls.__mro__):
            if base.__module__ == "textual.screen" and cls.__module__ != "textual.screen":
                continue  # the screen's own keys are listed once, under "Everywhere"
            declared: list[BindingType] = list(base.__dict__.get("BINDINGS", []))
            for binding in declared:
                if isinstance(binding, Binding):
                    for key in binding.key.split(","):
                        effective.pop(key.strip(), None)
                        effective[key.strip()] = binding
    unique = dict.fromkeys(b for b in effective.values() if b.description)
    return list(unique)


def hidden(cls: type[DOMNode], read_only: bool) -> frozenset[str]:
    """Actions of a view that do nothing there: filters it lacks, mutations when read-only."""
    out: set[str] = set()
    if not getattr(cls, "FILTERABLE", True):
        out.add("filter")
    if read_only:
        out |= set(getattr(cls, "MUTATIONS", ()))
    return frozenset(out)


def key_label(binding: Binding) -> str:
    """How a binding's keys read: `/`, `ctrl+a`, `esc q ?`."""
    if binding.key_display:
        return binding.key_display
    return " ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def section_text(title: str, classes: Sequence[type[DOMNode]], read_only: bool) -> Text:
    """One view's keys."""
    out = Text(f"{title}\n", style="bold underline")
    skip = set().union(*(hidden(cls, read_only) for cls in classes))
    for binding in bindings_of(classes):
        if binding.action.split("(")[0] not in skip:
            out.append(f"{key_label(binding):>10}  ", style="bold cyan")
            out.append(f"{binding.description}\n")
    return out


def help_renderable(sections: Sequence[Section], read_only: bool) -> RenderableType:
    """Every section's bindings, side by side, then every command."""
    blocks = [section_text(title, classes, read_only) for title, classes in sections]
    commands = Text("Command mode (:)\n", style="bold underline")
    for name, usage in USAGE.items():
        if not (read_only and name in MUTATIONS):
            commands.append(f"  {usage}\n")
    if read_only:
        commands.append("Read-only: commands that change the site are refused.\n", style="yellow")
    return Group(Columns(blocks, width=44, padding=(0, 2)), commands)


class HelpScreen(ModalScreen[None]):
    """Every binding and command; escape, q or ? closes it."""

    BINDINGS: ClassVar = [
        Binding("escape,q,question_mark", "dismiss", "Close help", id="help-close"),
    ]

    def __init__(self, sections: Sequence[Section], read_only: bool) -> None:
        super().__init__()
        self.sections, self.read_only = sections, read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_renderable(self.sections, self.read_only), id="help-text")
