"""The header and the tables at every terminal width from 80 columns up: each line fits, the
least needed parts and columns go first, and no figure is ever cut."""

import msgspec
import pytest
from rich.cells import cell_len
from textual.pilot import Pilot

from tests.tui.constructed import SUMMARY, fed, feed_site
from tests.tui.pilots import until
from tui import format as fmt
from tui.app import AidcApp
from tui.picture import SitePicture
from tui.screens.pools import POOL_COLUMNS
from tui.widgets.header import overview
from tui.widgets.table import Table

URL = "mqtt://127.0.0.1:1883"


def _picture() -> SitePicture:
    app = fed()
    feed_site(app, 4)
    return app.bridge.picture


@pytest.mark.parametrize("width", range(80, 221, 7))
def test_each_header_line_fits_and_shows_whole_figures_only(width: int) -> None:
    picture = _picture()
    wide = overview(picture, URL, read_only=False).plain.split("\n")
    shown = overview(picture, URL, read_only=False, width=width).plain.split("\n")
    for line, full in zip(shown, wide, strict=True):
        assert cell_len(line) <= width, line
        assert set(line.split()) <= set(full.split()), "every word is one of the wide line's"
    first, second = shown
    for figure in (f"{SUMMARY.gpus_healthy:,}/{SUMMARY.gpus:,}", "2.91", "MW", "428k", "TTFT"):
        assert figure in second, (width, second)
    assert "SLO" in second
    assert "online" in first


def test_wide_headers_show_everything() -> None:
    first, second = overview(_picture(), URL, read_only=False, width=200).plain.split("\n")
    assert "tick 4,321" in first
    assert URL in first
    for part in ("cordoned 144", "ITL p99", "goodput", "req/s"):
        assert part in second


async def _pools_table(app: AidcApp, pilot: Pilot[None], table_id: str) -> Table:
    """A table of the pools view, once it has rows."""
    await app.action_view("pools")
    table = app.screen.query_one(f"#{table_id}", Table)
    await until(pilot, lambda: table.row_count)
    await pilot.pause()
    return table


@pytest.mark.parametrize(("width", "least"), [(80, 6), (120, 10), (200, len(POOL_COLUMNS))])
async def test_the_pools_table_drops_columns_and_never_cuts_a_cell(width: int, least: int) -> None:
    app = fed()
    async with app.run_test(size=(width, 24)) as pilot:
        table = await _pools_table(app, pilot, "pools")
        assert len(table.columns) >= least
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= width
        for key in table.keys:
            for column, cell in zip(table.columns.values(), table.get_row(key), strict=True):
                assert cell_len(str(cell)) <= column.content_width, (key, column.label, cell)


def test_with_no_core_the_header_says_how_to_start_one() -> None:
    picture = SitePicture("f1")
    picture.link.up = True
    second = overview(picture, URL, read_only=False).plain.split("\n")[1]
    assert second == (
        " waiting for the core's first state… none running? start one: "
        f"aidc core --broker {URL} --site f1"
    )


@pytest.mark.parametrize("width", [80, 100, 160])
async def test_route_weights_fit_with_bars_only_where_there_is_room(width: int) -> None:
    app = fed()
    async with app.run_test(size=(width, 24)) as pilot:
        table = await _pools_table(app, pilot, "routes")
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= width
        weights = [str(table.get_cell(key, "weights")) for key in table.keys]
        assert all(w.rstrip().endswith("%") for w in weights), weights
        assert all(("█" in w or "░" in w) == (width >= 120) for w in weights), weights


async def test_a_dialog_fits_an_80_column_terminal() -> None:
    app = fed()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.action_view("pools")
        await pilot.pause()
        await pilot.press("s")
        cancel = app.screen.query_one("#cancel")
        assert cancel.region.right <= 80, cancel.region


@pytest.mark.parametrize(("age", "style"), [(0.8, "green"), (2.5, "yellow"), (9.0, "bold red")])
def test_the_header_shows_how_old_the_data_is_in_colour(age: float, style: str) -> None:
    picture = _picture()
    assert picture.summary is not None
    picture.summary = msgspec.structs.replace(
        picture.summary, telemetry_age_p99_s=age, telemetry_dropped=12 if age > 5 else 0
    )
    header = overview(picture, URL, read_only=False, width=200)
    first = header.plain.split("\n")[0]
    assert f"data {fmt.seconds(age)}" in first
    (span,) = [s for s in header.spans if header.plain[s.start : s.end] == fmt.seconds(age)]
    assert str(span.style) == style
    assert ("shed 12" in first) == (age > 5)
    narrow = overview(picture, URL, read_only=False, width=80).plain.split("\n")[0]
    assert ("data" in narrow) == (style != "green"), "stale data shows on a narrow screen too"
