"""The console's picture of a site: the latest state views, recent events and link health,
kept as plain data (no Textual) so the bridge can fill it and any screen or bench read it."""

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from protocols.codec import FABRIC_STATE, RACK_STATES, arrays
from protocols.errors import MessageError
from protocols.messages import (
    CoreStatus,
    Event,
    FabricState,
    PoolState,
    PoolStates,
    RackStates,
    Summary,
)

RECENT_EVENTS = 5000
"""Events the console keeps for its events view."""
STALE_TICKS = 5
"""A core whose summary is this many of its ticks late is shown as stalled..."""
STALE_MIN_S = 5.0
"""...and never sooner than this many seconds."""


@dataclass(frozen=True)
class Racks:
    """Per-rack columns ordered by rack id, so the heatmap keeps its layout tick to tick."""

    time: float
    names: list[str]
    columns: dict[str, npt.NDArray[np.float64]]
    wire: list[str] = field(default_factory=list, repr=False)
    """The racks in the order the core sent them, and `order` sorts them by id."""
    order: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp), repr=False)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def of(cls, message: RackStates, previous: "Racks | None" = None) -> "Racks":
        """The message's columns in rack-id order; the sort is reused while the racks stay."""
        record = arrays(message, "columns")
        if record is None or not message.racks:
            return cls(message.time, [], {})
        if previous is not None and previous.wire == message.racks:
            wire, order, names = previous.wire, previous.order, previous.names
        else:
            wire, order = message.racks, np.argsort(np.asarray(message.racks))
            names = [message.racks[int(i)] for i in order]
        columns = {
            name: record[name][order].astype(np.float64)
            for name in record.dtype.names or ()
            if name != "node"
        }
        return cls(message.time, names, columns, wire, order)


def _identity(event: Event) -> tuple[float, str, str, str]:
    return event.time, event.subject, event.kind, event.message


@dataclass
class Link:
    """How the console's own connection is doing."""

    up: bool = False
    note: str = "connecting"
    """The last thing the connection said: 'connecting', 'connected', or why it is down."""


@dataclass
class SitePicture:
    """Everything the console knows about a site, newest first where it matters.

    The rack and fabric views of a large site are megabytes a tick; they are kept as they
    arrived and decoded only when something reads them, so a view not on screen costs
    nothing and ticks that arrive between two repaints are decoded once.
    """

    site: str
    summary: Summary | None = None
    pools: PoolStates | None = None
    core: CoreStatus | None = None
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    events_total: int = 0
    """Events seen since the console started, so views know when something new arrived."""
    link: Link = field(default_factory=Link)
    summary_at: float = 0.0
    """Monotonic time the last summary arrived."""
    tick_s: float = 1.0
    """Real seconds between summaries, smoothed."""
    rejected: int = 0
    """Malformed messages dropped."""
    last_rejected: str = ""
    _racks: Racks | None = None
    _fabric: FabricState | None = None
    _held: dict[str, tuple[str, bytes]] = field(default_factory=dict, repr=False)

    def hold(self, view: str, topic: str, payload: bytes) -> None:
        """Keep a rack or fabric view's payload, to decode when it is read."""
        self._held[view] = (topic, payload)

    def reject(self, topic: str, error: Exception) -> None:
        """Count a malformed message and remember why."""
        self.rejected += 1
        self.last_rejected = f"{topic}: {error}"

    @property
    def racks(self) -> Racks | None:
        """The latest rack view, in rack-id order."""
        held = self._held.pop("racks", None)
        if held is not None:
            try:
                self._racks = Racks.of(RACK_STATES.decode(held[1]), self._racks)
            except MessageError as error:
                self.reject(held[0], error)
        return self._racks

    @property
    def fabric(self) -> FabricState | None:
        """The latest fabric view."""
        held = self._held.pop("fabric", None)
        if held is not None:
            try:
                self._fabric = FABRIC_STATE.decode(held[1])
            except MessageError as error:
                self.reject(held[0], error)
        return self._fabric

    def apply(self, message: object) -> str | None:
        """Take in one decoded state message; the name of the view it changed, else None."""
        if isinstance(message, Summary):
            now = time.monotonic()
            if self.summary is not None:
                self.tick_s += 0.2 * (now - self.summary_at - self.tick_s)
            self.summary, self.summary_at = message, now
            return "summary"
        if isinstance(message, RackStates):
            self._racks = Racks.of(message, self.racks)
            return "racks"
        if isinstance(message, PoolStates):
            self.pools = message
            return "pools"
        if isinstance(message, FabricState):
            self._held.pop("fabric", None)
            self._fabric = message
            return "fabric"
        if isinstance(message, CoreStatus):
            self.core = message
            return "summary"
        return None

    def add_events(self, events: list[Event]) -> None:
        """Append live events (oldest first, as the core sends them)."""
        self.events.extend(events)
        self.events_total += len(events)

    def backfill_events(self, newest_first: list[Event]) -> None:
        """Put events read back from the core before the live ones, skipping ones we hold."""
        held = {(e.time, e.subject, e.kind, e.message) for e in self.events}
        older = [
            e for e in reversed(newest_first) if (e.time, e.subject, e.kind, e.message) not in held
        ]
        if older:
            room = (self.events.maxlen or RECENT_EVENTS) - len(self.events)
            self.events.extendleft(reversed(older[-room:] if room > 0 else []))
            self.events_total += len(older)

    def pool(self, name: str) -> PoolState | None:
        """One pool's latest state."""
        if self.pools is None:
            return None
        return next((p for p in self.pools.pools if p.pool == name), None)

    @property
    def replay(self) -> str:
        """What `aidc replay` is replaying here (its core status says so), else ''."""
        return self.core.replay if self.core is not None else ""

    def core_state(self, now: float | None = None) -> str:
        """'online', 'offline', 'stalled' (online but no summary lately) or 'unknown'."""
        if not self.link.up:
            return "unknown"
        if self.core is not None and not self.core.online:
            return "offline"
        if self.summary is None:
            return "online" if self.core is not None else "unknown"
        now = time.monotonic() if now is None else now
        late = max(STALE_MIN_S, STALE_TICKS * self.tick_s)
        return "stalled" if now - self.summary_at > late else "online"
