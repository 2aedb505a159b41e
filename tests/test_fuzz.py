"""Fuzzing every decoder: whatever the payload, it decodes or raises MessageError, nothing else.

Each decoder gets random bytes, mutated sample encodings, well-formed msgpack and JSON of
random objects, samples with one field mistyped or an unknown one added, and column blocks
of random shape; a decoded message's column blocks must then view or raise MessageError too.
"""

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.codec import CODECS, arrays, encode, encode_json
from protocols.columns import Columns, layout
from protocols.errors import MessageError
from protocols.ids import COMMAND_ID_PATTERN, ID_PATTERN
from protocols.messages import Assignment, RackStates, Telemetry
from tests.samples import SAMPLES

KINDS = sorted(CODECS)
BLOCKS: dict[type, tuple[str, ...]] = {
    Telemetry: ("gpu", "nic", "port", "lpu"),
    Assignment: ("gpu", "nic", "port", "lpu"),
    RackStates: ("columns",),
}
"""The column blocks of every message type that has any."""
ROWS_FIELD: dict[type, str] = {Telemetry: "nodes", Assignment: "nodes", RackStates: "racks"}
"""The list a block's `node` column indexes into."""

FUZZ = settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

Path = tuple[int | str, ...]
Payload = tuple[str, bytes]
"""A payload and the name of the strategy that made it (reported as a hypothesis event)."""


def _tree(message: Any) -> Any:
    """A message as builtins, bytes kept as bytes (msgpack bin, base64 in JSON)."""
    return msgspec.to_builtins(message, builtin_types=(bytes,))


def _paths(tree: Any, path: Path = ()) -> list[Path]:
    """Every position in a builtin tree: the root, each dict value and each list item."""
    found = [path]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*path, key))
    elif isinstance(tree, list):
        for position, value in enumerate(tree):
            found += _paths(value, (*path, position))
    return found


def _at(tree: Any, path: Path) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def _strings(tree: Any) -> set[str]:
    """Every dict key and string value of a builtin tree: field names, tags, enum values."""
    if isinstance(tree, dict):
        return {str(k) for k in tree} | {s for v in tree.values() for s in _strings(v)}
    if isinstance(tree, list):
        return {s for v in tree for s in _strings(v)}
    return {tree} if isinstance(tree, str) else set()


def _objects(vocabulary: list[str], msgpack: bool) -> st.SearchStrategy[Any]:
    """Random builtin objects; strings often the messages' own field names and values."""
    text = st.sampled_from(vocabulary) | st.text(max_size=16)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | text
        | st.binary(max_size=48)
    )
    keys: st.SearchStrategy[Any] = text
    if msgpack:
        ext = st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=16))
        scalars |= ext
        keys |= st.integers(-(2**63), 2**64 - 1)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=6),
        max_leaves=16,
    )


def _random_bytes() -> st.SearchStrategy[Payload]:
    return st.one_of(
        st.binary(max_size=64).map(lambda b: ("bytes", b)),
        st.binary(min_size=64, max_size=4096).map(lambda b: ("bytes", b)),
        st.tuples(st.sampled_from([b"{", b"[", b" \n{", b"\x80", b"\x90", b"\xde"]), st.binary())
        .map(lambda t: ("bytes", t[0] + t[1])),
    )


@st.composite
def _mutated(draw: st.DrawFn, payloads: list[bytes]) -> Payload:
    """A valid encoding truncated, or with bytes flipped, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(payloads)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "truncate":
            del data[at:]
        elif operation == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return "mutated", bytes(data)


@st.composite
def _edited(
    draw: st.DrawFn, samples: list[Any], values: st.SearchStrategy[Any]
) -> tuple[str, Any]:
    """A sample as builtins with one value retyped or replaced, or a key or item added or cut."""
    sample = draw(st.sampled_from(samples))
    tree = _tree(sample)
    path = draw(st.sampled_from(_paths(tree)))
    target = _at(tree, path)
    operation = draw(st.sampled_from(["retype", "replace", "add", "remove"]))
    if operation in ("retype", "replace"):
        if operation == "retype":
            new = draw(values.filter(lambda v: type(v) is not type(target)))
        else:
            new = draw(values)
        if not path:
            return operation, new
        _at(tree, path[:-1])[path[-1]] = new
    elif operation == "add" and isinstance(target, dict):
        target[draw(st.text(min_size=1, max_size=12))] = draw(values)
    elif operation == "add" and isinstance(target, list):
        target.insert(draw(st.integers(0, len(target))), draw(values))
    elif operation == "remove" and path:
        del _at(tree, path[:-1])[path[-1]]
    return operation, tree


def _block_types(message_type: Any) -> dict[str, type[Columns]]:
    """The column block type of each block field of a message type."""
    found: dict[str, type[Columns]] = {}
    for field in msgspec.inspect.type_info(message_type).fields:
        members = getattr(field.type, "types", (field.type,))
        for member in members:
            cls = getattr(member, "cls", None)
            if isinstance(cls, type) and issubclass(cls, Columns):
                found[field.name] = cls
    return found


@st.composite
def _reshaped(draw: st.DrawFn, samples: list[Any]) -> Payload:
    """A sample with one column block of random rows, column lengths and node indices."""
    sample = draw(st.sampled_from(samples))
    kind = type(sample)
    name, block = draw(st.sampled_from(sorted(_block_types(kind).items())))
    spec = layout(block)
    rows = draw(st.integers(0, 8))
    listed: list[str] = getattr(sample, ROWS_FIELD[kind])
    keep = draw(st.integers(0, len(listed)))
    columns = []
    for column, size in zip(spec.names, spec.itemsizes, strict=True):
        length = rows * size + draw(st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1, -size, size]))
        length = max(length, 0)
        if column == "node" and length % size == 0:
            nodes = draw(st.lists(st.integers(0, keep + 1), min_size=length // 2, max_size=length // 2))
            columns.append(b"".join(n.to_bytes(2, "little") for n in nodes))
        else:
            columns.append(draw(st.binary(min_size=length, max_size=length)))
    message = msgspec.structs.replace(
        sample, **{name: block(*columns), ROWS_FIELD[kind]: listed[:keep]}
    )
    encoder = draw(st.sampled_from([encode, encode_json]))
    return "reshaped", encoder(message)


def _payloads(kind: str) -> st.SearchStrategy[Payload]:
    """Every strategy for one decoder, drawn from about evenly."""
    samples = SAMPLES[kind]
    valid = [encoder(m) for m in samples for encoder in (encode, encode_json)]
    vocabulary = sorted({s for m in samples for s in _strings(_tree(m))})
    as_msgpack = _objects(vocabulary, msgpack=True)
    as_json = _objects(vocabulary, msgpack=False)
    strategies = [
        _random_bytes(),
        _mutated(valid),
        as_msgpack.map(lambda o: ("msgpack objects", encode(o))),
        as_json.map(lambda o: ("json objects", encode_json(o))),
        _edited(samples, as_msgpack).map(lambda t: (f"{t[0]} msgpack", encode(t[1]))),
        _edited(samples, as_json).map(lambda t: (f"{t[0]} json", encode_json(t[1]))),
    ]
    if any(type(m) in BLOCKS for m in samples):
        strategies.append(_reshaped(samples))
    return st.one_of(strategies)


PAYLOADS = {kind: _payloads(kind) for kind in KINDS}


def _decode_and_view(kind: str, payload: bytes | bytearray | memoryview) -> str:
    """Decode and view every column block; return what happened, let any other error out."""
    try:
        message = CODECS[kind].decode(payload)
    except MessageError as error:
        assert error.kind == CODECS[kind].kind
        return "rejected"
    for block in BLOCKS.get(type(message), ()):
        try:
            arrays(message, block)
        except MessageError:
            return "decoded, block rejected"
    return "decoded"


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_decoder_raises_only_message_error(kind: str, data: st.DataObject) -> None:
    strategy, payload = data.draw(PAYLOADS[kind], label="payload")
    buffer: Callable[[bytes], Any] = data.draw(st.sampled_from([bytes, bytearray, memoryview]))
    outcome = _decode_and_view(kind, buffer(payload))
    event(f"{strategy}: {outcome}")


ID_PATTERNS = {ID_PATTERN: st.from_regex(ID_PATTERN, fullmatch=True)}
ID_PATTERNS[COMMAND_ID_PATTERN] = st.from_regex(COMMAND_ID_PATTERN, fullmatch=True)


def _matches(value: Any, info: Any) -> bool:
    """Whether a value is of the (unwrapped) msgspec type `info`, for picking a union member."""
    cls = getattr(info, "cls", None)
    if cls is not None:
        return isinstance(value, cls)
    wanted = {
        msgspec.inspect.StrType: str,
        msgspec.inspect.ListType: list,
        msgspec.inspect.DictType: dict,
    }.get(type(info))
    return wanted is not None and isinstance(value, wanted)


def _with_ids(value: Any, info: Any, new_id: Callable[[str], str]) -> Any:
    """`value` with every id and command id in it replaced by `new_id(pattern)`."""
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        members = [m.type if isinstance(m, msgspec.inspect.Metadata) else m for m in info.types]
        info = next((m for m in members if _matches(value, m)), None)
    if isinstance(info, msgspec.inspect.StrType):
        return new_id(info.pattern) if info.pattern in ID_PATTERNS else value
    if isinstance(info, msgspec.inspect.StructType):
        changes = {f.name: _with_ids(getattr(value, f.name), f.type, new_id) for f in info.fields}
        return msgspec.structs.replace(value, **changes)
    if isinstance(info, msgspec.inspect.ListType):
        return [_with_ids(item, info.item_type, new_id) for item in value]
    if isinstance(info, msgspec.inspect.DictType):
        return {
            _with_ids(k, info.key_type, new_id): _with_ids(v, info.value_type, new_id)
            for k, v in value.items()
        }
    return value


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=50, deadline=None, database=None)
@given(data=st.data())
def test_samples_with_any_valid_ids_round_trip(kind: str, data: st.DataObject) -> None:
    used: set[str] = set()

    def new_id(pattern: str) -> str:
        value = data.draw(ID_PATTERNS[pattern].filter(lambda s: s not in used))
        used.add(value)
        return value

    info = msgspec.inspect.type_info(CODECS[kind].message_type)
    for sample in SAMPLES[kind]:
        message = _with_ids(sample, info, new_id)
        for encoder in (encode, encode_json):
            decoded = CODECS[kind].decode(encoder(message))
            assert decoded == message
            assert type(decoded) is type(message)
