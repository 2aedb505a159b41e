"""Textual's footer of key bindings, without the leak of its recomposes (textual#6666)."""

from textual.widgets import Footer


class KeysFooter(Footer):
    """The footer; each recompose drops the `compact` watchers of the keys it replaced, which
    Textual keeps (with the whole key widget) until `compact` changes, i.e. forever.
    Every change of view or focus recomposes the footer."""

    async def recompose(self) -> None:
        await super().recompose()
        watchers = getattr(self, "__watchers", {}).get("compact")
        if watchers:
            watchers[:] = [(node, callback) for node, callback in watchers if node.is_attached]
