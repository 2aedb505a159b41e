"""The operator console app: views as modes, the bridge feeding them, command mode, and every
mutation confirmed, sent and answered as a notification."""

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from protocols.commands import Cordon, Drain, OperatorCommand, Reply
from protocols.endpoint import Endpoint
from protocols.queries import NodeDetail
from protocols.requests import CommandFailed
from tui.bridge import Bridge
from tui.collector import IdleCollector
from tui.command_line import USAGE, CommandLineError, GoTo, Run, parse
from tui.dialogs.confirm import Confirm
from tui.dialogs.drain import DrainDialog
from tui.dialogs.form import Form
from tui.dialogs.prompt import Prompt
from tui.messages import CommandAnswered, OpenView, PictureChanged, SendCommand
from tui.screens.events import EventsView
from tui.screens.fabric import FabricView
from tui.screens.help import HelpScreen, Section
from tui.screens.node import NodeView
from tui.screens.nodes import NodesView
from tui.screens.pools import PoolsView
from tui.screens.racks import RacksView
from tui.view import View
from tui.widgets.heatmap import RackHeatmap
from tui.wording import Level, action, answer, question

FRAME_S = 1 / 20
"""Repaints for state updates are at most this often; updates in between coalesce."""
STATUS_S = 1.0
"""How often the link and the core's liveness are checked for the header."""
VIEWS: dict[str, type[View]] = {
    "racks": RacksView,
    "nodes": NodesView,
    "pools": PoolsView,
    "fabric": FabricView,
    "events": EventsView,
}
NAVIGATION = frozenset({"view", "back", "command_mode", "help", "quit", "command_palette"})
"""App actions that do nothing while a dialog is open (its keys are its own)."""


class AidcApp(App[None]):
    """`aidc tui`: watch a site and drain, route and scale it, from the keyboard."""

    TITLE = "aidc"
    CSS_PATH: ClassVar = [Path(__file__).parent / "styles" / "console.tcss"]
    BINDINGS: ClassVar = [
        Binding("colon", "command_mode", "Command", key_display=":", id="command-mode"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("1", "view('racks')", "Racks", id="view-racks"),
        Binding("2", "view('nodes')", "Nodes", id="view-nodes"),
        Binding("3", "view('pools')", "Pools", id="view-pools"),
        Binding("4", "view('fabric')", "Fabric", id="view-fabric"),
        Binding("5", "view('events')", "Events", id="view-events"),
        Binding("escape", "back", "Back", show=False, id="back"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="palette"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "exit_now", "Quit now", show=False, priority=True, id="quit-now"),
    ]

    def __init__(
        self, endpoint: Endpoint, site: str, *, read_only: bool = False, connect: bool = True
    ) -> None:
        super().__init__()
        self._read_only = read_only
        self._replay_seen = False
        self.connect = connect
        self.bridge = Bridge(endpoint, site, on_change=self._changed)
        self.views: dict[str, View] = {}
        self.history: list[str] = []
        self.answers: list[tuple[OperatorCommand, Reply]] = []
        """Every reply the core gave this console, oldest first."""
        self.said: list[tuple[str, Level]] = []
        """Every notification shown (text, severity), oldest first."""
        self._dirty: set[str] = set()
        self._last_paint = 0.0
        self._paint_pending = False
        self.paints = 0
        self.collector = IdleCollector()
        for name in VIEWS:
            self.add_mode(name, partial(self._view, name))

    @property
    def read_only(self) -> bool:
        """Whether mutations are hidden and refused: asked for, or a replay is on the broker."""
        return self._read_only or self._replay_seen

    def _view(self, name: str) -> Screen[None]:
        return self.views.setdefault(name, VIEWS[name]())

    async def on_mount(self) -> None:
        self.title = f"aidc · {self.bridge.site}"
        if self.connect:
            self.run_worker(self.bridge.run(), name="bridge", group="bridge", exit_on_error=False)
        self.collector.start()
        self.set_interval(STATUS_S, self._check_status)
        _on_terminate(lambda: self.exit(return_code=128 + signal.SIGTERM))
        await self.action_view("racks")

    def on_unmount(self) -> None:
        self.collector.stop()
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self.collector.touched()
        await super().on_event(event)

    # -- state in, repaints out ------------------------------------------------------------------

    def _changed(self, view: str) -> None:
        self._dirty.add(view)
        self.post_message(PictureChanged())

    def _check_status(self) -> None:
        if self.connect:
            self.bridge.check_link()
        self._changed("summary")
        self.collector.maybe_collect()

    def on_picture_changed(self, _: PictureChanged) -> None:
        if self._paint_pending:
            return
        wait = self._last_paint + FRAME_S - time.monotonic()
        if wait > 0:
            self._paint_pending = True
            self.set_timer(wait, self.paint)
        else:
            self.paint()

    def paint(self) -> None:
        """Repaint the views on screen with whatever changed since the last repaint."""
        self._paint_pending = False
        dirty, self._dirty = self._dirty, set()
        self._last_paint = time.monotonic()
        if self.bridge.picture.replay and not self._replay_seen:
            self._replay_seen = True
            self.refresh_bindings()
        self.paints += 1
        for screen in self.screen_stack:
            if isinstance(screen, View) and screen.is_mounted:
                screen.picture_changed(dirty)

    # -- navigation ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in NAVIGATION or not isinstance(self.screen, ModalScreen)

    async def action_view(self, name: str) -> None:
        if name != self.current_mode:
            if self.current_mode in VIEWS:
                self.history.append(self.current_mode)
            self._close_dialogs()
            await self.switch_mode(name)

    async def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.history:
            self._close_dialogs()
            await self.switch_mode(self.history.pop())

    def _close_dialogs(self) -> None:
        """Dialogs die with the view they were opened on: one left open would ask its
        question long after, when the view is shown again."""
        while isinstance(self.screen, Form):
            self.say(f"Not sent (its view was left): {self.screen.asks()}", "warning")
            self.screen.dismiss(None)

    def action_exit_now(self) -> None:
        """Ctrl-C: quit at once, with the exit code a shell expects of it."""
        self.exit(return_code=128 + signal.SIGINT)

    async def on_open_view(self, message: OpenView) -> None:
        message.stop()
        await self.open(message.target)

    async def open(self, target: GoTo) -> None:
        """Show what a `:` command or a view asked for."""
        name = "nodes" if target.view == "node" else target.view
        await self.action_view(name)
        view = self.views[name]
        while isinstance(self.screen, NodeView):  # an old node's page would hide what is asked
            self.pop_screen()
        if target.view == "node":
            await self.push_screen(NodeView(target.argument, dict(target.options).get("rack", "")))
        elif isinstance(view, NodesView):
            view.choose(target)
        elif isinstance(view, RacksView) and target.argument:
            view.action_metric(target.argument)
        elif isinstance(view, EventsView):
            view.apply_filter(target.argument)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_sections(), self.read_only))

    def help_sections(self) -> list[Section]:
        """What the help screen lists, view by view."""
        return [
            ("Everywhere", [Screen, AidcApp]),
            ("Racks (1)", [RacksView, RackHeatmap]),
            ("Nodes (2)", [NodesView]),
            ("A node (enter on a node)", [NodeView]),
            ("Pools (3)", [PoolsView]),
            ("Fabric (4)", [FabricView]),
            ("Events (5)", [EventsView]),
            ("Tables", [DataTable]),
            ("Dialogs", [Form, Confirm, Prompt]),
            ("Help (?)", [HelpScreen]),
        ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette lists every action a key runs here, with the key and where it works
        (Textual's own Quit and its focus and copy keys aside: ours and the terminal's do)."""
        yield from (c for c in super().get_system_commands(screen) if c.title != "Quit")
        here = "on this node's page" if isinstance(screen, NodeView) else "in this view"
        for target, bindings in ((self, self.BINDINGS), (screen, type(screen)._merge_bindings())):
            for binding in _bindings(bindings):
                name = binding.action.split("(")[0]
                if binding.action in ("command_palette", "exit_now") or not binding.description:
                    continue
                if "." in name:
                    continue
                if target is self or target.check_action(name, ()) is True:
                    yield SystemCommand(
                        f"{binding.description} ({binding.key_display or binding.key})",
                        "anywhere" if target is self else here,
                        partial(self.run_action, binding.action, target),
                    )

    # -- command mode ----------------------------------------------------------------------------

    def action_command_mode(self) -> None:
        words = SuggestFromList([f"{name} " for name in USAGE], case_sensitive=False)
        prompt = Prompt(":", "", "nodes · pools · drain r012-n03 · help", words)
        self.push_screen(prompt, self._command_entered)

    def _command_entered(self, line: str | None) -> None:
        if line is not None and line.strip():
            self.call_next(self.run_command_line, line)

    async def run_command_line(self, line: str) -> None:
        """Do what a command-mode line says, or say what is wrong with it."""
        try:
            parsed = parse(line, self.bridge.new_id)
        except CommandLineError as error:
            self.say(str(error), "error")
            return
        if isinstance(parsed, Run):
            if parsed.action == "quit":
                self.exit()
            else:
                self.action_help()
        elif isinstance(parsed, GoTo):
            await self.open(parsed)
        elif not self.read_only and (unknown := await self._refusal(parsed.command)):
            self.say(f"Refused: {action(parsed.command)}: {unknown}", "error")
        elif isinstance(parsed.command, Drain) and not self.read_only:
            self.drain_dialog(parsed.command)
        else:
            self.send(parsed.command)

    async def _refusal(self, command: OperatorCommand) -> str | None:
        """Why the core would refuse a node the command names (one it does not know, or a
        switch to cordon or drain), asked before any dialog opens; None if it would not, or
        is not online to ask (the command's reply will say)."""
        nodes = getattr(command, "nodes", None) or [getattr(command, "target", None)]
        nodes = [n for n in dict.fromkeys(nodes) if n]
        if not nodes or self.bridge.picture.core_state() != "online":
            return None
        asked = [self.bridge.query(NodeDetail, node=node) for node in nodes]
        answers = await asyncio.gather(*asked, return_exceptions=True)
        for node, known in zip(nodes, answers, strict=True):
            if isinstance(known, CommandFailed):
                return str(known)
            holds = isinstance(command, Cordon | Drain)
            if holds and isinstance(known, NodeDetail) and known.kind == "switch":
                return f"{node} is a switch, which carries no replicas"
        return None

    def drain_dialog(self, drain: Drain) -> None:
        """The drain dialog, filled in from a `:drain` line."""
        pools = self.bridge.picture.pools.pools if self.bridge.picture.pools else []
        dialog = DrainDialog(
            drain.nodes,
            pools,
            self.bridge.new_id,
            grace_s=drain.grace_s,
            force=drain.force,
            reason=drain.reason,
        )
        self.push_screen(dialog, self._dialog_done)

    def _dialog_done(self, command: Drain | None) -> None:
        if command is not None:
            self.send(command, confirmed=True)

    # -- commands out ----------------------------------------------------------------------------

    def on_send_command(self, message: SendCommand) -> None:
        message.stop()
        self.send(message.command, confirmed=message.confirmed)

    @work(group="commands")
    async def send(self, command: OperatorCommand, confirmed: bool = False) -> None:
        """Confirm (unless done already), send, and show the core's answer."""
        if self.read_only:
            console = "Replay" if self._replay_seen else "Read-only console"
            self.say(f"{console}: not allowed to {action(command)}.", "error")
            return
        if not confirmed and not await self.push_screen_wait(Confirm(question(command))):
            return
        try:
            reply = await self.bridge.request(command)
        except CommandFailed as error:
            self.say(f"Could not {action(command)}: {error}", "error")
            return
        self.answers.append((command, reply))
        text, severity = answer(command, reply)
        self.say(text, severity)
        for screen in self.screen_stack:
            if isinstance(screen, View):
                screen.post_message(CommandAnswered(command, reply))
        self._changed("summary")

    def say(self, text: str, severity: Level) -> None:
        """A notification, kept in `said` too."""
        self.said.append((text, severity))
        timeout = 12.0 if severity == "error" else 6.0
        self.notify(text, severity=severity, timeout=timeout, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.say(f"{event.worker.name} failed: {event.worker.error}", "error")


def _on_terminate(stop: Callable[[], None]) -> None:
    """SIGTERM (a stopped or killed demo) quits as `q` does, so the terminal is restored."""
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)


def _bindings(bindings: Iterable[object]) -> Iterable[Binding]:
    """Bindings from a BINDINGS list or a bindings map."""
    if hasattr(bindings, "key_to_bindings"):
        for group in bindings.key_to_bindings.values():
            yield from group
        return
    for binding in bindings:
        if isinstance(binding, Binding):
            yield binding
