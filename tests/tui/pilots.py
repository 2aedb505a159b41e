"""Driving the console in tests: run it against a broker, wait on what it shows, type into it."""

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from textual.pilot import Pilot

from protocols.endpoint import Endpoint
from tui.app import AidcApp
from tui.screens.node import NodeView

SIZE = (160, 50)


async def until(pilot: Pilot[None], predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Let the app run until `predicate()` holds; fail saying which wait timed out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {predicate}")
        await pilot.pause(0.05)


async def command_mode(pilot: Pilot[None], line: str) -> None:
    """Type `:line` and enter."""
    await pilot.press("colon", *line, "enter")
    await pilot.pause()


def last_said(app: AidcApp) -> tuple[str, str]:
    """The latest notification (text, severity)."""
    assert app.said, "the console said nothing"
    return app.said[-1]


async def second_node_page(pilot: Pilot[None], reads: int) -> NodeView:
    """From the nodes view once it has loaded: the second node's page, read `reads` times."""
    app = pilot.app
    assert isinstance(app, AidcApp)
    await until(pilot, lambda: app.views["nodes"].loaded)  # type: ignore[attr-defined]
    await pilot.press("down", "enter")
    await until(pilot, lambda: isinstance(app.screen, NodeView) and app.screen.detail)
    view = app.screen
    assert isinstance(view, NodeView)
    for _ in range(reads):
        await view.load().wait()
    return view


@contextlib.asynccontextmanager
async def console(
    endpoint: Endpoint, site: str, *, read_only: bool = False
) -> AsyncIterator[tuple[AidcApp, Pilot[None]]]:
    """The console attached to a site, once it has the core's state."""
    app = AidcApp(endpoint, site, read_only=read_only)
    async with app.run_test(size=SIZE) as pilot:
        picture = app.bridge.picture
        await until(pilot, lambda: picture.summary is not None and picture.pools is not None)
        yield app, pilot
