"""Growable structure-of-arrays tables with an index from ids to rows."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

INITIAL_CAPACITY = 64


class Table:
    """Rows of named numpy columns, one dtype each, found by id; rows are never reused.

    `columns[name]` is a view of the first `len(table)` rows; it is replaced when the table
    grows, so look it up again after `add`.
    """

    def __init__(self, dtypes: Mapping[str, npt.DTypeLike], width: Mapping[str, int] | None = None):
        self._dtypes = {name: np.dtype(dtype) for name, dtype in dtypes.items()}
        self._width = dict(width or {})
        self._capacity = INITIAL_CAPACITY
        self._data = {name: self._empty(name, self._capacity) for name in self._dtypes}
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}

    def _empty(self, name: str, capacity: int) -> npt.NDArray[np.generic]:
        width = self._width.get(name)
        shape = (width, capacity) if width else (capacity,)
        return np.zeros(shape, self._dtypes[name])

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: list[str]) -> npt.NDArray[np.intp]:
        """Rows for new ids (zeroed), or the existing rows of ids already present."""
        known = self.rows
        new = [item for item in dict.fromkeys(ids) if item not in known]
        if new:
            known.update(zip(new, range(len(self.ids), len(self.ids) + len(new)), strict=True))
            self.ids.extend(new)
            if len(self.ids) > self._capacity:
                self._grow(len(self.ids))
        return np.fromiter(map(known.__getitem__, ids), np.intp, len(ids))

    def add_anonymous(self, count: int) -> npt.NDArray[np.intp]:
        """`count` new rows with no id (devices, found through their node)."""
        start = len(self.ids)
        self.ids.extend([""] * count)
        if len(self.ids) > self._capacity:
            self._grow(len(self.ids))
        return np.arange(start, start + count)

    def _grow(self, needed: int) -> None:
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        for name, old in self._data.items():
            new = self._empty(name, capacity)
            new[..., : self._capacity] = old
            self._data[name] = new
        self._capacity = capacity

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        """The live rows of one column (all `width` lanes of a 2-D column)."""
        return self._data[name][..., : len(self.ids)]


class IdOrder:
    """The rows of a Table ranked by their ids as text, so that what follows the ranks (the
    placement of replicas) does not depend on the order the rows arrived in. Kept up to date as
    the table grows: only the new ids are sorted, then merged into the sorted ones."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._sorted: npt.NDArray[np.str_] = np.empty(0, "U1")
        self._order: npt.NDArray[np.intp] = np.empty(0, np.intp)
        """The rows in id order."""
        self._ranks: npt.NDArray[np.int64] = np.empty(0, np.int64)

    def ranks(self) -> npt.NDArray[np.int64]:
        """Each row's position in id order (0 for the first id)."""
        known, total = len(self._order), len(self.table)
        if total > known:
            new = np.array(self.table.ids[known:])
            order = np.argsort(new, kind="stable")
            merged = np.promote_types(self._sorted.dtype, new.dtype)
            known_ids, new_ids = self._sorted.astype(merged), new[order].astype(merged)
            at = np.searchsorted(known_ids, new_ids)
            self._sorted = np.insert(known_ids, at, new_ids)
            self._order = np.insert(self._order, at, known + order)
            self._ranks = np.empty(total, np.int64)
            self._ranks[self._order] = np.arange(total)
        return self._ranks
