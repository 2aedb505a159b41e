"""Topic builders, subscription filters and the parser for the `aidc/v1/{site}/...` namespace.

Agent topics (one publisher each; `agent` is the MQTT client that owns the connection:
a node, or a rack gateway whose nodes share one connection):

    aidc/v1/{site}/birth/{rack}/{agent}      Birth, published on every (re)connect
    aidc/v1/{site}/death/{rack}/{agent}      Death, the MQTT will (and on clean shutdown)
    aidc/v1/{site}/telemetry/{rack}/{agent}  Telemetry batches
    aidc/v1/{site}/assign/{rack}/{agent}     Assignment, core -> agent
    aidc/v1/{site}/agentcmd/{rack}/{agent}   fault inject/clear, reboot, rebirth -> agent

Core topics:

    aidc/v1/{site}/core/status               CoreStatus, retained; the will says offline
    aidc/v1/{site}/core/clock                CoreClock, retained, every tick
    aidc/v1/{site}/core/events               Events
    aidc/v1/{site}/state/{view}              Summary, RackStates, PoolStates, FabricState
    aidc/v1/{site}/ctl/cmd                   operator commands (JSON or msgpack)
    aidc/v1/{site}/ctl/reply/{command_id}    replies
"""

import functools
import re
from enum import StrEnum
from typing import Final, Literal, NamedTuple

from protocols.ids import check_command_id, check_id

ROOT = "aidc/v1"
WILDCARD: Final = "+"
SUBTREE: Final = "#"
"""MQTT's multi-level wildcard: a filter ending in it matches every topic below."""
LOGIN = "%u"
"""The client's username in a broker ACL's `pattern` lines: as the agent level of an agent
filter, it lets each agent's login reach only its own topics."""


class AgentTopic(StrEnum):
    """Topic kinds published by or to one agent."""

    BIRTH = "birth"
    DEATH = "death"
    TELEMETRY = "telemetry"
    ASSIGN = "assign"
    AGENTCMD = "agentcmd"


class StateView(StrEnum):
    """Fleet state views the core publishes for dashboards."""

    SUMMARY = "summary"
    RACKS = "racks"
    POOLS = "pools"
    FABRIC = "fabric"


class TopicKind(StrEnum):
    """Every kind of topic `parse_topic` tells apart: each AgentTopic, the core's status,
    clock and events, each StateView, and the commands and their replies."""

    BIRTH = "birth"
    DEATH = "death"
    TELEMETRY = "telemetry"
    ASSIGN = "assign"
    AGENTCMD = "agentcmd"
    STATUS = "status"
    CLOCK = "clock"
    EVENTS = "events"
    SUMMARY = "summary"
    RACKS = "racks"
    POOLS = "pools"
    FABRIC = "fabric"
    CMD = "cmd"
    REPLY = "reply"


class Topic(NamedTuple):
    """A parsed aidc topic; the fields after `kind` are '' where the kind has none."""

    site: str
    kind: TopicKind
    rack: str = ""
    agent: str = ""
    name: str = ""


def _site(site: str) -> str:
    return f"{ROOT}/{check_id(site, 'site')}"


def agent_topic(kind: AgentTopic, site: str, rack: str, agent: str) -> str:
    """The topic of one agent's messages of `kind`."""
    return f"{_site(site)}/{AgentTopic(kind)}/{check_id(rack, 'rack')}/{check_id(agent, 'agent')}"


def agent_filter(kind: AgentTopic, site: str, rack: str = WILDCARD, agent: str = WILDCARD) -> str:
    """A subscription filter for agents' messages of `kind` (all racks and agents by default;
    `agent` may be LOGIN in an ACL)."""
    rack = rack if rack == WILDCARD else check_id(rack, "rack")
    agent = agent if agent in (WILDCARD, LOGIN) else check_id(agent, "agent")
    return f"{_site(site)}/{AgentTopic(kind)}/{rack}/{agent}"


def core_status_topic(site: str) -> str:
    """The core's retained liveness topic."""
    return f"{_site(site)}/core/status"


def core_clock_topic(site: str) -> str:
    """The core's simulated clock, retained."""
    return f"{_site(site)}/core/clock"


def events_topic(site: str) -> str:
    """The core's event stream."""
    return f"{_site(site)}/core/events"


def state_topic(site: str, view: StateView) -> str:
    """One fleet state view for dashboards."""
    return f"{_site(site)}/state/{StateView(view)}"


def state_filter(site: str, level: Literal["+", "#"] = WILDCARD) -> str:
    """All fleet state views of a site (with `level` SUBTREE, any topic below `state/`)."""
    return f"{_site(site)}/state/{level}"


def core_filter(site: str) -> str:
    """Every topic the core publishes about itself: its status and events."""
    return f"{_site(site)}/core/{SUBTREE}"


def site_filter(site: str) -> str:
    """Every topic of a site."""
    return f"{_site(site)}/{SUBTREE}"


def command_topic(site: str) -> str:
    """Where operators publish commands."""
    return f"{_site(site)}/ctl/cmd"


def reply_topic(site: str, command_id: str) -> str:
    """The default reply topic of a command."""
    return f"{_site(site)}/ctl/reply/{check_command_id(command_id)}"


def reply_prefix(site: str) -> str:
    """Every reply topic of a site starts with this; a command's reply_to must too."""
    return f"{_site(site)}/ctl/reply/"


_CORE_KINDS = {
    ("core", "status"): TopicKind.STATUS,
    ("core", "clock"): TopicKind.CLOCK,
    ("core", "events"): TopicKind.EVENTS,
    ("ctl", "cmd"): TopicKind.CMD,
}


MAX_REPLY_LEVELS = 4
"""Levels a reply topic may have below `ctl/reply/`."""
_REPLY_LEVEL = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


def check_reply_level(level: str) -> str:
    """A level of a reply topic below `ctl/reply/`, as `reply_to` allows them; ValueError if not."""
    if not _REPLY_LEVEL.match(level):
        raise ValueError(f"reply topic level {level!r} is not 1-64 of A-Z a-z 0-9 _ . -")
    return level


TOPICS_REMEMBERED = 1 << 16
"""Topics whose parse is kept: the telemetry, birth and death topics of 20,000 agents (a
million GPUs' racks and switches), about 27 MB (413 bytes each, by tracemalloc). Every message
is classed by its topic on arrival and handled by it after, and at 4,000 messages a second
parsing each twice cost the core a tenth of its time (py-spy, 250k GPUs on rack
connections)."""


@functools.lru_cache(maxsize=TOPICS_REMEMBERED)
def parse_topic(topic: str) -> Topic:
    """Parse an aidc topic, validating every id in it; raise ValueError if it is not one."""
    parts = topic.split("/")
    if len(parts) < 3 or "/".join(parts[:2]) != ROOT:
        raise ValueError(f"topic {topic!r} is not in the {ROOT}/{{site}}/... namespace")
    site = check_id(parts[2], "site")
    rest = parts[3:]
    if len(rest) == 3 and rest[0] in AgentTopic.__members__.values():
        rack, agent = check_id(rest[1], "rack"), check_id(rest[2], "agent")
        return Topic(site, TopicKind(rest[0]), rack, agent)
    if len(rest) == 2 and (kind := _CORE_KINDS.get((rest[0], rest[1]))):
        return Topic(site, kind)
    if len(rest) == 2 and rest[0] == "state" and rest[1] in StateView.__members__.values():
        return Topic(site, TopicKind(rest[1]))
    if 3 <= len(rest) <= 2 + MAX_REPLY_LEVELS and rest[:2] == ["ctl", "reply"]:
        # a client may keep its replies under its own levels (`ctl/reply/{client}/{id}`)
        return Topic(site, TopicKind.REPLY, name="/".join(check_reply_level(r) for r in rest[2:]))
    raise ValueError(f"topic {topic!r} is not an aidc v1 topic")
