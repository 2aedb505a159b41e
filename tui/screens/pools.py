"""The pools view: every pool as vLLM would report it, with its control state, and every
model's route weights; scale, route and autoscale from here."""

from collections.abc import Set
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Label

from protocols.commands import Autoscale, Route, Scale
from protocols.messages import PoolState, PoolStates
from tui import format as fmt
from tui.dialogs.autoscale import AutoscaleDialog
from tui.dialogs.route import RouteDialog, current_split
from tui.dialogs.scale import ScaleDialog
from tui.messages import SendCommand
from tui.view import View
from tui.widgets.table import Table

POOL_COLUMNS = (
    ("pool", "POOL"),
    ("model", "MODEL"),
    ("hardware", "HARDWARE"),
    ("replicas", "REPLICAS D/R/W"),
    ("min", "MIN"),
    ("load", "REQ/S"),
    ("running", "RUN"),
    ("queue", "QUEUE"),
    ("kv", "KV"),
    ("tokens", "TOK/S"),
    ("ttft", "TTFT p50/p99"),
    ("itl", "ITL p50/p99"),
    ("slo", "SLO"),
    ("autoscale", "AUTOSCALE"),
    ("failed", "FAILED"),
)
"""D/R/W: desired, ready, warming; MIN: minimum available (a drain keeps the pool there);
REQ/S: requests arriving; FAILED: requests lost with failed replicas since the core started."""
POOL_DROP = (
    "model",
    "failed",
    "running",
    "min",
    "kv",
    "autoscale",
    "hardware",
    "queue",
    "load",
    "itl",
)
"""The pools table's columns a narrow terminal drops, first to last."""
BAR = 10
WIDE_ROUTES = 120
"""Terminals at least this wide show route weights as bars too."""
ROUTE_COLUMNS = (("model", "MODEL"), ("weights", "WEIGHTS"), ("source", "SOURCE"))


def _right(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


def pool_cells(pool: PoolState) -> list[str | Text]:
    """One pool's cells."""
    short = pool.has_hardware and pool.replicas_ready < pool.replicas_desired
    below = pool.has_hardware and pool.replicas_ready < pool.min_available
    slo = pool.slo_attainment
    slo_cell = (
        _right(fmt.percent(slo), "green" if slo >= 0.99 else "yellow" if slo >= 0.9 else "red")
        if pool.has_hardware
        else _right("no hardware", "dim")
    )
    ttft, itl = pool.time_to_first_token, pool.inter_token_latency
    return [
        pool.pool,
        pool.model,
        pool.hardware.removeprefix("NVIDIA "),
        _right(
            f"{pool.replicas_desired}/{pool.replicas_ready}/{pool.replicas_warming}",
            "bold red" if below else "yellow" if short else "" if pool.has_hardware else "dim",
        ),
        _right(str(pool.min_available)),
        _right(fmt.count(pool.requests_per_s)),
        _right(f"{pool.num_requests_running:,}"),
        _right(f"{pool.num_requests_waiting:,}", "yellow" if pool.num_requests_waiting else ""),
        _right(fmt.percent(pool.kv_cache_usage), "yellow" if pool.kv_cache_usage > 0.9 else ""),
        _right(fmt.count(pool.tokens_per_s)),
        _right(f"{fmt.seconds(ttft.p50)}/{fmt.seconds(ttft.p99)}"),
        _right(f"{fmt.seconds(itl.p50)}/{fmt.seconds(itl.p99)}"),
        slo_cell,
        Text("on", style="bold green") if pool.autoscale else Text("off", style="dim"),
        _right(fmt.count(pool.requests_failed), "bold red" if pool.requests_failed else "dim"),
    ]


def route_cells(states: PoolStates, model: str, bar: int = BAR) -> list[str | Text]:
    """A model's split as bars `bar` cells wide (none at 0), and whether it is the core's even
    default."""
    split = current_split(states, model)
    explicit = any(r.model == model for r in states.routes)
    bars = Text()
    for pool, weight in split.items():
        filled = round(weight / 100 * bar)
        bars.append(f"{pool} ")
        bars.append("█" * filled, style="cyan")
        bars.append("░" * (bar - filled) + " " * bool(bar), style="dim")
        bars.append(f"{weight:.4g}%   ")
    return [model, bars, "route" if explicit else Text("even (default)", style="dim")]


class PoolsView(View):
    """Pools and models."""

    BINDINGS: ClassVar = [
        Binding("s", "scale", "Scale", id="pools-scale"),
        Binding("w", "route", "Route weights", id="pools-route"),
        Binding("a", "autoscale", "Autoscaler", id="pools-autoscale"),
    ]
    MUTATIONS = frozenset({"scale", "route", "autoscale"})

    def body(self) -> ComposeResult:
        yield Label("Pools", classes="section")
        yield Table(id="pools")
        yield Label("Routes (traffic split per model)", classes="section")
        yield Table(id="routes")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#pools", Table).focus()

    def show(self, views: Set[str]) -> None:
        states = self.picture.pools
        if "pools" not in views or states is None:
            return
        rows = [(p.pool, pool_cells(p)) for p in states.pools]
        self.query_one("#pools", Table).show_fitted(POOL_COLUMNS, rows, POOL_DROP)
        models = list(dict.fromkeys(p.model for p in states.pools))
        bar = BAR if self.app.size.width >= WIDE_ROUTES else 0
        routes = [(m, route_cells(states, m, bar)) for m in models]
        self.query_one("#routes", Table).show_fitted(ROUTE_COLUMNS, routes, ("source",))

    def _pool(self) -> PoolState | None:
        name = self.query_one("#pools", Table).cursor_key
        pool = self.picture.pool(name) if name else None
        if pool is None:
            self.notify("No pool here.", severity="warning")
        return pool

    def _sent(self, order: Scale | Route | Autoscale | None) -> None:
        if order is not None:
            self.post_message(SendCommand(order, confirmed=True))

    def action_scale(self) -> None:
        if pool := self._pool():
            self.app.push_screen(ScaleDialog(pool, self.host.bridge.new_id), self._sent)

    def action_autoscale(self) -> None:
        if pool := self._pool():
            self.app.push_screen(AutoscaleDialog(pool, self.host.bridge.new_id), self._sent)

    def action_route(self) -> None:
        states = self.picture.pools
        routes = self.query_one("#routes", Table)
        if self.focused is routes and routes.cursor_key:
            model: str | None = routes.cursor_key
        else:
            pool = self._pool()
            model = pool.model if pool else None
        if states is None or model is None:
            return
        split = current_split(states, model)
        self.app.push_screen(RouteDialog(model, split, self.host.bridge.new_id), self._sent)
