"""The drain dialog: grace period, force, a reason, and each pool's minimum available
replicas, which a drain without force may not go below."""

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Checkbox, Input, Label, Static

from protocols.commands import Drain
from protocols.messages import PoolState
from tui.dialogs.form import Form
from tui.validate import command, number
from tui.wording import listed


def pool_margins(pools: list[PoolState], affected: set[str] | None = None) -> Text:
    """One line per pool the drain may touch (those on the nodes, when known, else every
    pool with ready replicas): ready replicas against the minimum it keeps available."""
    if affected is not None:
        pools = [p for p in pools if p.pool in affected]
        if not pools:
            return Text("No pool has replicas on these nodes.", style="green")
    else:
        pools = [p for p in pools if p.replicas_ready]
        if not pools:
            return Text("(no pool has ready replicas)", style="dim")
    width = max(len(p.pool) for p in pools)
    lines = Text()
    for pool in pools:
        spare = pool.replicas_ready - pool.min_available
        style = "red" if spare <= 0 else "yellow" if spare == 1 else "green"
        lines.append(f"{pool.pool:<{width}}  ready {pool.replicas_ready:>4}  min available ")
        lines.append(f"{pool.min_available:>3}", style="bold")
        lines.append(f"  may lose {max(spare, 0):>3}\n", style=style)
    lines.rstrip()
    return lines


class DrainDialog(Form[Drain]):
    """Drain nodes: cordon them, let requests finish within the grace period, move replicas."""

    SUBMIT = "Drain"

    def __init__(
        self,
        nodes: list[str],
        pools: list[PoolState],
        new_id: Callable[[], str],
        *,
        affected: set[str] | None = None,
        grace_s: float = 300.0,
        force: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__()
        self.nodes, self.pools, self.new_id = nodes, pools, new_id
        self.affected = affected
        self.grace_s, self.force, self.reason = grace_s, force, reason

    def title_text(self) -> str:
        count = "node" if len(self.nodes) == 1 else f"{len(self.nodes)} nodes"
        return f"Drain {count} {listed(self.nodes)}"

    def fields(self) -> ComposeResult:
        with Horizontal(classes="dialog-row"):
            yield Label("grace period (s)", classes="dialog-label")
            yield Input(f"{self.grace_s:g}", id="grace", type="number")
        with Horizontal(classes="dialog-row"):
            yield Label("reason", classes="dialog-label")
            yield Input(self.reason, id="reason", placeholder="optional")
        yield Checkbox("force: drain even below a pool's minimum available", self.force, id="force")
        on = "on these nodes" if self.affected is not None else "that may be on these nodes"
        yield Label(f"Pools {on} (without force, a drain keeps each at its minimum available):")
        yield Static(pool_margins(self.pools, self.affected), classes="dialog-note", id="margins")

    def result(self) -> Drain:
        return command(
            Drain,
            id=self.new_id(),
            nodes=self.nodes,
            grace_s=number(self.text("grace"), "grace period", low=0, high=86400),
            force=self.query_one("#force", Checkbox).value,
            reason=self.text("reason"),
        )
