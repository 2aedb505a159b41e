"""The racks view: a heatmap of every rack by utilisation, temperature, power or health; the
highlighted rack's figures below it; enter opens its nodes."""

import math
from collections.abc import Set
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.command_line import GoTo
from tui.messages import OpenView
from tui.picture import Racks
from tui.view import View
from tui.widgets.heatmap import COLOURS, CORDONED, METRICS, NO_DEVICES, SHADES, RackHeatmap, shades

LEGEND_WIDTH = 24


def legend(metric: str, low: float, high: float, racks: int) -> Text:
    """The colour scale of a metric, with its bounds."""
    spec = METRICS[metric]
    text = Text.assemble((f" {spec.label} ", "bold"), (f"of {spec.devices}  ", "dim"))
    if metric == "health":
        for shade, label in ((0, "ok"), (CORDONED, "cordoned"), (15, "warning"), (23, "lost")):
            text.append("■", style=COLOURS[shade] or "")
            text.append(f" {label}  ")
    else:
        text.append(f"{low:g} {spec.unit} ")
        for i in range(LEGEND_WIDTH):
            text.append("█", style=COLOURS[i * SHADES // LEGEND_WIDTH] or "")
        text.append(f" {high:.3g} {spec.unit}  ")
    text.append("■", style=COLOURS[NO_DEVICES] or "")
    text.append(f" not measured   {racks:,} racks", style="dim")
    text.append("   u/t/p/h or m: metric · arrows: move · enter: nodes", style="dim")
    return text


def rack_line(racks: Racks, index: int) -> Text:
    """One rack's figures."""
    c = {name: float(column[index]) for name, column in racks.columns.items()}
    healthy = int(c["healthy"])
    return Text.assemble(
        (f" {racks.names[index]} ", "bold reverse"),
        f"  {int(c['devices']):,} devices · ",
        (f"{healthy:,} healthy", "green"),
        " · ",
        (f"{int(c['cordoned']):,} cordoned", "yellow" if c["cordoned"] else "dim"),
        " · ",
        (f"{int(c['lost']):,} lost", "bold red" if c["lost"] else "dim"),
        f"  │  util {c['utilization']:.0f}%",
        f"  │  hottest {measured(c['temperature_c'], '.0f', '°C')}",
        f"  │  {measured(c['power_kw'], '.1f', 'kW')}",
    )


def measured(value: float, form: str, unit: str) -> str:
    """A rack figure with its unit, or "—" where none of the rack's devices measures it (a
    rack of switches)."""
    return "—" if math.isnan(value) else f"{value:{form}} {unit}"


class RacksView(View):
    """Every rack at a glance."""

    BINDINGS: ClassVar = [
        Binding("m", "next_metric", "Metric", id="racks-metric"),
        Binding("u", "metric('utilization')", "Utilisation", show=False, id="racks-util"),
        Binding("t", "metric('temperature')", "Temperature", show=False, id="racks-temp"),
        Binding("p", "metric('power')", "Power", show=False, id="racks-power"),
        Binding("h", "metric('health')", "Health", show=False, id="racks-health"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metric = "utilization"
        self._shown: Racks | None = None

    def body(self) -> ComposeResult:
        yield Static(id="legend")
        yield RackHeatmap(id="heatmap")
        yield Static(id="rack-info")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(RackHeatmap).focus()

    def show(self, views: Set[str]) -> None:
        racks = self.picture.racks
        if "racks" not in views or racks is None:
            if racks is None:
                self.query_one("#rack-info", Static).update(Text(" no rack state yet", "dim"))
            return
        levels, low, high = shades(racks, self.metric)
        self._shown = racks
        self.query_one(RackHeatmap).show(racks, levels)
        self.query_one("#legend", Static).update(legend(self.metric, low, high, len(racks)))
        self._describe(self.query_one(RackHeatmap).cursor)

    def _describe(self, index: int) -> None:
        racks = self._shown
        info = self.query_one("#rack-info", Static)
        if racks is None or not len(racks):
            info.update(Text(" no racks reported", "dim"))
        elif index < len(racks):
            info.update(rack_line(racks, index))

    def on_rack_heatmap_highlighted(self, event: RackHeatmap.Highlighted) -> None:
        self._describe(event.index)

    def on_rack_heatmap_chosen(self, event: RackHeatmap.Chosen) -> None:
        self.post_message(OpenView(GoTo("nodes", "", (("rack", event.rack),))))

    def action_metric(self, metric: str) -> None:
        self.metric = metric
        self.show({"racks"})

    def action_next_metric(self) -> None:
        names = list(METRICS)
        self.action_metric(names[(names.index(self.metric) + 1) % len(names)])
