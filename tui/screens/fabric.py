"""The fabric view: every Spectrum-X switch (ports up, hottest port, ECN, PFC, drops, link
flaps) and the hottest ports with what they are cabled to; faults for drills."""

import heapq
from collections.abc import Set
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Label

from protocols.commands import ClearFault, InjectFault
from protocols.messages import PortState, SwitchState
from tui import format as fmt
from tui.dialogs.fault import ClearFaultDialog, FaultDialog
from tui.messages import SendCommand
from tui.view import View
from tui.widgets.table import Table

SWITCH_COLUMNS = (
    ("switch", "SWITCH"),
    ("ports", "PORTS UP"),
    ("max", "HOTTEST PORT"),
    ("ecn", "ECN MARKS/s"),
    ("pauses", "PFC PAUSES/s"),
    ("drops", "DROPS/s"),
    ("flaps", "LINK FLAPS"),
)
PORT_COLUMNS = (
    ("port", "PORT"),
    ("utilization", "UTIL"),
    ("ecn", "ECN MARKS/s"),
    ("pauses", "PFC PAUSES/s"),
    ("peer", "PEER"),
)
HOT = 0.8
"""Port utilisation at which the fabric starts marking ECN."""
SHOWN = 200
"""Switches in the table: the ones in most trouble first (a million-GPU fabric has 47,000)."""


def trouble(s: SwitchState) -> tuple[float, ...]:
    """How much attention a switch needs, most first when sorted descending."""
    return (
        s.ports - s.ports_up,
        s.link_flaps,
        s.drops_per_s,
        s.pauses_per_s,
        s.ecn_marks_per_s,
        s.max_utilization,
    )


def worst(switches: list[SwitchState], text: str, count: int = SHOWN) -> list[SwitchState]:
    """The `count` switches in most trouble whose name contains `text`, worst first."""
    chosen = [s for s in switches if text in s.switch] if text else switches
    return heapq.nlargest(count, chosen, key=trouble)


def _rate(value: float, style: str = "yellow") -> Text:
    return Text(fmt.count(value), style=style if value > 0 else "dim", justify="right")


def _utilization(value: float) -> Text:
    style = "bold red" if value >= HOT else "yellow" if value >= HOT / 2 else ""
    return Text(fmt.percent(value), style=style, justify="right")


def switch_cells(s: SwitchState) -> list[str | Text]:
    """One switch's cells."""
    down = s.ports - s.ports_up
    return [
        s.switch,
        Text(f"{s.ports_up}/{s.ports}", style="red" if down else "", justify="right"),
        _utilization(s.max_utilization),
        _rate(s.ecn_marks_per_s),
        _rate(s.pauses_per_s),
        _rate(s.drops_per_s, "red"),
        Text(str(s.link_flaps), style="red" if s.link_flaps else "dim", justify="right"),
    ]


def port_cells(p: PortState) -> list[str | Text]:
    """One port's cells."""
    return [
        f"{p.switch}/swp{p.port}",
        _utilization(p.utilization),
        _rate(p.ecn_marks_per_s),
        _rate(p.pauses_per_s),
        p.peer,
    ]


class FabricView(View):
    """Switches and the hottest ports."""

    BINDINGS: ClassVar = [
        Binding("f", "fault", "Inject fault", id="fabric-fault"),
        Binding("F", "clear_fault", "Clear fault", id="fabric-clear-fault"),
    ]
    MUTATIONS = frozenset({"fault", "clear_fault"})
    FILTERABLE = True

    def body(self) -> ComposeResult:
        yield Label("Switches", classes="section", id="switches-title")
        yield Table(id="switches")
        yield Label("Hottest ports", classes="section")
        yield Table(id="ports")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#switches", Table).focus()

    def show(self, views: Set[str]) -> None:
        fabric = self.picture.fabric
        if "fabric" not in views or fabric is None:
            return
        shown = worst(fabric.switches, self.filter_text)
        switches = [(s.switch, switch_cells(s)) for s in shown]
        self.query_one("#switches", Table).show_fitted(SWITCH_COLUMNS, switches, ("max",))
        matching = "" if not self.filter_text else f" matching {self.filter_text!r}"
        self.query_one("#switches-title", Label).update(
            f"Switches: {len(shown):,} in most trouble of {len(fabric.switches):,}{matching}"
            " (ports down, flaps, drops, pauses, ECN, load)"
        )
        ports = [(f"{p.switch}/{p.port}", port_cells(p)) for p in fabric.hottest]
        self.query_one("#ports", Table).show_fitted(PORT_COLUMNS, ports, ("peer",))

    def apply_filter(self, text: str) -> None:
        super().apply_filter(text)
        self.show({"fabric"})

    def _switch(self) -> tuple[str, str] | None:
        """The switch under the cursor and the port parameter of a fault on it."""
        ports = self.query_one("#ports", Table)
        key = ports.cursor_key if self.focused is ports else None
        if key:
            switch, port = key.split("/")
            return switch, f"port={port}"
        chosen = self.query_one("#switches", Table).cursor_key
        if chosen is None:
            self.notify("No switch here.", severity="warning")
            return None
        return chosen, "port=0"

    def _sent(self, order: InjectFault | ClearFault | None) -> None:
        if order is not None:
            self.post_message(SendCommand(order, confirmed=True))

    def action_fault(self) -> None:
        if chosen := self._switch():
            switch, port = chosen
            dialog = FaultDialog(
                switch, self.host.bridge.new_id, "switch", kind="link_flap", params=port
            )
            self.app.push_screen(dialog, self._sent)

    def action_clear_fault(self) -> None:
        if chosen := self._switch():
            self.app.push_screen(ClearFaultDialog(chosen[0], self.host.bridge.new_id), self._sent)
