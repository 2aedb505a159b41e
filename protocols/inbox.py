"""A link's bounded receive queue: telemetry, assignments and state views are shed oldest
first beyond a bound in bytes, and counted; nothing else is ever dropped.

aiomqtt's own queue is unbounded (paho's reader puts every message in it as it arrives, however
far behind the handler is), so a core that ingests slower than the fleet publishes grew to
gigabytes. Messages are classed by topic (`protocols.topics.parse_topic`):

- **sheddable**: telemetry and assignments (the next one of the same agent supersedes it)
  and the fleet state views (summary, racks, pools, fabric: the latest wins). Past the bound
  the oldest of them is dropped first, so what is handed on is the freshest there is;
- **kept**: births, deaths, agent commands, operator commands, replies, the core's status
  and events, and any topic that does not parse (its handler says what is wrong with it).

Arrival order holds across both classes: each entry carries its arrival number, and `get`
takes whichever head came first, so a death never overtakes its agent's earlier telemetry
and a birth is never overtaken by later telemetry.

The bound is in bytes, not messages, because message sizes differ by four orders of
magnitude (a death is 50 bytes, an NVL72 rack's telemetry about 19 KB, a gateway's batch up
to a megabyte): a count that holds a minute of small messages would hold gigabytes of batches.
Each message is charged its payload, its topic and a fixed overhead for the Python objects
that carry them (measured, below), so a flood of tiny messages is bounded too, and the bound
is what the queue costs in memory.
"""

import asyncio
from collections import Counter, deque

import aiomqtt

from protocols.limits import MIB
from protocols.topics import TopicKind, parse_topic

DEFAULT_MAX_BYTES = 8 * MIB
"""A link's bound unless its owner chooses one: a few of the largest telemetry batches or
assignments (protocols.limits.MAX_TELEMETRY_BYTES, 8 MiB, is the most one may be), or a
console's state views many times over (a million-GPU site's racks view is about 0.5 MB: 13,900
NVL72 racks of 31 bytes of columns and an id). Small, because a fleet process holds a link
per agent."""
MESSAGE_OVERHEAD_BYTES = 512
"""Memory a received message takes beyond its payload and topic characters: aiomqtt's Message
and Topic, the headers of the payload's bytes and the topic's str, the queue entry. Measured
with tracemalloc on CPython 3.11 (aiomqtt 2.5, paho 2.1): 415 bytes, rounded up."""
PROPERTIES_OVERHEAD_BYTES = 6 * 1024
"""What an MQTT 5 message's properties add: paho builds its name tables afresh for every
message's Properties (two dicts of 27 entries). Measured as above: 5,760 bytes, rounded up."""

_BY_AGENT = frozenset({TopicKind.TELEMETRY, TopicKind.ASSIGN})
_BY_VIEW = frozenset({TopicKind.SUMMARY, TopicKind.RACKS, TopicKind.POOLS, TopicKind.FABRIC})

UNREADABLE = "(unreadable ids)"
"""The name the drops of sheddable messages whose topic ids do not parse are counted under."""

Entry = tuple[int, aiomqtt.Message]
"""A message and its arrival number."""


def shed_class(topic: str) -> tuple[TopicKind, str] | None:
    """The kind of a sheddable message and the name its drops are counted under (its topic's
    agent; `state/{view}` for a state view); None for a message that is never shed."""
    try:
        parsed = parse_topic(topic)
    except ValueError:
        # Telemetry or an assignment whose ids do not parse still matches `telemetry/+/+`:
        # shed it like any (a flood of it must not grow memory), counted under one name.
        level = topic.split("/")[3:4]
        if level and level[0] in _BY_AGENT:
            return TopicKind(level[0]), UNREADABLE
        return None
    if parsed.kind in _BY_AGENT:
        return parsed.kind, parsed.agent
    if parsed.kind in _BY_VIEW:
        return parsed.kind, f"state/{parsed.kind}"
    return None


def charge(message: aiomqtt.Message) -> int:
    """The bytes a message counts for against the bound: about what it holds in memory."""
    extra = MESSAGE_OVERHEAD_BYTES
    if message.properties is not None:
        extra += PROPERTIES_OVERHEAD_BYTES
    return len(message.payload) + len(message.topic.value) + extra


class ReceiveQueue(asyncio.Queue[aiomqtt.Message]):
    """An asyncio queue of received messages whose sheddable part holds at most `max_bytes`
    (as `charge` counts them); beyond it the oldest sheddable message is dropped, and counted
    by name (`shed`), by kind (`shed_kinds`) and in all (`shed_total`).

    A sheddable message larger than the whole bound is still kept, alone: it is the newest,
    and dropping it would starve a reader whose every message is that large. Kept messages
    are not bounded: they are few (they grow with agents and commands, not with devices or
    ticks), and losing one loses a birth, a death or an operator's command.

    `put_nowait` never raises QueueFull, so aiomqtt's reader never discards a message of its
    own accord. `task_done` and `join` are not for this queue: shed messages are never done.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"a receive queue's bound must be 1 byte or more, not {max_bytes}")
        self.max_bytes = max_bytes
        self.shed: Counter[str] = Counter()
        """Messages dropped, by their topic's agent (or `state/{view}`)."""
        self.shed_kinds: Counter[TopicKind] = Counter()
        """Messages dropped, by topic kind."""
        self.shed_total = 0
        self.held_bytes = 0
        """What the sheddable messages waiting now are charged."""
        self.peak_bytes = 0
        """The most `held_bytes` has been."""
        self.arrived = 0
        """Messages put in the queue, shed or not."""
        super().__init__()

    def _init(self, maxsize: int) -> None:
        # asyncio.Queue's hook for a subclass's own storage, as PriorityQueue uses it
        self._kept: deque[Entry] = deque()
        self._sheddable: deque[Entry] = deque()

    def _put(self, item: aiomqtt.Message) -> None:
        self.arrived += 1
        entry = (self.arrived, item)
        if shed_class(item.topic.value) is None:
            self._kept.append(entry)
            return
        self._sheddable.append(entry)
        self.held_bytes += charge(item)
        while self.held_bytes > self.max_bytes and len(self._sheddable) > 1:
            self._shed(self._sheddable.popleft()[1])
        self.peak_bytes = max(self.peak_bytes, self.held_bytes)

    def _shed(self, message: aiomqtt.Message) -> None:
        self.held_bytes -= charge(message)
        # classed again rather than kept with every entry: only a shed message needs it
        found = shed_class(message.topic.value)
        assert found is not None
        kind, name = found
        self.shed[name] += 1
        self.shed_kinds[kind] += 1
        self.shed_total += 1

    def _get(self) -> aiomqtt.Message:
        kept, sheddable = self._kept, self._sheddable
        if sheddable and (not kept or sheddable[0][0] < kept[0][0]):
            message = sheddable.popleft()[1]
            self.held_bytes -= charge(message)
            return message
        return kept.popleft()[1]

    def qsize(self) -> int:
        """Messages waiting, of both classes."""
        return len(self._kept) + len(self._sheddable)

    def empty(self) -> bool:
        """Whether no message is waiting."""
        return not (self._kept or self._sheddable)

    def discard(self) -> int:
        """Drop every waiting message, uncounted (a power loss loses what was not read);
        how many there were."""
        waiting = self.qsize()
        self._kept.clear()
        self._sheddable.clear()
        self.held_bytes = 0
        return waiting
