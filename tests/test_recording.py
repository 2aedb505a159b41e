"""The recording file: it round-trips, and a file cut short or corrupt anywhere reads up to the
damage and says where it is."""

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.recording import (
    MAGIC,
    RecordedMessage,
    RecordingDamaged,
    RecordingError,
    RecordingHeader,
    RecordingReader,
    RecordingWriter,
)

HEADER = RecordingHeader("dc1", 1_790_000_000.5, "mqtt://127.0.0.1:1883", "aidc test")
MESSAGES = [
    RecordedMessage(0.0, "aidc/v1/dc1/core/status", b"\x82\xa6online\xc3", qos=1, retain=True),
    RecordedMessage(0.25, "aidc/v1/dc1/telemetry/r001/r001-n01", bytes(range(256)) * 4),
    RecordedMessage(1.5, "aidc/v1/dc1/ctl/cmd", b'{"op":"cordon","id":"c-1","nodes":["n"]}', 1),
]

messages = st.builds(
    RecordedMessage,
    at=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    topic=st.text(max_size=80),
    payload=st.binary(max_size=2000),
    qos=st.integers(0, 2),
    retain=st.booleans(),
)


def written(header: RecordingHeader, records: list[RecordedMessage]) -> bytes:
    out = io.BytesIO()
    writer = RecordingWriter(out, header)
    for record in records:
        writer.write(record)
    assert writer.messages == len(records)
    assert writer.bytes == len(out.getvalue())
    return out.getvalue()


def read(data: bytes) -> tuple[RecordingReader, list[RecordedMessage], RecordingDamaged | None]:
    reader = RecordingReader(io.BytesIO(data))
    out: list[RecordedMessage] = []
    try:
        out.extend(reader)
    except RecordingDamaged as damage:
        return reader, out, damage
    return reader, out, None


@given(
    st.builds(
        RecordingHeader,
        site=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
        started=st.floats(min_value=0, max_value=4e9),
        broker=st.text(max_size=50),
    ),
    st.lists(messages, max_size=20),
)
def test_a_recording_reads_back_as_written(
    header: RecordingHeader, records: list[RecordedMessage]
) -> None:
    reader, back, damage = read(written(header, records))
    assert damage is None
    assert reader.header == header
    assert back == records
    assert reader.messages == len(records)


def test_a_file_cut_anywhere_reads_up_to_the_cut_and_says_where() -> None:
    data = written(HEADER, MESSAGES)
    ends = [len(written(HEADER, MESSAGES[:n])) for n in range(len(MESSAGES) + 1)]
    for cut in range(len(MAGIC) + 1, len(data)):
        if cut < ends[0]:
            with pytest.raises(RecordingError, match=r"^the header is (cut short|missing)"):
                RecordingReader(io.BytesIO(data[:cut]))
            continue
        reader, back, damage = read(data[:cut])
        whole = sum(end <= cut for end in ends[1:])
        assert back == MESSAGES[:whole]
        if cut in ends:
            assert damage is None
            continue
        assert damage is not None
        assert damage.number == whole + 1
        assert damage.offset == ends[whole] == reader.offset
        assert str(damage).startswith(f"message {whole + 1} at byte {ends[whole]:,} is cut short")


def test_a_corrupt_message_stops_the_reading_there() -> None:
    data = bytearray(written(HEADER, MESSAGES))
    second = len(written(HEADER, MESSAGES[:1]))
    data[second + 20] ^= 0xFF
    _, back, damage = read(bytes(data))
    assert back == MESSAGES[:1]
    assert damage is not None
    assert (damage.number, damage.offset) == (2, second)
    assert damage.reason == "is corrupt: its checksum does not match"


def test_a_frame_claiming_an_impossible_length_is_damage() -> None:
    data = written(HEADER, []) + struct.pack("<II", 0xFFFFFFF0, 0) + b"xx"
    _, back, damage = read(data)
    assert back == []
    assert damage is not None
    assert damage.reason == "is corrupt: it claims 4,294,967,280 bytes"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "not an aidc recording (it does not begin with AIDCREC)"),
        (b'{"topic": "aidc/v1/dc1/core/status"}\n', "not an aidc recording"),
        (MAGIC, "not an aidc recording"),
        (MAGIC + b"\x02" + bytes(40), "an aidc recording of version 2; this aidc reads version 1"),
        (MAGIC + b"\x01", "the header is missing"),
        (
            written(HEADER, [])[:-1] + b"\x00",
            "the header is corrupt: its checksum does not match",
        ),
    ],
)
def test_a_file_that_is_no_recording_is_one_sentence(data: bytes, error: str) -> None:
    with pytest.raises(RecordingError) as caught:
        RecordingReader(io.BytesIO(data))
    assert str(caught.value).startswith(error)
