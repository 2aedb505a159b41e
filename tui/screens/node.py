"""One node: a row per GPU with sparklines of utilisation, temperature and power, its NICs'
counters, and the node's events, read from the core every second while shown."""

import math
from collections import deque
from collections.abc import Mapping, Set
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Label, Static

from protocols.messages import Event
from protocols.queries import GpuReadings, NicReadings, NodeDetail
from protocols.requests import CommandFailed
from tui import format as fmt
from tui.messages import CommandAnswered
from tui.screens.events import event_row, events_columns
from tui.screens.node_actions import NodeActionsView
from tui.screens.nodes import STATE_STYLES
from tui.view import View
from tui.widgets.table import Table

REFRESH_S = 1.0
HISTORY = 60
SPARK = 16
TRENDS = (
    ("DCGM_FI_DEV_GPU_UTIL", 0.0, 100.0),
    ("DCGM_FI_DEV_GPU_TEMP", 25.0, 95.0),
    ("DCGM_FI_DEV_POWER_USAGE", 0.0, None),
)
"""Gauges drawn as sparklines: field, low, high (None: the GPU's highest so far)."""
GPU_COLUMNS = (
    ("gpu", "GPU"),
    ("present", "PRESENT"),
    ("util", "UTIL"),
    ("temp", "TEMP"),
    ("power", "POWER"),
    ("sm", "SM MHz"),
    ("fb", "FB USED"),
    ("xid", "XID"),
)
GPU_DROP = ("sm", "fb", "present", "power")
"""The GPU table's columns a narrow terminal drops, first to last."""
NIC_COLUMNS = (
    ("nic", "NIC"),
    ("link_state", "LINK"),
    ("gbps", "Gb/s EACH WAY"),
    ("rx_bytes", "RX BYTES"),
    ("tx_bytes", "TX BYTES"),
    ("rx_prio3_pause", "PFC RX"),
    ("np_ecn_marked_roce_packets", "ECN MARKED"),
    ("np_cnp_sent", "CNP SENT"),
    ("rp_cnp_handled", "CNP HANDLED"),
    ("out_of_sequence", "OUT OF SEQ"),
    ("link_down_events_phy", "LINK DOWN"),
    ("temperature_c", "TEMP"),
)
NIC_DROP = (
    "out_of_sequence",
    "link_down_events_phy",
    "rp_cnp_handled",
    "np_cnp_sent",
    "tx_bytes",
    "rx_bytes",
    "np_ecn_marked_roce_packets",
    "temperature_c",
)
"""The NIC table's columns a narrow terminal drops, first to last."""


def _reading(readings: Mapping[str, float], name: str) -> float:
    """One of a device's readings, NaN for none (the core sends none of a device that does
    not report)."""
    return float(readings.get(name, math.nan))


def _shown(value: float, spec: str, unit: str = "") -> str:
    """A reading formatted by `spec`, with its unit; a dash for none."""
    return fmt.DASH if math.isnan(value) else f"{value:{spec}}{unit}"


def _memory(used_mib: float, free_mib: float) -> str:
    """Framebuffer used of its total, in GiB; a dash for no reading."""
    if math.isnan(used_mib + free_mib):
        return fmt.DASH
    return f"{used_mib / 1024:.1f}/{(used_mib + free_mib) / 1024:.0f} GiB"


def _xid(code: float) -> str | Text:
    """The last XID in red, nothing before the first; a dash for no reading."""
    if math.isnan(code):
        return fmt.DASH
    return Text(str(int(code)), style="bold red") if code else ""


def _link(state: float) -> str | Text:
    """A NIC's link, up or down; a dash for no reading."""
    if math.isnan(state):
        return fmt.DASH
    return Text("up", "green") if state else Text("down", "bold red")


def _counter(value: float, name: str) -> str:
    """A counter in a few digits (bytes with a B); a dash for no reading."""
    return fmt.count(value) + ("B" if name.endswith("bytes") and not math.isnan(value) else "")


class NodeView(NodeActionsView):
    """A node in detail; esc goes back."""

    BINDINGS: ClassVar = [
        Binding("escape", "back", "Back", id="node-back"),
        Binding("slash", "filter", "Filter nodes", key_display="/", id="node-filter"),
    ]
    FILTERABLE = True
    refresh_s: ClassVar[float] = REFRESH_S

    def __init__(self, node: str, rack: str = "") -> None:
        super().__init__()
        self.node, self.rack = node, rack
        self.detail: NodeDetail | None = None
        self.history: dict[int, dict[str, deque[float]]] = {}
        self.events: list[Event] = []
        self.problem = ""

    def body(self) -> ComposeResult:
        yield Static(id="node-title")
        yield Label("GPUs", classes="section")
        yield Table(id="node-gpus")
        yield Label("NICs", classes="section")
        yield Table(id="node-nics")
        yield Label("Events", classes="section")
        yield Table(id="node-events")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#node-events", Table).set_columns(events_columns(with_subject=False))
        self.set_interval(self.refresh_s, self._poll)
        self.query_one("#node-gpus", Table).focus()
        self.load()

    def targets(self) -> list[str]:
        return [self.node]

    def pools_of(self, nodes: list[str]) -> set[str] | None:
        return None if self.detail is None else {self.detail.pool} - {""}

    def kind_of(self, node: str) -> str:
        return "gpu" if self.detail is None else self.detail.kind

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_filter(self) -> None:
        """`/` here filters the nodes list: back to it, its filter prompt open."""
        self.app.pop_screen()
        if isinstance(self.app.screen, View):
            self.app.screen.action_filter()

    def _poll(self) -> None:
        if self.is_current:
            self.load()

    def show(self, views: Set[str]) -> None:
        self._paint_title()

    def on_command_answered(self, _: CommandAnswered) -> None:
        self.load()

    @work(exclusive=True, group="node-detail")
    async def load(self) -> None:
        """Read the node, with its latest events, from the core."""
        try:
            self.detail = await self.host.bridge.query(NodeDetail, node=self.node)
            self.rack = self.rack or self.detail.rack
            self.events = self.detail.events
        except CommandFailed as error:
            self.problem = f"cannot read {self.node}: {error}"
        else:
            self.problem = ""
            self._remember()
        self._paint()

    def devices(self) -> list[GpuReadings]:
        """The node's GPUs as the core last listed them."""
        return [] if self.detail is None else self.detail.devices

    def nics(self) -> list[NicReadings]:
        """The node's NICs as the core last listed them."""
        return [] if self.detail is None else self.detail.nics

    def _remember(self) -> None:
        for gpu in self.devices():
            trends = self.history.setdefault(
                gpu.gpu, {name: deque(maxlen=HISTORY) for name, _, _ in TRENDS}
            )
            for name, _, _ in TRENDS:
                trends[name].append(_reading(gpu.gauges, name))

    def _paint(self) -> None:
        self._paint_title()
        self._paint_gpus()
        self._paint_nics()
        rows = [(str(i), event_row(e, with_subject=False)) for i, e in enumerate(self.events)]
        self.query_one("#node-events", Table).show_rows(rows)

    def _paint_title(self) -> None:
        detail = self.detail
        parts = [Text(f" {self.node} ", style="bold reverse"), Text(f"rack {self.rack or '?'}")]
        if detail is None:
            parts.append(Text("?", style="bold"))
        else:
            noun = {"lpu": "LPU chips", "switch": "ports"}.get(detail.kind, "GPUs")
            parts += [
                Text(detail.kind),
                Text(detail.state, style=STATE_STYLES.get(detail.state, "bold")),
                Text(f"{noun} {detail.allocated} allocated / {detail.healthy} healthy"),
            ]
            if detail.pool:
                parts.append(Text(f"pool {detail.pool}", style="cyan"))
            if detail.power_w is not None:
                parts.append(Text(fmt.watts(detail.power_w)))
        if self.problem:
            parts.append(Text(self.problem, style="bold red"))
        self.query_one("#node-title", Static).update(Text(" · ").join(parts))

    def _paint_gpus(self) -> None:
        rows = []
        for gpu in self.devices():
            index, readings = gpu.gpu, gpu.gauges
            trends = self.history.get(index, {})
            cells = [str(index), "yes" if gpu.present else Text("no", style="bold red")]
            for (name, low, high), unit in zip(TRENDS, ("%", " °C", " W"), strict=True):
                values = trends.get(name, deque())
                seen = (v for v in values if not math.isnan(v))
                top = high if high is not None else max(seen, default=1.0)
                spark = fmt.sparkline(values, low, top, SPARK)
                reading = _shown(_reading(readings, name), "5.0f", unit)
                cells.append(Text.assemble((spark, "cyan"), f" {reading}"))
            cells.append(_shown(_reading(readings, "DCGM_FI_DEV_SM_CLOCK"), ".0f"))
            fb = (
                _reading(readings, "DCGM_FI_DEV_FB_USED"),
                _reading(readings, "DCGM_FI_DEV_FB_FREE"),
            )
            cells.append(_memory(*fb))
            cells.append(_xid(_reading(readings, "DCGM_FI_DEV_XID_ERRORS")))
            rows.append((str(index), cells))
        self.query_one("#node-gpus", Table).show_fitted(GPU_COLUMNS, rows, GPU_DROP)

    def _paint_nics(self) -> None:
        rows = []
        for nic in self.nics():
            readings = {**nic.gauges, **nic.counters}
            cells: list[str | Text] = [
                f"nic{nic.nic}",
                _link(_reading(readings, "link_state")),
                f"{nic.gbps:.2f}",
            ]
            cells += [_counter(_reading(readings, key), key) for key, _ in NIC_COLUMNS[3:-1]]
            cells.append(_shown(_reading(readings, "temperature_c"), ".0f", " °C"))
            rows.append((str(nic.nic), cells))
        self.query_one("#node-nics", Table).show_fitted(NIC_COLUMNS, rows, NIC_DROP)
