"""The topics a site's core publishes its state on, decoded for the clients that follow it:
the one reader of the DataCenter's State and the console's picture of the site."""

from collections.abc import Mapping
from typing import TypeAlias

from protocols.codec import CODECS
from protocols.messages import CoreStatus, Events, FabricState, PoolStates, RackStates, Summary
from protocols.topics import TopicKind, core_status_topic, events_topic, parse_topic, state_filter

StateMessage: TypeAlias = Summary | RackStates | PoolStates | FabricState | CoreStatus | Events

STATE_FIELDS: Mapping[TopicKind, str] = {
    TopicKind.SUMMARY: "summary",
    TopicKind.RACKS: "racks",
    TopicKind.POOLS: "pools",
    TopicKind.FABRIC: "fabric",
    TopicKind.STATUS: "core",
    TopicKind.EVENTS: "events",
}
"""Each state topic's kind and the field a client keeps its latest message (or, for events,
the messages' events) under."""


def decode_state(
    topic: str, payload: bytes | bytearray | memoryview
) -> tuple[TopicKind, StateMessage]:
    """A message of one of a site's state topics, decoded, with its topic's kind; ValueError
    for a topic that is not one, MessageError for a malformed payload."""
    kind = parse_topic(topic).kind
    if kind not in STATE_FIELDS:
        raise ValueError(f"{topic} is not one of a site's state topics")
    message: StateMessage = CODECS[kind].decode(payload)
    return kind, message


def state_subscriptions(site: str) -> list[tuple[str, int]]:
    """The subscriptions (filter, QoS) of a client that follows `site`: the views at QoS 0
    (each tick's replaces the last), the core's status and its events at QoS 1."""
    return [(state_filter(site), 0), (core_status_topic(site), 1), (events_topic(site), 1)]
