"""A DataTable that is repainted whole from rows keyed by id, keeping the cursor on the same
row (or at the same place) across repaints."""

from collections.abc import Sequence
from typing import Any

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
                        self.update_cell(key, column, cell)
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
