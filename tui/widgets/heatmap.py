"""The rack heatmap: every rack one half-block cell coloured by a metric, so ten thousand
racks fit one screen; a cursor picks a rack, enter opens its nodes."""

import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.picture import Racks

SHADES = 24
"""Colour steps of a continuous metric."""
NO_DEVICES = SHADES
"""A rack with nothing to colour: no devices, or none that measures the metric."""
CORDONED = SHADES + 1
NOTHING = SHADES + 2
"""Past the last rack."""
_STOPS = [
    (0.00, (30, 60, 120)),
    (0.35, (42, 157, 143)),
    (0.60, (233, 196, 106)),
    (0.80, (244, 162, 97)),
    (1.00, (230, 57, 70)),
]
HEALTH_SHADES = (0, 15, 23)
"""ok, warning, critical on the same ramp: teal, amber, red."""


@dataclass(frozen=True)
class Metric:
    """How a rack column maps to colour: fixed bounds, or up to the fleet's maximum."""

    column: str
    label: str
    unit: str
    low: float
    high: float | None
    devices: str
    """Which devices the rack's figure comes from."""


EVERY_DEVICE = "GPUs, LPU chips, switches"
SENSORS = "GPUs, LPU chips"
"""Switches report neither temperature nor power."""
METRICS = {
    "utilization": Metric("utilization", "utilization", "%", 0.0, 100.0, EVERY_DEVICE),
    "temperature": Metric("temperature_c", "hottest", "°C", 25.0, 95.0, SENSORS),
    "power": Metric("power_kw", "power", "kW", 0.0, None, SENSORS),
    "health": Metric("health", "health", "", 0.0, 2.0, EVERY_DEVICE),
}


def _ramp(position: float) -> str:
    for (left, a), (right, b) in itertools.pairwise(_STOPS):
        if position <= right:
            t = (position - left) / (right - left)
            r, g, bl = (round(a[i] + (b[i] - a[i]) * t) for i in range(3))
            return f"#{r:02x}{g:02x}{bl:02x}"
    return "#e63946"


COLOURS: list[str | None] = [
    *(_ramp(i / (SHADES - 1)) for i in range(SHADES)),
    "#3a3a3a",
    "#4361ee",
    None,
]


def shades(racks: Racks, metric: str) -> tuple[npt.NDArray[np.uint8], float, float]:
    """Each rack's colour index for a metric (NO_DEVICES where nothing in it measures the
    metric), and the bounds the colours span."""
    spec = METRICS[metric]
    columns = racks.columns
    values = columns[spec.column]
    high = spec.high if spec.high is not None else float(np.nanmax(values, initial=0.0))
    if metric == "health":
        health = values.astype(np.intp)
        out = np.asarray(HEALTH_SHADES, np.uint8)[np.clip(health, 0, 2)]
        out[(health == 0) & (columns["cordoned"] > 0)] = CORDONED
    else:
        scaled = np.nan_to_num((values - spec.low) / max((high or 1.0) - spec.low, 1e-9))
        out = np.clip(scaled * SHADES, 0, SHADES - 1).astype(np.uint8)
    out[(columns["devices"] <= 0) | np.isnan(values)] = NO_DEVICES
    return out, spec.low, high


@dataclass(frozen=True)
class Placement:
    """How racks sit on the widget: `cell` characters wide, `stack` racks per line (two
    half-blocks when dense, one labelled cell when there is room), `columns` per row."""

    cell: int
    stack: int
    columns: int

    def line_of(self, index: int) -> int:
        return index // self.columns // self.stack

    def lines(self, racks: int) -> int:
        return max(1, -(-racks // self.columns // self.stack) if racks else 1)


def placement_for(racks: int, label: int, width: int, height: int) -> Placement:
    """Labelled cells if every rack fits on screen that way, else half-block cells."""
    cell = label + 2
    columns = max(1, width // cell)
    if racks and -(-racks // columns) <= height:
        return Placement(cell, 1, columns)
    return Placement(1, 2, max(1, width))


def ink(shade: int) -> str:
    """Label colour readable on a shade."""
    return "black" if 8 <= shade < SHADES else "white"


class RackHeatmap(ScrollView, can_focus=True):
    """Racks in id order, left to right: labelled cells while they fit the screen, else two
    racks per character cell (upper and lower half)."""

    BINDINGS: ClassVar = [
        Binding("left", "move(-1)", "Rack left", show=False, id="heatmap-left"),
        Binding("right", "move(1)", "Rack right", show=False, id="heatmap-right"),
        Binding("up", "move_rows(-1)", "Row up", show=False, id="heatmap-up"),
        Binding("down", "move_rows(1)", "Row down", show=False, id="heatmap-down"),
        Binding("pageup", "move_rows(-20)", "Page up", show=False, id="heatmap-page-up"),
        Binding("pagedown", "move_rows(20)", "Page down", show=False, id="heatmap-page-down"),
        Binding("home", "jump(0)", "First rack", show=False, id="heatmap-home"),
        Binding("end", "jump(-1)", "Last rack", show=False, id="heatmap-end"),
        Binding("enter", "choose", "Rack's nodes", id="heatmap-open"),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    @dataclass
    class Highlighted(Message):
        """The cursor moved to another rack."""

        heatmap: "RackHeatmap"
        index: int

    @dataclass
    class Chosen(Message):
        """The operator chose a rack (enter or a second click)."""

        rack: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.racks: Racks | None = None
        self.levels = np.zeros(0, np.uint8)
        self.placement = Placement(1, 2, 1)
        self._styles: dict[tuple[int, int], Style] = {}
        self._strips: dict[tuple[int, int], Strip] = {}

    @property
    def columns(self) -> int:
        """Racks per row."""
        return self.placement.columns

    def show(self, racks: Racks, levels: npt.NDArray[np.uint8]) -> None:
        """Repaint with new racks and their colour indices."""
        self.racks, self.levels = racks, levels
        self._relayout()
        if self.cursor >= len(levels):
            self.cursor = max(0, len(levels) - 1)
        self.refresh()

    def _relayout(self) -> None:
        self._strips.clear()
        region = self.scrollable_content_region
        label = max((len(n) for n in self.racks.names), default=4) if self.racks else 4
        self.placement = placement_for(len(self.levels), label, region.width, region.height)
        self.virtual_size = Size(region.width, self.placement.lines(len(self.levels)))

    def on_resize(self, _: events.Resize) -> None:
        self._relayout()

    def _style(self, top: int, bottom: int) -> Style:
        style = self._styles.get((top, bottom))
        if style is None:
            style = Style(color=COLOURS[top], bgcolor=COLOURS[bottom])
            self._styles[top, bottom] = style
        return style

    def render_line(self, y: int) -> Strip:
        line = y + self.scroll_offset.y
        key = (line, self.cursor if self.placement.line_of(self.cursor) == line else -1)
        strip = self._strips.get(key)
        if strip is None:
            draw = self._labelled_line if self.placement.stack == 1 else self._dense_line
            strip = draw(line)
            self._strips[key] = strip
        return strip.crop(0, self.size.width)

    def _row(self, row: int) -> npt.NDArray[np.intp]:
        columns = self.placement.columns
        out = np.full(columns, NOTHING, np.intp)
        chunk = self.levels[row * columns : (row + 1) * columns]
        out[: len(chunk)] = chunk
        return out

    def _dense_line(self, line: int) -> Strip:
        width = self.placement.columns
        top, bottom = self._row(2 * line), self._row(2 * line + 1)
        combos = top * (NOTHING + 1) + bottom
        starts = [0, *(np.flatnonzero(np.diff(combos)) + 1).tolist(), width]
        segments = []
        for start, end in itertools.pairwise(starts):
            t, b = int(top[start]), int(bottom[start])
            glyph = " " if t == NOTHING else "▀"
            segments.append(Segment(glyph * (end - start), self._style(t, b)))
        if self.placement.line_of(self.cursor) == line and len(self.levels):
            x = self.cursor % width
            upper = (self.cursor // width) % 2 == 0
            t, b = int(top[x]), int(bottom[x])
            mark = Style(
                color="white" if upper else COLOURS[t], bgcolor=COLOURS[b] if upper else "white"
            )
            strip = Strip(segments, width)
            segments = [*strip.crop(0, x), Segment("▀", mark), *strip.crop(x + 1, width)]
        return Strip(segments, width)

    def _labelled_line(self, line: int) -> Strip:
        placement, names = self.placement, self.racks.names if self.racks else []
        segments = []
        for index in range(
            line * placement.columns, min((line + 1) * placement.columns, len(names))
        ):
            shade = int(self.levels[index])
            label = f" {names[index]}".ljust(placement.cell - 1) + " "
            style = Style(bgcolor=COLOURS[shade], color=ink(shade))
            if index == self.cursor:
                style += Style(bold=True, underline=True, reverse=True)
            segments.append(Segment(label, style))
        return Strip(segments)

    def watch_cursor(self, old: int, new: int) -> None:
        for key in [k for k in self._strips if k[1] >= 0]:
            del self._strips[key]
        self.refresh()
        line = self.placement.line_of(new)
        self.scroll_to_region(Region(0, line, 1, 1), animate=False, immediate=True)
        self.post_message(self.Highlighted(self, new))

    def action_move(self, step: int) -> None:
        if len(self.levels):
            self.cursor = min(max(self.cursor + step, 0), len(self.levels) - 1)

    def action_move_rows(self, rows: int) -> None:
        self.action_move(rows * self.columns)

    def action_jump(self, index: int) -> None:
        if len(self.levels):
            self.cursor = index % len(self.levels)

    def action_choose(self) -> None:
        if self.racks is not None and self.cursor < len(self.racks):
            self.post_message(self.Chosen(self.racks.names[self.cursor]))

    def on_click(self, event: events.Click) -> None:
        placement = self.placement
        line = event.y + self.scroll_offset.y
        column = event.x // placement.cell
        index = placement.stack * line * placement.columns + column
        if 0 <= column < placement.columns and index < len(self.levels):
            if index == self.cursor:
                self.action_choose()
            self.cursor = index
