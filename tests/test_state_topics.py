"""The one reader of a site's state topics, shared by the DataCenter's State and the console."""

import pytest

from aidc.site.state import State
from protocols.codec import CODECS, encode
from protocols.errors import MessageError
from protocols.messages import Events
from protocols.state_topics import STATE_FIELDS, decode_state
from protocols.topics import TopicKind
from tests.samples import SAMPLES, sample_topic


@pytest.mark.parametrize("kind", sorted(STATE_FIELDS))
def test_each_state_topic_decodes_to_its_kind_and_a_state_keeps_it(kind: TopicKind) -> None:
    state = State()
    for message in SAMPLES[kind]:
        decoded_kind, decoded = decode_state(sample_topic(kind), encode(message))
        assert decoded_kind == kind
        assert decoded == message
        state.put(decoded_kind, decoded)
    kept = getattr(state, STATE_FIELDS[kind])
    if kind == "events":
        assert list(kept) == [e for m in SAMPLES[kind] if isinstance(m, Events) for e in m.events]
    else:
        assert kept == SAMPLES[kind][-1]


@pytest.mark.parametrize("kind", sorted(set(CODECS) - set(STATE_FIELDS)))
def test_a_topic_that_is_not_a_state_topic_is_refused(kind: str) -> None:
    topic = sample_topic(kind)
    with pytest.raises(ValueError, match="is not one of a site's state topics"):
        decode_state(topic, encode(SAMPLES[kind][0]))


def test_a_malformed_state_payload_is_a_message_error() -> None:
    with pytest.raises(MessageError):
        decode_state(sample_topic("summary"), b"\x92not a summary")
