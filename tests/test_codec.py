"""Round trips of every message in msgpack and JSON, limits, evolution, and readable errors."""

from typing import Any

import msgspec
import numpy as np
import pytest

from protocols import codec
from protocols.codec import CODECS, arrays, decode_message, encode, encode_json
from protocols.columns import Columns, GpuColumns, NicColumns, gauge, layout
from protocols.errors import MessageError
from protocols.messages import Birth, Telemetry
from protocols.topics import TopicKind
from tests.samples import SAMPLES, TELEMETRY, sample_topic

ALL = [(kind, message) for kind, messages in SAMPLES.items() for message in messages]


def test_every_topic_kind_has_samples() -> None:
    assert set(SAMPLES) == set(CODECS)


@pytest.mark.parametrize(("kind", "message"), ALL, ids=[f"{k}-{i}" for i, (k, _) in enumerate(ALL)])
@pytest.mark.parametrize("encoder", [encode, encode_json], ids=["msgpack", "json"])
def test_round_trip(kind: str, message: Any, encoder: Any) -> None:
    topic, decoded = decode_message(sample_topic(kind), encoder(message))
    assert topic.kind == kind
    assert decoded == message
    assert type(decoded) is type(message)


def test_columns_decode_to_the_arrays_that_were_packed() -> None:
    rng = np.random.default_rng(1)
    spec = layout(GpuColumns)
    values = {name: rng.integers(0, 3, 6) for name in spec.names}
    message = Telemetry("a1", 1, 1, 0.0, ["n1", "n2", "n3"], gpu=layout(GpuColumns).pack(values))
    record = arrays(codec.TELEMETRY.decode(encode(message)), "gpu")
    assert record is not None
    for name in spec.names:
        np.testing.assert_array_equal(record[name], values[name])
        assert record[name].dtype == np.dtype(spec.columns[name].dtype)


def test_absent_block_is_none() -> None:
    assert arrays(TELEMETRY, "lpu") is None


@pytest.mark.parametrize("cut", [1, 4, 156])
def test_block_shorter_than_its_rows_is_rejected(cut: int) -> None:
    gpu = TELEMETRY.gpu
    assert gpu is not None
    short = msgspec.structs.replace(gpu, data=gpu.data[:-cut])
    message = codec.TELEMETRY.decode(encode(msgspec.structs.replace(TELEMETRY, gpu=short)))
    with pytest.raises(MessageError, match=r"GpuColumns of 8 rows needs 1248 bytes"):
        arrays(message, "gpu")


def test_block_with_a_partial_extra_row_is_rejected() -> None:
    gpu = TELEMETRY.gpu
    assert gpu is not None
    longer = msgspec.structs.replace(gpu, data=gpu.data + b"\0" * 3)
    message = codec.TELEMETRY.decode(encode(msgspec.structs.replace(TELEMETRY, gpu=longer)))
    with pytest.raises(MessageError, match="or more, in whole rows"):
        arrays(message, "gpu")


def test_node_index_past_the_node_list_is_rejected() -> None:
    message = msgspec.structs.replace(TELEMETRY, nodes=TELEMETRY.nodes[:1])
    with pytest.raises(MessageError, match="node refers past the 1 node"):
        arrays(codec.TELEMETRY.decode(encode(message)), "gpu")


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_oversized_payload_is_rejected_before_decoding(kind: TopicKind) -> None:
    limit = CODECS[kind].max_bytes
    with pytest.raises(MessageError, match=f"over the {limit}-byte limit"):
        CODECS[kind].decode(b"\x90" * (limit + 1))


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_empty_payload_is_rejected(kind: TopicKind) -> None:
    with pytest.raises(MessageError, match="empty payload"):
        CODECS[kind].decode(b"")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"op":"nuke","id":"x"}', "'nuke'"),
        (b'{"op":"drain","id":"x","nodes":["r1-n1"],"grace":5}', "`grace`"),
        (b'{"op":"drain","id":"x","nodes":["R1"]}', "an id (lowercase letters, digits and '-')"),
        (b'{"op":"drain","id":"x","nodes":[]}', "`$.nodes`"),
        (b'{"op":"scale","id":"x","pool":"p","replicas":"3"}', "`$.replicas`"),
        (b'{"op":"scale","id":"x","pool":"p","replicas":-1}', "`$.replicas`"),
        (b'{"op":"route","id":"x","model":"m","weights":{"a":60}}', "sum to 100 (percent), not 60"),
        (
            b'{"op":"autoscale","id":"x","pool":"p","enabled":true,"min_replicas":5,'
            b'"max_replicas":2}',
            "min_replicas (5) is above max_replicas (2)",
        ),
        (b'{"op":"cordon","id":"a/b","nodes":["n"]}', "command id"),
        (b'{"op":"rebirth","id":"x"}', "'rebirth'"),
        (b'{"op":"cordon","nodes":["n"]}', "`id`"),
        (b'{"op":"cordon","id":"x","nodes":["n"]', ""),
        (
            b'{"op":"query","id":"q","what":"everything"}',
            "'everything'",
        ),
        (b'{"op":"query","id":"q","what":"nodes","sort":"temperature"}', "`$.sort`"),
    ],
    ids=lambda value: value[:24] if isinstance(value, str) else "",
)
def test_bad_commands_get_a_reason_naming_the_problem(payload: bytes, reason: str) -> None:
    """The reason names what the payload got wrong (the field, the value) or says it in aidc's
    words; msgspec's own wording around them is not ours to pin."""
    with pytest.raises(MessageError) as caught:
        codec.COMMAND.decode(payload)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("malformed command: ")


def test_deeply_nested_reply_result_is_rejected_not_a_recursion_error() -> None:
    payload = b'{"id":"a","ok":true,"result":{"a":' + b"[" * 200_000
    with pytest.raises(MessageError, match="nested too deeply"):
        codec.REPLY.decode(payload)


def test_json_with_leading_whitespace_is_json() -> None:
    assert codec.COMMAND.decode(b'\n  {"op":"cordon","id":"x","nodes":["n1"]}').id == "x"


class TelemetryV2(Telemetry, frozen=True, gc=False, array_like=True):
    """Telemetry as a later version might send it: one new field at the end."""

    inlet_temperature_c: float = 25.0


class GpuColumnsV2(GpuColumns):
    """GPU columns as a later version might send them: one new column after the others."""

    DCGM_FI_DEV_ENC_UTIL = gauge("<f4", "%", "Encoder utilization")


class BirthV2(Birth, frozen=True):
    rack_position: int = 0


def test_older_decoder_reads_a_newer_telemetry_message() -> None:
    old = arrays(TELEMETRY, "gpu")
    assert old is not None
    newer_spec = layout(GpuColumnsV2)
    newer_gpu = newer_spec.pack(
        {**{n: old[n] for n in old.dtype.names or ()}, "DCGM_FI_DEV_ENC_UTIL": 12.5}
    )
    first = (TELEMETRY.agent, TELEMETRY.session, TELEMETRY.seq, TELEMETRY.time, TELEMETRY.nodes)
    newer = TelemetryV2(*first, gpu=newer_gpu, nic=TELEMETRY.nic)
    decoded = codec.TELEMETRY.decode(encode(newer))
    assert decoded.nic == TELEMETRY.nic
    record = arrays(decoded, "gpu")
    assert record is not None
    assert record.dtype == old.dtype
    assert record.tobytes() == old.tobytes()
    assert newer_spec.unpack(newer_gpu, "t", 2)["DCGM_FI_DEV_ENC_UTIL"].tolist() == [12.5] * 8


def test_older_decoder_reads_a_newer_birth_and_newer_decoder_an_older_one() -> None:
    birth = SAMPLES["birth"][0]
    newer = BirthV2(**msgspec.structs.asdict(birth), rack_position=7)
    assert codec.BIRTH.decode(encode(newer)) == birth
    assert codec.BIRTH.decode(encode_json(newer)) == birth
    assert msgspec.msgpack.decode(encode(birth), type=BirthV2).rack_position == 0


def test_a_record_of_another_layout_is_not_packed() -> None:
    with pytest.raises(ValueError, match="not in NicColumns wire layout"):
        layout(NicColumns).pack_record(layout(GpuColumns).record(4))


def test_every_block_starts_with_node_and_an_index_and_declares_units() -> None:
    for block in Columns.__subclasses__():
        spec = layout(block)
        assert spec.names[0] == "node", block
        assert all(c.kind == "index" or c.unit for c in spec.columns.values()), block
        assert all(c.kind != "counter" or c.dtype == "<u8" for c in spec.columns.values()), block
