"""Keys: every binding has an id and a description, the help lists every one, and the
command palette offers every action of the app and of the view on screen."""

import importlib
import pkgutil
from functools import partial

from textual.binding import Binding
from textual.dom import DOMNode

import tui
from tests.tui.constructed import fed
from tests.tui.pilots import SIZE
from tui.app import AidcApp
from tui.screens.help import HelpScreen, section_text


def our_classes() -> list[type[DOMNode]]:
    """Every widget, screen and app class of the console that declares bindings."""
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        importlib.import_module(info.name)
    found, stack = [], [DOMNode]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("tui.") and "BINDINGS" in cls.__dict__:
            found.append(cls)
    return found


def test_every_binding_has_a_unique_id_and_a_description() -> None:
    classes = our_classes()
    assert len(classes) >= 10
    ids = []
    for cls in classes:
        for binding in cls.__dict__["BINDINGS"]:
            assert isinstance(binding, Binding), f"{cls.__name__}: {binding!r} is not a Binding"
            assert binding.id, f"{cls.__name__}: {binding.key} has no id"
            assert binding.description, f"{cls.__name__}: {binding.key} has no description"
            ids.append(binding.id)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_the_help_lists_every_binding_of_every_view() -> None:
    app = AidcApp.__new__(AidcApp)
    sections = AidcApp.help_sections(app)
    listed = {cls for _, classes in sections for cls in classes}
    for cls in our_classes():
        assert any(issubclass(c, cls) for c in listed), f"{cls.__name__} is in no help section"
    for title, classes in sections:
        text = section_text(title, classes, read_only=False).plain
        for cls in classes:
            for binding in cls.__dict__.get("BINDINGS", []):
                hidden = binding.action == "filter" and not getattr(cls, "FILTERABLE", True)
                assert hidden or binding.description in text, (title, binding.description)


async def test_the_palette_offers_every_action_of_the_app_and_the_view() -> None:
    app = fed()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        for view in ("racks", "nodes", "pools", "fabric", "events"):
            await app.action_view(view)
            await pilot.pause()
            screen = app.screen
            commands = list(app.get_system_commands(screen))
            offered = {c.callback.args[0] for c in commands if isinstance(c.callback, partial)}
            titles = [c.title for c in commands]
            assert len(titles) == len(set(titles)), "no entry twice"
            assert all(c.help in ("anywhere", "in this view") for c in commands[4:]), view
            wanted = {
                b.action
                for b in Binding.make_bindings(app.BINDINGS)
                if b.action not in ("command_palette", "exit_now")
            }
            wanted |= {
                b.action
                for _, b in type(screen)._merge_bindings()
                if b.description
                and "." not in b.action  # Textual's focus and copy keys
                and screen.check_action(b.action.split("(")[0], ()) is True
            }
            assert wanted <= offered, (view, wanted - offered)
        pools = next(c for c in app.get_system_commands(app.screen) if c.title == "Pools (3)")
        app.call_later(pools.callback)
        await pilot.pause()
        assert app.current_mode == "pools"


async def test_ctrl_c_quits_with_the_exit_code_a_shell_expects() -> None:
    app = fed()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 130
