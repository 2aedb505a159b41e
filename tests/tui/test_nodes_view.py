"""The nodes list says its sort by the column titles it shows, and a click on a title sorts
by that column (a second click reverses it)."""

from rich.text import Text
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from tests.tui.constructed import fed
from tests.tui.pilots import SIZE, until
from tui.screens.nodes import COLUMNS, NodesView
from tui.widgets.table import Table


async def test_the_sort_is_named_by_column_titles_and_a_title_click_sorts() -> None:
    app = fed()
    async with app.run_test(size=SIZE) as pilot:
        await app.action_view("nodes")
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        await until(pilot, lambda: nodes.rows)
        status = nodes.query_one("#nodes-status", Static)
        titles = dict(COLUMNS)
        for _ in nodes.sorts():
            await pilot.press("s")
            await pilot.pause()
            assert f"sort {titles[nodes.sort]} ↑" in str(status.render())
        table = nodes.query_one(Table)
        for descending in (False, True):
            table.post_message(
                DataTable.HeaderSelected(table, ColumnKey("temperature_c"), 6, Text("TEMP"))
            )
            await pilot.pause()
            assert (nodes.sort, nodes.descending) == ("temperature_c", descending)
        assert "sort TEMP ↓" in str(status.render())
