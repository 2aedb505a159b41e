"""Fuzzing every decoder: whatever the payload, it decodes or raises MessageError, nothing else.

Each decoder gets random bytes, mutated sample encodings, well-formed msgpack and JSON of
random objects, samples with one value retyped or replaced or a key added or removed, and
column blocks of random shape; a decoded message's column blocks must then view or raise
MessageError too. Hypothesis picks the strategy, the sample and the sizes; most mutations and
objects come from a `random.Random` it seeds (one draw, shown in a failing example), which
keeps 10,000 examples per decoder fast.
"""

import math
import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.codec import CODECS, NOT_UTF8, arrays, encode, encode_json
from protocols.columns import MAX_ROWS, Columns, RackColumns, layout
from protocols.errors import MessageError
from protocols.ids import COMMAND_ID_PATTERN, ID_PATTERN
from protocols.messages import Assignment, RackStates, Telemetry
from protocols.topics import TopicKind
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


INTS = [0, 1, -1, 127, 128, 255, 256, -129, 65535, 65536, 2**31, 2**32, 2**53 + 1, 2**63 - 1]
INTS += [2**63, 2**64 - 1, -(2**31), -(2**63)]
FLOATS = [0.0, -0.0, 0.5, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan]
CHARS = 'az09-_./ {}[]"\\:,\x00\x1f\x7f\u00e9\u2028\u20ac\U0001f600'
MAGIC = (
    b'\x00\x7f\x80\x8f\x90\x9f\xa0\xbf\xc0\xc1\xc2\xc4\xc7\xca\xcb\xd4\xdc\xdd\xde\xdf\xff{}[]",:'
)
"""Bytes that mean something to msgpack or JSON, for mutations."""


class Objects:
    """Random builtin objects whose strings are often the messages' own field names and values."""

    def __init__(self, words: list[str], msgpack: bool) -> None:
        self.words = words
        self.msgpack = msgpack

    def text(self, rng: random.Random) -> str:
        if rng.random() < 0.5:
            return rng.choice(self.words)
        return "".join(rng.choice(CHARS) for _ in range(rng.randrange(17)))

    def key(self, rng: random.Random) -> Any:
        if self.msgpack and rng.random() < 0.2:
            return rng.choice([rng.choice(INTS), rng.randbytes(3), None, 1.5, (1, "a")])
        return self.text(rng)

    def value(self, rng: random.Random, depth: int = 0) -> Any:
        roll = rng.randrange(10 if depth < 3 else 8)
        if roll == 0:
            return None
        if roll == 1:
            return rng.random() < 0.5
        if roll == 2:
            return rng.choice(INTS) if rng.random() < 0.5 else rng.randint(-(2**63), 2**64 - 1)
        if roll == 3:
            return rng.choice(FLOATS) if rng.random() < 0.3 else rng.uniform(-1e6, 1e6)
        if roll in (4, 5):
            return self.text(rng)
        if roll == 6:
            return rng.randbytes(rng.randrange(49))
        if roll == 7:
            if not self.msgpack:
                return self.text(rng)
            code = rng.choice([-1, rng.randint(-128, 127)])
            return msgspec.msgpack.Ext(code, rng.randbytes(rng.choice([0, 1, 4, 8, 12, 16])))
        items = rng.randrange(7)
        if roll == 8:
            return [self.value(rng, depth + 1) for _ in range(items)]
        return {self.key(rng): self.value(rng, depth + 1) for _ in range(items)}

    def other_type(self, rng: random.Random, old: Any) -> Any:
        """A random value of another type than `old` (bool and int count as different)."""
        for _ in range(100):
            new = self.value(rng)
            if type(new) is not type(old):
                return new
        return [old]


def _mutate(payload: bytes, rng: random.Random) -> bytes:
    """`payload` truncated, or with bytes flipped, set, inserted or deleted, one to four times."""
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        operation = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if operation == 0:
            del data[at:]
        elif operation == 1 and at < len(data):
            data[at] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randint(1, 255)
        elif operation == 2 and at < len(data):
            data[at] = rng.choice(MAGIC)
        elif operation == 3:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        else:
            del data[at : at + rng.randint(1, 16)]
    return bytes(data)


def _edit(sample: Any, paths: list[Path], objects: Objects, rng: random.Random) -> tuple[str, Any]:
    """A sample as builtins with one value retyped or replaced, or a key or item added or cut."""
    tree = _tree(sample)
    path = rng.choice(paths)
    target = _at(tree, path)
    operation = rng.choice(["retype", "replace", "add", "remove"])
    if operation in ("retype", "replace"):
        new = objects.other_type(rng, target) if operation == "retype" else objects.value(rng)
        if not path:
            return operation, new
        _at(tree, path[:-1])[path[-1]] = new
    elif operation == "add" and isinstance(target, dict):
        target[objects.text(rng) + "_x"] = objects.value(rng)
    elif operation == "add" and isinstance(target, list):
        target.insert(rng.randrange(len(target) + 1), objects.value(rng))
    elif operation == "remove" and path:
        del _at(tree, path[:-1])[path[-1]]
    return operation, tree


def _block_types(message_type: Any) -> dict[str, type[Columns]]:
    """The column block type of each block field of a message type."""
    found: dict[str, type[Columns]] = {}
    info: Any = msgspec.inspect.type_info(message_type)
    for field in info.fields:
        for member in getattr(field.type, "types", (field.type,)):
            cls = getattr(member, "cls", None)
            if isinstance(cls, type) and issubclass(cls, Columns):
                found[field.name] = cls
    return found


def _reshape(sample: Any, name: str, rows: int, rng: random.Random) -> bytes:
    """`sample` with a block of about `rows` rows, its data maybe short, long or in whole extra
    rows, and node indices mostly within a random prefix of the node (or rack) list."""
    block = _block_types(type(sample))[name]
    spec = layout(block)
    listed: list[str] = getattr(sample, ROWS_FIELD[type(sample)])
    keep = rng.randint(0, len(listed))
    top = keep if keep and rng.random() < 0.7 else keep + 2
    nodes = b"".join(rng.randrange(top).to_bytes(2, "little") for _ in range(rows))
    length = rows * spec.row_bytes
    if rng.random() < 0.3:
        length += rng.choice([-spec.row_bytes, -2, -1, 1, rows, rows * rng.randint(1, 3)])
    data = (nodes + rng.randbytes(max(0, length - len(nodes))))[: max(0, length)]
    if rng.random() < 0.1:
        rows = rng.choice([rows - 1, rows + 1, -1, MAX_ROWS, MAX_ROWS + 1, 2**64 - 1])
    message = msgspec.structs.replace(
        sample, **{name: block(rows, data), ROWS_FIELD[type(sample)]: listed[:keep]}
    )
    return encode(message) if rng.random() < 0.5 else encode_json(message)


SEEDED = st.randoms(use_true_random=True)


def _payloads(kind: str) -> st.SearchStrategy[Payload]:
    """Every strategy for one decoder, drawn from about evenly."""
    samples = SAMPLES[kind]
    valid = [encoder(m) for m in samples for encoder in (encode, encode_json)]
    words = sorted({s for m in samples for s in _strings(_tree(m))})
    as_msgpack = Objects(words, msgpack=True)
    as_json = Objects(words, msgpack=False)
    editable = [(m, _paths(_tree(m))) for m in samples]

    def edited(objects: Objects, encoder: Callable[[Any], bytes], name: str) -> Any:
        return st.builds(
            lambda e, rng: _edit(e[0], e[1], objects, rng), st.sampled_from(editable), SEEDED
        ).map(lambda edit: (f"{edit[0]} {name}", encoder(edit[1])))

    strategies = [
        st.binary(max_size=64).map(lambda b: ("bytes", b)),
        st.binary(min_size=64, max_size=4096).map(lambda b: ("bytes", b)),
        st.tuples(
            st.sampled_from([b"{", b"[", b" \n{", b"\x80", b"\x90", b"\xde"]), st.binary()
        ).map(lambda t: ("bytes", t[0] + t[1])),
        st.builds(_mutate, st.sampled_from(valid), SEEDED).map(lambda b: ("mutated", b)),
        SEEDED.map(lambda rng: ("msgpack objects", encode(as_msgpack.value(rng)))),
        SEEDED.map(lambda rng: ("json objects", encode_json(as_json.value(rng)))),
        edited(as_msgpack, encode, "msgpack"),
        edited(as_json, encode_json, "json"),
    ]
    blocks = [(m, name) for m in samples for name in sorted(_block_types(type(m)))]
    if blocks:
        reshaped = st.builds(
            lambda b, rows, rng: _reshape(b[0], b[1], rows, rng),
            st.sampled_from(blocks),
            st.integers(0, 8),
            SEEDED,
        )
        strategies.append(reshaped.map(lambda b: ("reshaped", b)))
    return st.one_of(strategies)


PAYLOADS = {kind: _payloads(kind) for kind in KINDS}


def _decode_and_view(kind: TopicKind, payload: bytes | bytearray | memoryview) -> str:
    """Decode and view every column block; return what happened, let any other error out."""
    try:
        message = CODECS[kind].decode(payload)
    except MessageError as error:
        if error.kind != CODECS[kind].kind:
            raise AssertionError(
                f"{kind} decoder raised an error of kind {error.kind!r}"
            ) from error
        return "rejected"
    for block in BLOCKS.get(type(message), ()):
        try:
            arrays(message, block)
        except MessageError:
            return "decoded, block rejected"
    return "decoded"


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_decoder_raises_only_message_error(kind: TopicKind, data: st.DataObject) -> None:
    strategy, payload = data.draw(PAYLOADS[kind], label="payload")
    buffer: Callable[[bytes], Any] = (bytes, bytearray, memoryview)[len(payload) % 3]
    event(f"{strategy}: {_decode_and_view(kind, buffer(payload))}")


def test_json_with_a_string_that_is_not_utf8_says_so_in_our_words() -> None:
    with pytest.raises(MessageError) as raised:
        CODECS[TopicKind.DEATH].decode(b'{"agent":"a\xff","session":1}')
    assert raised.value.reason == NOT_UTF8


def test_msgpack_with_a_string_that_is_not_utf8_is_a_message_error() -> None:
    with pytest.raises(MessageError) as raised:
        CODECS[TopicKind.DEATH].decode(b"\x82\xa5agent\xa2a\xff\xa7session\x01")
    assert raised.value.kind == "death"


def test_a_block_of_no_rows_views_as_empty_columns() -> None:
    spec = layout(RackColumns)
    block = spec.pack({name: [] for name in spec.names})
    assert isinstance(block, RackColumns)
    message = RackStates(1.0, [], block)
    for encoder in (encode, encode_json):
        record = arrays(CODECS[TopicKind.RACKS].decode(encoder(message)), "columns")
        assert record is not None
        assert all(record[name].size == 0 for name in spec.names)


ID_PATTERNS = {p: st.from_regex(p, fullmatch=True) for p in (ID_PATTERN, COMMAND_ID_PATTERN)}
"""Valid ids and command ids, by the pattern msgspec checks them against."""


def _matches(value: Any, info: Any) -> bool:
    """Whether a value is of the (unwrapped) msgspec type `info`, for picking a union member."""
    cls = getattr(info, "cls", None)
    if cls is not None:
        return isinstance(value, cls)
    types: dict[type, type] = {
        msgspec.inspect.StrType: str,
        msgspec.inspect.ListType: list,
        msgspec.inspect.DictType: dict,
    }
    wanted = types.get(type(info))
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
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_samples_with_any_valid_ids_round_trip(kind: TopicKind, data: st.DataObject) -> None:
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
