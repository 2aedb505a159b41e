"""A node's page: a GPU that does not report shows no readings, and its trends do not grow."""

import math

import msgspec
import pytest

from protocols.queries import GpuReadings, NodeDetail
from tests.tui import constructed
from tests.tui.pilots import SIZE, second_node_page
from tui import format as fmt
from tui.screens.node import NodeView
from tui.widgets.table import Table

GONE = 2
NODE_DETAIL = constructed.node_detail


def gpu_gone(step: int) -> NodeDetail:
    """The constructed node, with GPU 2 off the bus: the core sends no readings of it."""
    detail = NODE_DETAIL(step)
    devices = list(detail.devices)
    devices[GONE] = GpuReadings(gpu=GONE, present=False)
    return msgspec.structs.replace(detail, devices=devices)


async def test_a_gpu_that_does_not_report_shows_dashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NodeView, "refresh_s", 3600.0)
    monkeypatch.setattr(constructed, "node_detail", gpu_gone)
    app = constructed.fed()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        view = await second_node_page(pilot, reads=3)
        cells = [str(cell).strip() for cell in view.query_one("#node-gpus", Table).get_row("2")]
        assert cells[:2] == ["2", "no"]
        assert cells[2:] == [fmt.DASH] * 6, "no readings, and a blank trend"
        assert all(math.isnan(v) for trend in view.history[GONE].values() for v in trend)
        live = [str(cell) for cell in view.query_one("#node-gpus", Table).get_row("1")]
        assert fmt.DASH not in "".join(live)
