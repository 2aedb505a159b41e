"""What a site's core has published, as a client sees it: the latest summary, rack, pool and
fabric views, the core's status, and the events so far."""

from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

from protocols.codec import arrays
from protocols.messages import (
    CoreStatus,
    Event,
    Events,
    FabricState,
    PoolState,
    PoolStates,
    RackStates,
    Summary,
    SwitchState,
)
from protocols.state_topics import STATE_FIELDS, StateMessage
from protocols.topics import TopicKind

MAX_EVENTS = 10_000
"""Events a State keeps; older ones fall off."""


@dataclass
class State:
    """The latest of each view (None until the core has published it) and recent events."""

    summary: Summary | None = None
    racks: RackStates | None = None
    pools: PoolStates | None = None
    fabric: FabricState | None = None
    core: CoreStatus | None = None
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))

    def put(self, kind: TopicKind, message: StateMessage) -> None:
        """Keep a message the core published on one of the state topics."""
        if isinstance(message, Events):
            self.events.extend(message.events)
        else:
            setattr(self, STATE_FIELDS[kind], message)

    def pool(self, name: str) -> PoolState:
        """One pool's latest state; KeyError naming the pools there are if it is not one."""
        return _named(self.pools.pools if self.pools else [], "pool", name)

    def rack(self, rack: str) -> dict[str, float]:
        """One rack's latest aggregates (devices, healthy, utilization, temperature_c, ...)."""
        if self.racks is None or rack not in self.racks.racks:
            known = ", ".join(self.racks.racks) if self.racks else "none published yet"
            raise KeyError(f"no rack {rack!r} (racks: {known})")
        record = arrays(self.racks, "columns")
        assert record is not None
        row = self.racks.racks.index(rack)
        names = [n for n in record.dtype.names or () if n != "node"]
        return {name: float(record[name][row]) for name in names}

    def switch(self, name: str) -> SwitchState:
        """One switch's latest state."""
        return _named(self.fabric.switches if self.fabric else [], "switch", name)

    def find_events(
        self,
        kind: str | None = None,
        subject: str = "",
        message: str = "",
        severity: str | None = None,
    ) -> list[Event]:
        """Events of `kind` whose subject and message contain the given text, oldest first."""
        return [
            e
            for e in self.events
            if (kind is None or e.kind == kind)
            and (severity is None or e.severity == severity)
            and subject in e.subject
            and message in e.message
        ]


Named = TypeVar("Named", PoolState, SwitchState)


def _named(items: list[Named], what: str, name: str) -> Named:
    """The item whose `what` field is `name`; KeyError naming the ones there are."""
    for item in items:
        if getattr(item, what) == name:
            return item
    known = ", ".join(getattr(i, what) for i in items) or "none published yet"
    raise KeyError(f"no {what} {name!r} ({what}s: {known})")
