"""SVG snapshots of the console's main views at 160x50 (and two at 80x24), from constructed
state fed through the bridge's own message path (and queries answered the same way), so they
are the same on every run."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.constructed import fed
from tests.tui.pilots import SIZE, second_node_page, until
from tui.app import AidcApp
from tui.screens.node import NodeView
from tui.screens.nodes import NodesView

Snap = Callable[..., bool]


def then(*keys: str, after: Callable[[Pilot[None]], Awaitable[None]] | None = None) -> Any:
    """A run_before that presses keys and waits for the app to settle."""

    async def run(pilot: Pilot[None]) -> None:
        await pilot.press(*keys)
        if after is not None:
            await after(pilot)
        await pilot.pause()

    return run


@pytest.fixture(autouse=True)
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Views read the core once on showing; their periodic reads would race the snapshot."""
    monkeypatch.setattr(NodesView, "refresh_s", 3600.0)
    monkeypatch.setattr(NodeView, "refresh_s", 3600.0)


def test_racks_labelled(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("right", "down"))


def test_racks_dense_ten_thousand(snap_compare: Snap) -> None:
    assert snap_compare(fed(10_000), terminal_size=SIZE, run_before=then("t", "end"))


def test_racks_health(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("h"))


def test_nodes(snap_compare: Snap) -> None:
    async def loaded(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, AidcApp)
        await until(pilot, lambda: app.views["nodes"].loaded)  # type: ignore[attr-defined]
        await pilot.press("down", "space", "down", "space")

    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("2", after=loaded))


def test_node_detail(snap_compare: Snap) -> None:
    async def sampled(pilot: Pilot[None]) -> None:
        await second_node_page(pilot, reads=15)

    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("2", after=sampled))


def test_pools(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("3", "down"))


def test_fabric(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("4"))


def test_events(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("5"))


def test_help(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("question_mark"))


def test_confirm(snap_compare: Snap) -> None:
    async def asked(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, AidcApp)
        await app.run_command_line("scale llama-70b-h100 6")
        await pilot.pause()

    assert snap_compare(fed(), terminal_size=SIZE, run_before=then("3", after=asked))


def test_pools_at_80x24(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=(80, 24), run_before=then("3"))


def test_racks_at_80x24(snap_compare: Snap) -> None:
    assert snap_compare(fed(), terminal_size=(80, 24), run_before=then())
