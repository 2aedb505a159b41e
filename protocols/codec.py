"""Encoders and decoders, built once, with size limits and one error type for bad payloads.

Every message encodes as msgpack (the default) or JSON; decoders accept either, telling
them apart by the first byte (a JSON message starts with `{` or `[`, which no msgpack
message of ours does).
"""

from typing import Any, Generic, TypeVar

import msgspec

from protocols import commands, messages, queries
from protocols.columns import Columns, Record, layout
from protocols.errors import MessageError
from protocols.ids import COMMAND_ID_PATTERN, ID_PATTERN
from protocols.limits import (
    MAX_BIRTH_BYTES,
    MAX_COMMAND_BYTES,
    MAX_SMALL_BYTES,
    MAX_STATE_BYTES,
    MAX_TELEMETRY_BYTES,
)
from protocols.topics import Topic, TopicKind, parse_topic

T = TypeVar("T")

_JSON_START = frozenset(b"{[")
_WHITESPACE = b" \t\r\n"
_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    """msgpack bytes of a message."""
    return _msgpack.encode(message)


def encode_json(message: Any) -> bytes:
    """JSON bytes of a message (base64 for column bytes)."""
    return _json.encode(message)


def is_json(payload: bytes | bytearray | memoryview) -> bool:
    """Whether a payload is JSON rather than msgpack."""
    head = bytes(payload[:64]).lstrip(_WHITESPACE)
    return bool(head) and head[0] in _JSON_START


class Codec(Generic[T]):
    """Decodes one message type from msgpack or JSON, within a size limit."""

    def __init__(self, kind: str, message_type: Any, max_bytes: int) -> None:
        self.kind = kind
        self.message_type = message_type
        self.max_bytes = max_bytes
        self._from_msgpack: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(message_type)
        self._from_json: msgspec.json.Decoder[T] = msgspec.json.Decoder(message_type)

    def decode(self, payload: bytes | bytearray | memoryview) -> T:
        """The message in `payload`; MessageError with the reason if it is not one."""
        size = len(payload)
        if size == 0:
            raise MessageError(self.kind, "empty payload")
        if size > self.max_bytes:
            raise MessageError(self.kind, f"{size} bytes is over the {self.max_bytes}-byte limit")
        json = is_json(payload)
        try:
            if json:
                return self._from_json.decode(payload)
            return self._from_msgpack.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            if json and not _is_utf8(payload):  # said in our words, whatever msgspec's are
                raise MessageError(self.kind, NOT_UTF8) from None
            raise MessageError(self.kind, _readable(str(error))) from None
        except UnicodeDecodeError:  # msgspec before 0.19 raised this for a bad string
            raise MessageError(self.kind, NOT_UTF8) from None
        except RecursionError:
            raise MessageError(self.kind, "nested too deeply") from None


NOT_UTF8 = "a string is not valid UTF-8"


def _is_utf8(payload: bytes | bytearray | memoryview) -> bool:
    try:
        bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_PATTERN_NAMES = {
    f"matching regex {ID_PATTERN!r}": "that is an id (lowercase letters, digits and '-')",
    f"matching regex {COMMAND_ID_PATTERN!r}": "that is a command id (letters, digits, '_.-')",
}


def _readable(reason: str) -> str:
    """msgspec's reason, with id regexes replaced by what they mean."""
    for pattern, meaning in _PATTERN_NAMES.items():
        reason = reason.replace(pattern, meaning)
    return reason


BIRTH = Codec[messages.Birth]("birth", messages.Birth, MAX_BIRTH_BYTES)
DEATH = Codec[messages.Death]("death", messages.Death, MAX_SMALL_BYTES)
TELEMETRY = Codec[messages.Telemetry]("telemetry", messages.Telemetry, MAX_TELEMETRY_BYTES)
ASSIGNMENT = Codec[messages.Assignment]("assignment", messages.Assignment, MAX_TELEMETRY_BYTES)
AGENT_COMMAND = Codec[commands.AgentCommand](
    "agent command", commands.AgentCommand, MAX_COMMAND_BYTES
)
CORE_STATUS = Codec[messages.CoreStatus]("core status", messages.CoreStatus, MAX_SMALL_BYTES)
CORE_CLOCK = Codec[messages.CoreClock]("core clock", messages.CoreClock, MAX_SMALL_BYTES)
EVENTS = Codec[messages.Events]("events", messages.Events, MAX_STATE_BYTES)
SUMMARY = Codec[messages.Summary]("summary", messages.Summary, MAX_STATE_BYTES)
RACK_STATES = Codec[messages.RackStates]("rack states", messages.RackStates, MAX_STATE_BYTES)
POOL_STATES = Codec[messages.PoolStates]("pool states", messages.PoolStates, MAX_STATE_BYTES)
FABRIC_STATE = Codec[messages.FabricState]("fabric state", messages.FabricState, MAX_STATE_BYTES)
COMMAND = Codec[commands.OperatorCommand]("command", commands.OperatorCommand, MAX_COMMAND_BYTES)
REPLY = Codec[commands.Reply]("reply", commands.Reply, MAX_STATE_BYTES)
ADDRESSED = Codec[commands.Addressed]("command address", commands.Addressed, MAX_COMMAND_BYTES)
"""Reads the id and reply topic of a command that COMMAND refuses."""

CODECS: dict[TopicKind, Codec[Any]] = {
    TopicKind.BIRTH: BIRTH,
    TopicKind.DEATH: DEATH,
    TopicKind.TELEMETRY: TELEMETRY,
    TopicKind.ASSIGN: ASSIGNMENT,
    TopicKind.AGENTCMD: AGENT_COMMAND,
    TopicKind.STATUS: CORE_STATUS,
    TopicKind.CLOCK: CORE_CLOCK,
    TopicKind.EVENTS: EVENTS,
    TopicKind.SUMMARY: SUMMARY,
    TopicKind.RACKS: RACK_STATES,
    TopicKind.POOLS: POOL_STATES,
    TopicKind.FABRIC: FABRIC_STATE,
    TopicKind.CMD: COMMAND,
    TopicKind.REPLY: REPLY,
}
"""The codec of every topic kind."""


def read_answer(answer: type[queries.AnswerT], reply: commands.Reply) -> queries.AnswerT:
    """The answer an ok reply carries to a query answered by `answer`, checked as a decoder
    checks a message; MessageError if it is not one."""
    try:
        return msgspec.convert(reply.result, answer)
    except msgspec.ValidationError as error:
        raise MessageError(f"{queries.asked(answer)} answer", _readable(str(error))) from None


def decode_message(topic: str, payload: bytes | bytearray | memoryview) -> tuple[Topic, Any]:
    """Parse a topic and decode its payload with that topic's codec.

    Raises MessageError for a payload, ValueError for a topic that is not aidc's.
    """
    parsed = parse_topic(topic)
    return parsed, CODECS[parsed.kind].decode(payload)


def arrays(
    message: messages.Telemetry | messages.Assignment | messages.RackStates,
    block: str,
    nodes: int | None = None,
) -> Record | None:
    """One column block of a message checked and viewed as a numpy record, or None if absent;
    its `node` column must index fewer than `nodes` (by default, the message's own list)."""
    columns: Columns | None = getattr(message, block)
    if columns is None:
        return None
    if nodes is None:
        own = message.racks if isinstance(message, messages.RackStates) else message.nodes
        nodes = len(own)
    return layout(type(columns)).unpack(columns, f"{type(message).__name__.lower()}.{block}", nodes)
