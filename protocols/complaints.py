"""Rejected input, counted and logged with a rate limit, so a flood of bad messages costs one
line every few seconds and nothing else."""

import logging
import time
from collections import Counter

WINDOW_S = 10.0


class Complaints:
    """Counts rejections by reason; logs the first of each window and how many it held back."""

    def __init__(self, logger: logging.Logger, window_s: float = WINDOW_S) -> None:
        self.counts: Counter[str] = Counter()
        self._log = logger
        self._window_s = window_s
        self._window_start = -window_s
        self._held_back = 0

    @property
    def total(self) -> int:
        """Rejections so far."""
        return self.counts.total()

    def reject(self, kind: str, sentence: str) -> None:
        """Count a rejection of `kind` and log `sentence`, unless this window already did."""
        self.counts[kind] += 1
        now = time.monotonic()
        if now - self._window_start < self._window_s:
            self._held_back += 1
            return
        more = f" ({self._held_back} more rejected since)" if self._held_back else ""
        self._log.warning("%s%s", sentence, more)
        self._window_start, self._held_back = now, 0
