"""The frame every top-level view shares: the overview header, its body and the footer, the
filter prompt, and read-only checks on the actions that change the site."""

from collections.abc import Set
from typing import ClassVar, Protocol, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from tui.bridge import Bridge
from tui.dialogs.prompt import Prompt
from tui.picture import SitePicture
from tui.widgets.footer import KeysFooter
from tui.widgets.header import OverviewHeader

EVERYTHING = frozenset({"summary", "racks", "pools", "fabric", "events"})


class Host(Protocol):
    """What views need of the app."""

    bridge: Bridge

    @property
    def read_only(self) -> bool: ...


class View(Screen[None]):
    """A screen under the overview header; subclasses compose `body` and repaint in `show`."""

    BINDINGS: ClassVar = [
        Binding("slash", "filter", "Filter", key_display="/", id="filter"),
    ]
    MUTATIONS: ClassVar[frozenset[str]] = frozenset()
    """Actions of this view that change the site (or only serve those that do): hidden and
    refused when read-only."""
    FILTERABLE: ClassVar[bool] = False
    filter_text = ""

    @property
    def host(self) -> Host:
        return cast(Host, self.app)

    @property
    def picture(self) -> SitePicture:
        return self.host.bridge.picture

    def compose(self) -> ComposeResult:
        yield OverviewHeader()
        yield from self.body()
        yield KeysFooter()

    def body(self) -> ComposeResult:
        """The view's own widgets."""
        yield from ()

    def on_mount(self) -> None:
        self.picture_changed(EVERYTHING)

    def on_screen_resume(self) -> None:
        self.picture_changed(EVERYTHING)

    def picture_changed(self, views: Set[str]) -> None:
        """Repaint the header and whatever of this view depends on `views`; nothing while its
        widgets are still being composed (its mount paints everything)."""
        headers = self.query(OverviewHeader)
        if not headers:
            return
        bridge = self.host.bridge
        headers.first().show(bridge.picture, bridge.endpoint.url, self.host.read_only)
        self.show(views)

    def show(self, views: Set[str]) -> None:
        """Repaint the body for changes to `views`."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MUTATIONS and self.host.read_only:
            return False
        return action != "filter" or self.FILTERABLE

    def action_filter(self) -> None:
        self.app.push_screen(Prompt("/", self.filter_text, "filter"), self._filtered)

    def _filtered(self, text: str | None) -> None:
        if text is not None:
            self.apply_filter(text.strip())

    def apply_filter(self, text: str) -> None:
        """Show only what matches `text`."""
        self.filter_text = text
