"""Python's full garbage collections, moved off the keyboard: the console's heap (widgets,
render caches, a large site's state) makes a full collection a pause of tens of ms, so the
automatic ones are turned off while it runs and a full collection runs when the operator has
not touched a key for a moment."""

import gc
import time

IDLE_S = 2.0
"""No key or click for this long counts as idle."""
EVERY_S = 30.0
"""A full collection at most this often while idle..."""
AT_LEAST_S = 120.0
"""...and at least this often, idle or not."""
NEVER = 1_000_000_000
"""A generation-2 threshold no session reaches."""


class IdleCollector:
    """Runs full collections when the operator is idle; young generations stay automatic."""

    def __init__(self) -> None:
        self.last_input = self.last_full = time.monotonic()
        self.collections = 0
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Take over the full collections (and remember Python's settings)."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(self._saved[0], self._saved[1], NEVER)

    def stop(self) -> None:
        """Give the full collections back to Python."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def touched(self) -> None:
        """The operator pressed a key or clicked."""
        self.last_input = time.monotonic()

    def maybe_collect(self) -> bool:
        """A full collection if it is time and the operator idle; whether one ran."""
        now = time.monotonic()
        due = now - self.last_full >= EVERY_S and now - self.last_input >= IDLE_S
        if not (due or now - self.last_full >= AT_LEAST_S):
            return False
        gc.collect()
        self.last_full = time.monotonic()
        self.collections += 1
        return True
