"""The console against a live site: a drain, a scale and a route edit made in it reach the
core and show their effect; a refused drain shows why; read-only refuses every mutation;
bad command-mode input is explained in one sentence."""

import asyncio

from textual.widgets import Input

from protocols.commands import Drain, Route, Scale
from protocols.endpoint import Endpoint
from protocols.messages import PoolState, PoolStates
from protocols.queries import CommandsPage
from tests.tui.conftest import SITE
from tests.tui.observe import Observer, observing
from tests.tui.pilots import command_mode, console, last_said, until
from tui.app import AidcApp
from tui.dialogs.confirm import Confirm
from tui.dialogs.drain import DrainDialog
from tui.dialogs.route import RouteDialog
from tui.dialogs.scale import ScaleDialog
from tui.screens.node import NodeView
from tui.screens.nodes import NodesView
from tui.widgets.table import Table

SETTLE_S = 60.0


async def _on_pool(app: AidcApp, pilot: object, pool: str) -> Table:
    """The pools view with the cursor on one pool."""
    await app.action_view("pools")
    table = app.views["pools"].query_one("#pools", Table)
    await until(pilot, lambda: pool in table.keys)  # type: ignore[arg-type]
    table.move_cursor(row=table.keys.index(pool))
    return table


def _pool(core: Observer, name: str) -> PoolState | None:
    states = core.latest(PoolStates)
    return next((p for p in states.pools if p.pool == name), None) if states else None


async def test_draining_a_node_in_the_console_drains_it_in_the_core(site: Endpoint) -> None:
    node = "r003-n04"
    async with console(site, SITE) as (app, pilot), observing(site, SITE) as core:
        await command_mode(pilot, f"nodes {node}")
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        await until(pilot, lambda: [r.node for r in nodes.rows] == [node])
        await pilot.press("d")
        dialog = app.screen
        assert isinstance(dialog, DrainDialog)
        dialog.query_one("#grace", Input).value = "0"
        await pilot.press("tab", "enter")  # it opens on Cancel: to the first field, then send
        await until(pilot, lambda: app.answers)
        command, reply = app.answers[-1]
        assert isinstance(command, Drain)
        assert command.nodes == [node]
        assert command.grace_s == 0
        assert reply.ok, reply.error
        assert last_said(app)[1] == "information"
        async with asyncio.timeout(SETTLE_S):
            while await core.node_state(node) != "drained":
                await asyncio.sleep(0.3)
        await until(pilot, lambda: nodes.rows and nodes.rows[0].state == "drained")


async def test_scaling_a_pool_in_the_console_changes_its_replicas(site: Endpoint) -> None:
    async with console(site, SITE) as (app, pilot), observing(site, SITE) as core:
        table = await _on_pool(app, pilot, "llama-70b-h100")
        await pilot.press("s")
        dialog = app.screen
        assert isinstance(dialog, ScaleDialog)
        replicas = dialog.query_one("#replicas", Input)
        replicas.value = "lots"
        await pilot.press("tab", "enter")
        assert dialog.is_active
        assert dialog.error == "replicas 'lots' is not a whole number"
        replicas.value = "3"
        await pilot.press("enter")
        await until(pilot, lambda: app.answers)
        command, reply = app.answers[-1]
        assert isinstance(command, Scale)
        assert (command.pool, command.replicas) == ("llama-70b-h100", 3)
        assert reply.ok, reply.error

        def placed() -> bool:
            pool = _pool(core, "llama-70b-h100")
            return pool is not None and pool.replicas_desired == 3 and pool.replicas_ready == 3

        await until(pilot, placed, timeout=SETTLE_S)
        await until(pilot, lambda: str(table.get_cell("llama-70b-h100", "replicas")) == "3/3/0")


async def test_editing_a_route_in_the_console_moves_the_traffic(site: Endpoint) -> None:
    async with console(site, SITE) as (app, pilot), observing(site, SITE) as core:
        await until(
            pilot, lambda: (_pool(core, "llama-70b-h100") or PoolState("", "", "")).tokens_per_s > 0
        )
        await _on_pool(app, pilot, "llama-70b-h100")
        await pilot.press("w")
        dialog = app.screen
        assert isinstance(dialog, RouteDialog)
        assert list(dialog.split) == ["llama-70b-gb200", "llama-70b-h100", "llama-70b-h200"]
        for index, weight in enumerate(("50", "40", "0")):
            dialog.query_one(f"#weight-{index}", Input).value = weight
        await pilot.press("tab", "enter")
        assert dialog.is_active
        assert dialog.error == "the weights add up to 90%, not 100%"
        for index, weight in enumerate(("0", "0", "100")):
            dialog.query_one(f"#weight-{index}", Input).value = weight
        await pilot.press("enter")
        await until(pilot, lambda: app.answers)
        command, reply = app.answers[-1]
        assert isinstance(command, Route)
        assert command.weights == {"llama-70b-gb200": 0, "llama-70b-h100": 0, "llama-70b-h200": 100}
        assert reply.ok, reply.error

        def moved() -> bool:
            h100, h200 = _pool(core, "llama-70b-h100"), _pool(core, "llama-70b-h200")
            return bool(
                h100
                and h200
                and h100.tokens_per_s < 1.0
                and h100.num_requests_running == 0
                and h200.tokens_per_s > 0
            )

        await until(pilot, moved, timeout=SETTLE_S)
        states = core.latest(PoolStates)
        assert states is not None
        assert {r.model: r.weights for r in states.routes}["llama-3-1-70b"]["llama-70b-h200"] == 100
        routes = app.views["pools"].query_one("#routes", Table)
        await until(
            pilot,
            lambda: "llama-70b-h200 ██████████ 100%" in str(routes.get_row("llama-3-1-70b")[1]),
        )


async def test_a_drain_the_core_refuses_shows_why(site: Endpoint) -> None:
    async with console(site, SITE) as (app, pilot), observing(site, SITE) as core:
        await command_mode(pilot, "nodes r00")
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        await until(pilot, lambda: len(nodes.rows) == 12)
        await pilot.press("ctrl+a", "d")
        dialog = app.screen
        assert isinstance(dialog, DrainDialog)
        assert dialog.nodes == sorted(nodes.marked)
        assert {"llama-70b-h100", "llama-70b-h200"} <= (dialog.affected or set())
        await pilot.press("tab", "enter")
        await until(pilot, lambda: app.answers)
        command, reply = app.answers[-1]
        assert isinstance(command, Drain)
        assert not command.force
        assert not reply.ok
        text, severity = last_said(app)
        assert severity == "error"
        assert text.startswith("Refused: drain 12 nodes")
        assert "minimum available replicas" in text
        assert await core.node_state("r001-n01") == "ready"


async def test_read_only_hides_and_refuses_every_mutation(site: Endpoint) -> None:
    async with console(site, SITE, read_only=True) as (app, pilot), observing(site, SITE) as core:
        await app.action_view("nodes")
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        await until(pilot, lambda: nodes.rows)
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        assert {"next_sort", "reverse", "filter"} <= shown
        assert "mark" not in shown
        assert not shown & nodes.MUTATIONS
        await pilot.press("d", "c", "R")
        assert app.screen is nodes
        palette = [c.title for c in app.get_system_commands(nodes)]
        assert any(t.startswith("Details") for t in palette)
        assert not any(t.startswith(("Drain", "Cordon")) for t in palette)
        await app.action_view("pools")
        await pilot.press("s", "w", "a")
        assert app.screen is app.views["pools"]
        for line in ("drain r001-n01", "scale llama-70b-h100 9", "cordon r001-n02"):
            await command_mode(pilot, line)
            text, severity = last_said(app)
            assert text.startswith("Read-only console: not allowed to")
            assert severity == "error"
        assert "READ-ONLY" in app.screen.query_one("OverviewHeader").text.plain  # type: ignore[attr-defined]
        audit = await core.query(CommandsPage, limit=1000)
        assert not [c for c in audit.commands if c.id.startswith(app.bridge.token)]
        assert app.answers == []


async def test_bad_command_mode_input_is_explained(site: Endpoint) -> None:
    cases = {
        "dran r001-n01": "unknown command 'dran'; did you mean :drain? (:help lists every command)",
        "scale llama-70b-h100 lots": "scale: replicas 'lots' is not a whole number",
        "drain": "drain needs at least one node: :drain NODE... [grace=SECONDS] [force]",
        "drain R1": "drain: node 'R1' is not valid",
        "route llama-3-1-70b llama-70b-h100=60": "route weights must sum to 100 (percent), not 60",
        "nodes state=sleeping": "nodes: state 'sleeping' is not one of",
        "drain r001-n01 grace=soon": "drain: grace 'soon' is not a number",
    }
    async with console(site, SITE) as (app, pilot):
        before = app.screen
        for line, expected in cases.items():
            await command_mode(pilot, line)
            text, severity = last_said(app)
            assert expected in text, (line, text)
            assert severity == "error"
            assert app.screen is before, f"{line!r} opened {app.screen}"
        refused = {
            "cordon r999-n99": "unknown node r999-n99",
            "drain r001-n01 r999-n99": "unknown node r999-n99",
            "fault r999-n99 xid code=79": "unknown node r999-n99",
            "drain leaf01": "leaf01 is a switch, which carries no replicas",
        }
        for line, why in refused.items():
            await command_mode(pilot, line)
            await until(pilot, lambda: app.said[-1][0].startswith("Refused"))
            assert last_said(app)[0].endswith(f": {why}")
            assert app.screen is before, f"{line!r} opened {app.screen}"
        assert app.answers == []
        await command_mode(pilot, "cordon r001-n01")
        assert isinstance(app.screen, Confirm), "a node the core knows is asked about"


async def test_keys_typed_on_a_node_page_change_nothing_and_slash_filters(
    site: Endpoint,
) -> None:
    async with console(site, SITE) as (app, pilot), observing(site, SITE) as core:
        await command_mode(pilot, "node r001-n02")
        page = app.screen
        assert isinstance(page, NodeView)
        await until(pilot, lambda: page.detail)
        await pilot.press(*"rack=r001 stte=rea", "enter")  # `c` opened a confirmation
        await pilot.pause(0.5)
        assert page.is_active, "enter answered no"
        assert app.answers == []
        assert await core.node_state("r001-n02") == "ready"
        await pilot.press("slash", *"rack=r002", "enter")
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        assert nodes.is_active
        await until(pilot, lambda: nodes.rows and {r.rack for r in nodes.rows} == {"r002"})


async def test_opening_a_rack_shows_its_nodes_not_an_old_node_page(site: Endpoint) -> None:
    async with console(site, SITE) as (app, pilot):
        await command_mode(pilot, "node r001-n02")
        assert isinstance(app.screen, NodeView)
        await pilot.press("1", "end", "enter")  # the racks view, its last rack, open it
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        assert nodes.is_active
        await until(pilot, lambda: nodes.rows and {r.rack for r in nodes.rows} == {"r003"})
