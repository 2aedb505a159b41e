"""Dialogs: one left unanswered dies with its view (and a view still being composed is not
painted); the fault dialog offers only the faults its target can take, with parameters that
fit it (`port=` on a switch), and keeps them fitting when the kind changes."""

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Label, Select, Switch

from protocols.commands import Cordon
from tests.tui.constructed import fed
from tests.tui.pilots import SIZE
from tui.app import AidcApp
from tui.dialogs.autoscale import AutoscaleDialog
from tui.dialogs.confirm import Confirm
from tui.dialogs.fault import FaultDialog
from tui.dialogs.form import Form
from tui.dialogs.scale import ScaleDialog
from tui.screens.nodes import NodesView
from tui.view import EVERYTHING


async def _from_pools(app: AidcApp, pilot: Pilot[None], key: str) -> Screen[object]:
    """The dialog a key opens in the pools view."""
    await app.action_view("pools")
    await pilot.pause()
    await pilot.press(key)
    return app.screen


async def test_an_unanswered_dialog_dies_with_its_view() -> None:
    app = fed()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(await _from_pools(app, pilot, "s"), ScaleDialog)
        app.send(Cordon(id="c1", nodes=["r001-n01"]))
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await app.action_view("racks")  # as a view opened from elsewhere would
        await pilot.pause()
        assert not isinstance(app.screen, Form)
        await app.action_view("pools")
        await pilot.pause()
        assert app.screen is app.views["pools"], "nothing asks again"
        await pilot.pause(0.3)
    said = [text for text, _ in app.said]
    assert said == [
        "Not sent (its view was left): Cordon node r001-n01?",
        "Not sent (its view was left): Scale pool llama-70b-gb200",
    ]


async def _offer(node_kind: str, kinds: list[str]) -> dict[str, str]:
    """The parameters the dialog fills in for each kind, chosen in turn."""
    app = fed()
    filled = {}
    async with app.run_test(size=SIZE) as pilot:
        dialog = FaultDialog(
            "leaf01" if node_kind == "switch" else "r001-n01", lambda: "f1", node_kind
        )
        await app.push_screen(dialog)
        select = dialog.query_one("#kind", Select)
        assert dialog.kinds == kinds
        for kind in kinds:
            select.value = kind
            await pilot.pause()
            filled[kind] = dialog.query_one("#params", Input).value
    return filled


async def test_a_switch_is_offered_port_faults_with_port_parameters() -> None:
    filled = await _offer("switch", ["link_flap", "pause_storm", "power_loss"])
    assert filled == {
        "link_flap": "port=17",
        "pause_storm": "port=17",
        "power_loss": "duration_s=30",
    }


async def test_a_gpu_node_is_offered_gpu_and_nic_faults() -> None:
    filled = await _offer("gpu", ["xid", "cooling", "link_flap", "pause_storm", "power_loss"])
    assert filled["xid"] == "code=79 gpu=3"
    assert filled["link_flap"] == "nic=2"


async def test_an_lpu_node_is_offered_chip_faults() -> None:
    filled = await _offer("lpu", ["lpu_chip", "power_loss"])
    assert filled["lpu_chip"] == "chip=5"


async def test_the_autoscaler_switch_says_on_or_off() -> None:
    app = fed()
    async with app.run_test(size=SIZE) as pilot:
        dialog = await _from_pools(app, pilot, "a")
        assert isinstance(dialog, AutoscaleDialog)
        said = dialog.query_one("#enabled-said", Label)
        switch = dialog.query_one("#enabled", Switch)
        words = {True: "on: it resizes the pool", False: "off: the pool keeps its size"}
        assert switch.value is not dialog.pool.autoscale, "it offers the other setting"
        for value in (switch.value, not switch.value):
            switch.value = value
            await pilot.pause()
            assert str(said.render()) == words[value]


async def test_a_view_still_being_composed_is_not_painted() -> None:
    app = fed()
    async with app.run_test(size=SIZE):
        NodesView().picture_changed(EVERYTHING)  # a repaint that lands before its widgets do
