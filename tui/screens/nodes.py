"""The nodes view: one page of nodes at a time, read from the core with a `query`, so it
scales to any fleet; sortable, filterable by text, rack and state; marks for bulk actions."""

from collections.abc import Set
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from protocols.queries import NodeRow, NodesPage
from protocols.requests import CommandFailed
from tui import format as fmt
from tui.command_line import CommandLineError, GoTo, parse
from tui.messages import CommandAnswered, OpenView
from tui.screens.node_actions import NodeActionsView
from tui.widgets.table import Table

PAGE = 100
"""Nodes read per page."""
REFRESH_S = 2.0
"""How often the page is read again while it is shown."""
STATE_STYLES = {
    "ready": "green",
    "cordoned": "yellow",
    "draining": "magenta",
    "drained": "cyan",
    "lost": "bold red",
    "failed": "bold red",
}
COLUMNS: tuple[tuple[str, str], ...] = (
    ("node", "NODE"),
    ("rack", "RACK"),
    ("kind", "KIND"),
    ("state", "STATE"),
    ("gpus", "DEVICES"),
    ("utilization", "UTIL"),
    ("temperature_c", "TEMP"),
    ("power_w", "POWER"),
    ("last_xid", "XID"),
    ("nic_gbps", "NIC Gb/s"),
    ("pool", "POOL"),
)
"""The columns of the table, each a field of a node's row, and what it can be sorted by."""
DROP = ("kind", "nic_gbps", "last_xid", "pool", "rack", "power_w", "temperature_c")
"""The columns a narrow terminal drops, first to last."""


def cell(key: str, row: NodeRow) -> str | Text:
    """One node field as the table shows it."""
    value = getattr(row, key)
    if value is None:
        return Text(fmt.DASH, justify="right")
    if key == "state":
        return Text(str(value), style=STATE_STYLES.get(str(value), ""))
    if key == "gpus":
        return Text(f"{row.allocated}/{row.healthy}", justify="right")
    if key == "utilization":
        return Text(f"{float(value):.0f}%", justify="right")
    if key == "temperature_c":
        return Text(f"{float(value):.0f} °C", justify="right")
    if key == "power_w":
        return Text(fmt.watts(float(value)), justify="right")
    if key == "nic_gbps":
        return Text(f"{float(value):.1f}", justify="right")
    if key == "last_xid":
        return Text(str(value) if value else "", style="bold red", justify="right")
    return str(value)


class NodesView(NodeActionsView):
    """Nodes, a page at a time, from the core."""

    BINDINGS: ClassVar = [
        Binding("enter", "open_node", "Details", id="nodes-open"),
        Binding("space", "mark", "Mark", id="nodes-mark"),
        Binding("ctrl+a", "mark_page", "Mark page", id="nodes-mark-page"),
        Binding("x", "clear_marks", "Clear marks", id="nodes-clear-marks"),
        Binding("s", "next_sort", "Sort", id="nodes-sort"),
        Binding("o", "reverse", "Order", id="nodes-order"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", id="nodes-next"),
        Binding(
            "left_square_bracket", "page(-1)", "Previous page", key_display="[", id="nodes-prev"
        ),
    ]
    FILTERABLE = True
    MUTATIONS = NodeActionsView.MUTATIONS | {"mark", "mark_page", "clear_marks"}
    refresh_s: ClassVar[float] = REFRESH_S

    def __init__(self) -> None:
        super().__init__()
        self.rack = ""
        self.state = ""
        self.pool = ""
        self.sort = "node"
        self.descending = False
        self.start = 0
        self.total = 0
        self.rows: list[NodeRow] = []
        self.marked: set[str] = set()
        self.problem = ""
        self.loaded = 0
        """Pages read so far (tests and benchmarks wait on it)."""

    def body(self) -> ComposeResult:
        yield Table(id="nodes")
        yield Static(id="nodes-status")

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(self.refresh_s, self._poll)
        self.query_one(Table).focus()
        self.load()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.load()

    def _poll(self) -> None:
        if self.is_current:
            self.load()

    def show(self, views: Set[str]) -> None:
        if "summary" in views and not self.rows and not self.problem:
            self.load()

    def targets(self) -> list[str]:
        if self.marked:
            return sorted(self.marked)
        key = self.query_one(Table).cursor_key
        return [key] if key else []

    def pools_of(self, nodes: list[str]) -> set[str] | None:
        rows = {row.node: row for row in self.rows}
        if not all(node in rows for node in nodes):
            return None
        return {rows[node].pool for node in nodes} - {""}

    def kind_of(self, node: str) -> str:
        return next((row.kind for row in self.rows if row.node == node), "gpu")

    # -- reading -----------------------------------------------------------------------------

    def choose(self, target: GoTo) -> None:
        """Filter as `:nodes ...` asked; a rack or state not given is cleared."""
        options = dict(target.options)
        self.filter_text = target.argument
        self.rack = options.get("rack", "")
        self.state = options.get("state", "")
        self.pool = options.get("pool", "")
        self.start = 0
        self.load()

    def apply_filter(self, text: str) -> None:
        try:
            target = parse(f"nodes {text}", lambda: "")
        except CommandLineError as error:
            self.notify(str(error), severity="error", markup=False)
            return
        assert isinstance(target, GoTo)
        self.choose(target)

    def query_fields(self) -> dict[str, Any]:
        """The query for the page shown."""
        fields: dict[str, Any] = {
            "sort": self.sort,
            "descending": self.descending,
            "offset": self.start,
            "limit": PAGE,
            "filter": self.filter_text,
        }
        if self.rack:
            fields["rack"] = self.rack
        if self.state:
            fields["state"] = self.state
        if self.pool:
            fields["pool"] = self.pool
        return fields

    @work(exclusive=True, group="nodes-page")
    async def load(self) -> None:
        """Read the page from the core (the previous read, if still waiting, is dropped)."""
        try:
            page = await self.host.bridge.query(NodesPage, **self.query_fields())
        except CommandFailed as error:
            self.problem = f"cannot read the nodes: {error}"
        else:
            self.problem = ""
            self.total = page.total
            self.rows = page.nodes
            if self.start and self.start >= self.total:
                self.start = max(0, (self.total - 1) // PAGE * PAGE)
        self.loaded += 1
        self._paint()

    # -- painting ----------------------------------------------------------------------------

    def _paint(self) -> None:
        table = self.query_one(Table)
        columns = [("mark", " ")] + [(key, label + self._arrow(key)) for key, label in COLUMNS]
        rows = []
        for row in self.rows:
            mark = Text("●", style="bold magenta") if row.node in self.marked else ""
            rows.append((row.node, [mark, *(cell(key, row) for key, _ in COLUMNS)]))
        table.show_fitted(columns, rows, DROP)
        self._paint_status()

    def _arrow(self, key: str) -> str:
        return (" ↓" if self.descending else " ↑") if key == self.sort else ""

    def _paint_status(self) -> None:
        parts = []
        if self.problem:
            parts.append(Text(f" {self.problem}", style="bold red"))
        else:
            first = self.start + 1 if self.rows else 0
            last = self.start + len(self.rows)
            parts.append(Text(f" nodes {first:,}-{last:,} of {self.total:,}", style="bold"))
        title = dict(COLUMNS).get(self.sort, self.sort)
        parts.append(Text(f"sort {title}{self._arrow(self.sort)} (s, or click a title)"))
        if self.filter_text:
            parts.append(Text(f"filter {self.filter_text!r}", style="cyan"))
        if self.rack:
            parts.append(Text(f"rack {self.rack}", style="cyan"))
        if self.state:
            parts.append(Text(f"state {self.state}", style="cyan"))
        if self.pool:
            parts.append(Text(f"pool {self.pool}", style="cyan"))
        if self.marked:
            parts.append(Text(f"{len(self.marked)} marked", style="bold magenta"))
        if self.host.read_only:
            parts.append(Text("read-only", style="yellow"))
        self.query_one("#nodes-status", Static).update(Text(" · ").join(parts))

    # -- actions -----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_node()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key in self.sorts():
            self.descending = not self.descending if key == self.sort else False
            self.sort = key
            self.load()

    def action_open_node(self) -> None:
        node = self.query_one(Table).cursor_key
        if node is None:
            return
        rack = next((row.rack for row in self.rows if row.node == node), "")
        self.post_message(OpenView(GoTo("node", node, (("rack", rack),) if rack else ())))

    def action_mark(self) -> None:
        table = self.query_one(Table)
        node = table.cursor_key
        if node is None:
            return
        self.marked.symmetric_difference_update({node})
        self._paint()
        table.move_cursor(row=table.cursor_row + 1)

    def action_mark_page(self) -> None:
        self.marked.update(self.query_one(Table).keys)
        self._paint()

    def action_clear_marks(self) -> None:
        self.marked.clear()
        self._paint()

    def sorts(self) -> list[str]:
        """What the page can be sorted by: its columns."""
        return [key for key, _ in COLUMNS]

    def action_next_sort(self) -> None:
        sorts = self.sorts()
        self.sort = (
            sorts[(sorts.index(self.sort) + 1) % len(sorts)] if self.sort in sorts else "node"
        )
        self.start = 0
        self.load()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.start = 0
        self.load()

    def action_page(self, step: int) -> None:
        offset = self.start + step * PAGE
        if 0 <= offset < max(self.total, 1):
            self.start = offset
            self.load()

    def on_command_answered(self, event: CommandAnswered) -> None:
        if event.reply.ok and set(getattr(event.command, "nodes", ())) == self.marked:
            self.marked.clear()
        self.load()
