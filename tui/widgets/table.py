"""A DataTable that is repainted whole from rows keyed by id, keeping the cursor on the same
row (or at the same place) across repaints, and that shows as many of its columns as fit its
width, the least needed dropped first; a cell is never cut."""

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, Sequence[Cell]]


class Table(DataTable[Cell]):
    """Rows by key, replaced together; `cursor_key` is the highlighted row's key."""

    def __init__(self, *, id: str | None = None, **kwargs: Any) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns: tuple[tuple[str, str], ...] = ()
        self._keys: list[str] = []
        self._fitted: tuple[Sequence[tuple[str, str]], Sequence[Row], Sequence[str]] | None = None

    def set_columns(self, columns: Sequence[tuple[str, str]]) -> None:
        """(key, label) pairs; a change of columns clears the table."""
        wanted = tuple(columns)
        if wanted != self._columns:
            self.clear(columns=True)
            self._keys = []
            for key, label in wanted:
                self.add_column(label, key=key)
            self._columns = wanted

    @property
    def keys(self) -> list[str]:
        """The row keys, top to bottom."""
        return self._keys

    @property
    def cursor_key(self) -> str | None:
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def show_rows(self, rows: Sequence[Row]) -> None:
        """Replace every row; the cursor stays on its row's key if it is still there."""
        keys = [key for key, _ in rows]
        if keys == self._keys:
            for key, cells in rows:
                for (column, _), cell in zip(self._columns, cells, strict=True):
                    if self.get_cell(key, column) != cell:
                        self.update_cell(key, column, cell, update_width=True)
            return
        current, row = self.cursor_key, self.cursor_row
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._keys = keys
        if current in keys:
            row = keys.index(current)
        if keys:
            self.move_cursor(row=min(row, len(keys) - 1), animate=False, scroll=True)

    def show_fitted(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[Row], drop: Sequence[str]
    ) -> None:
        """Show the rows under the columns that fit the table's width: those named in `drop`
        go first to last until the rest fit (the others always show). Shown again, fitted
        anew, when the table is resized."""
        self._fitted = (columns, rows, drop)
        widths = [cell_len(label) for _, label in columns]
        for _, cells in rows:
            widths = [max(w, cell_len(_plain(c))) for w, c in zip(widths, cells, strict=True)]
        pad = 2 * self.cell_padding
        padded = {key: w + pad for (key, _), w in zip(columns, widths, strict=True)}
        room = self.scrollable_content_region.width or self.app.size.width
        kept = {key for key, _ in columns}
        for key in drop:
            if sum(padded[k] for k in kept) <= room:
                break
            kept.discard(key)
        shown = [i for i, (key, _) in enumerate(columns) if key in kept]
        self.set_columns([columns[i] for i in shown])
        self.show_rows([(key, [cells[i] for i in shown]) for key, cells in rows])

    def on_resize(self) -> None:
        if self._fitted is not None:
            self.show_fitted(*self._fitted)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell
