"""The events view: the core's event stream, newest first, coloured by severity, filtered by
text and by a minimum severity; enter on a node's event opens the node."""

import typing
from collections.abc import Set
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from protocols.messages import Event, Severity
from tui import format as fmt
from tui.command_line import GoTo
from tui.messages import OpenView
from tui.view import View
from tui.widgets.table import Table

SHOWN = 500
"""Newest matching events in the table."""
SEVERITIES: tuple[str, ...] = typing.get_args(Severity)
SEVERITY_STYLES = {
    "info": "dim",
    "warning": "yellow",
    "error": "red",
    "critical": "bold white on red",
}


def events_columns(with_subject: bool = True) -> list[tuple[str, str]]:
    """The columns of an events table."""
    columns = [("time", "TIME (UTC)"), ("severity", "SEVERITY")]
    if with_subject:
        columns.append(("subject", "SUBJECT"))
    return [*columns, ("kind", "KIND"), ("message", "MESSAGE")]


def event_row(e: Event, with_subject: bool = True) -> list[str | Text]:
    """One event's cells."""
    style = SEVERITY_STYLES.get(e.severity, "")
    cells: list[str | Text] = [fmt.sim_clock(e.time), Text(e.severity, style=style)]
    if with_subject:
        cells.append(e.subject)
    return [*cells, e.kind, Text(e.message, style="" if e.severity == "info" else style)]


def node_of(subject: str) -> str | None:
    """The node an event is about: `node/r012-n03` or `gpu/r012-n03/3` give `r012-n03`."""
    kind, _, rest = subject.partition("/")
    if kind in ("node", "gpu", "nic", "lpu") and rest:
        return rest.split("/")[0]
    return None


class EventsView(View):
    """What happened, newest first."""

    BINDINGS: ClassVar = [
        Binding("v", "severity", "Min severity", id="events-severity"),
        Binding("enter", "open_subject", "Open node", id="events-open"),
    ]
    FILTERABLE = True

    def __init__(self) -> None:
        super().__init__()
        self.minimum = "info"
        self._painted = -1
        self._shown: list[Event] = []

    def body(self) -> ComposeResult:
        yield Table(id="events")
        yield Static(id="events-status")

    def on_mount(self) -> None:
        self.query_one(Table).set_columns(events_columns())
        super().on_mount()
        self.query_one(Table).focus()

    def matching(self) -> list[Event]:
        """The newest events that pass the filters, at most SHOWN."""
        floor = SEVERITIES.index(self.minimum)
        words = self.filter_text.lower().split()
        out: list[Event] = []
        for event in reversed(self.picture.events):
            if SEVERITIES.index(event.severity) < floor:
                continue
            text = f"{event.severity} {event.subject} {event.kind} {event.message}".lower()
            if all(word in text for word in words):
                out.append(event)
                if len(out) >= SHOWN:
                    break
        return out

    def show(self, views: Set[str]) -> None:
        if "events" not in views or self._painted == self.picture.events_total:
            return
        self._repaint()

    def _repaint(self) -> None:
        self._painted = self.picture.events_total
        self._shown = self.matching()
        seen: dict[str, int] = {}
        rows = []
        for event in self._shown:
            key = f"{event.time!r}|{event.subject}|{event.kind}|{event.message}"
            seen[key] = seen.get(key, 0) + 1
            rows.append((f"{key}|{seen[key]}", event_row(event)))
        self.query_one(Table).show_rows(rows)
        parts = [
            f" {len(self._shown):,} of {len(self.picture.events):,} events",
            f"≥ {self.minimum}",
        ]
        if self.filter_text:
            parts.append(f"filter {self.filter_text!r}")
        self.query_one("#events-status", Static).update(" · ".join(parts))

    def apply_filter(self, text: str) -> None:
        super().apply_filter(text)
        self._repaint()

    def action_severity(self) -> None:
        self.minimum = SEVERITIES[(SEVERITIES.index(self.minimum) + 1) % len(SEVERITIES)]
        self._repaint()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_subject()

    def action_open_subject(self) -> None:
        row = self.query_one(Table).cursor_row
        if 0 <= row < len(self._shown):
            node = node_of(self._shown[row].subject)
            if node:
                self.post_message(OpenView(GoTo("node", node)))
            else:
                self.notify(f"{self._shown[row].subject} is not a node.", markup=False)
