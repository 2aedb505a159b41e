"""The recording file of `aidc record` and `aidc replay`: a header, then one self-checking frame
per message, so a file cut short anywhere (a crash, `kill -9`) reads up to its last whole one.

    file   := MAGIC VERSION frame(RecordingHeader) frame(RecordedMessage)*
    frame  := u32 length, u32 CRC-32 of the body (both little-endian), body (msgpack)

Only whole frames are ever read, so a writer need not flush at message boundaries.
"""

import struct
import zlib
from collections.abc import Iterator
from typing import Annotated, BinaryIO

import msgspec
from msgspec import Meta, Struct

from protocols.errors import AidcError
from protocols.ids import EntityId
from protocols.messages import Text

MAGIC = b"AIDCREC"
VERSION = 1
_FRAME = struct.Struct("<II")
MAX_FRAME_BYTES = 256 * 1024 * 1024 + 65536
"""MQTT's largest message and a topic: a longer frame is damage, not a message."""


class RecordingHeader(Struct, frozen=True, gc=False):
    """What a recording is of: the site, and when and from where it was recorded."""

    site: EntityId
    started: float
    """Unix seconds (wall clock) when recording began."""
    broker: Text = ""
    software: Text = ""


class RecordedMessage(Struct, frozen=True, gc=False, array_like=True):
    """One message as the recorder received it."""

    at: Annotated[float, Meta(ge=0)]
    """Seconds since the recording began."""
    topic: str
    payload: bytes
    qos: Annotated[int, Meta(ge=0, le=2)] = 0
    retain: bool = False
    """Whether the broker delivered it as a retained message."""


class RecordingError(AidcError, ValueError):
    """A file that is not a readable recording; `str()` says why in one sentence."""


class RecordingDamaged(RecordingError):
    """A recording readable only up to byte `offset`, where message `number` (counted from 1)
    is cut short or corrupt; the messages before it were read."""

    def __init__(self, offset: int, number: int, reason: str) -> None:
        super().__init__(f"message {number:,} at byte {offset:,} {reason}")
        self.offset = offset
        self.number = number
        self.reason = reason


_encoder = msgspec.msgpack.Encoder()
_read_header = msgspec.msgpack.Decoder(RecordingHeader)
_read_message = msgspec.msgpack.Decoder(RecordedMessage)


def _frame(value: Struct) -> bytes:
    body = _encoder.encode(value)
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


class RecordingWriter:
    """Appends messages to a recording; `bytes` counts what it wrote, the header included."""

    def __init__(self, file: BinaryIO, header: RecordingHeader) -> None:
        self.file = file
        self.header = header
        self.messages = 0
        start = MAGIC + bytes([VERSION]) + _frame(header)
        file.write(start)
        self.bytes = len(start)

    def write(self, message: RecordedMessage) -> None:
        """Append one message."""
        frame = _frame(message)
        self.file.write(frame)
        self.bytes += len(frame)
        self.messages += 1


class RecordingReader:
    """Reads a recording's header at once and its messages as they are iterated.

    Iteration raises RecordingDamaged where the file stops being readable, after yielding
    every message before it; `messages` counts those and `offset` is where they end.
    """

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        start = file.read(len(MAGIC) + 1)
        if len(start) <= len(MAGIC) or not start.startswith(MAGIC):
            raise RecordingError(f"not an aidc recording (it does not begin with {MAGIC.decode()})")
        if start[-1] != VERSION:
            raise RecordingError(
                f"an aidc recording of version {start[-1]}; this aidc reads version {VERSION}"
            )
        self.offset = len(start)
        self.messages = 0
        try:
            body = self._body(0)
            if body is None:
                raise RecordingDamaged(self.offset, 0, "is missing")
            self.header = _read_header.decode(body)
        except RecordingDamaged as damage:
            raise RecordingError(f"the header {damage.reason}") from None
        except msgspec.DecodeError as error:
            raise RecordingError(f"the header does not decode: {error}") from None

    def _body(self, number: int) -> bytes | None:
        """The next frame's body, None at the end of the file; RecordingDamaged if the frame
        (of message `number`) is cut short or corrupt."""
        head = self.file.read(_FRAME.size)
        if not head:
            return None
        if len(head) < _FRAME.size:
            raise RecordingDamaged(
                self.offset, number, f"is cut short: the file ends {len(head)} bytes into it"
            )
        length, checksum = _FRAME.unpack(head)
        if length > MAX_FRAME_BYTES:
            raise RecordingDamaged(self.offset, number, f"is corrupt: it claims {length:,} bytes")
        body = self.file.read(length)
        if len(body) < length:
            raise RecordingDamaged(
                self.offset,
                number,
                f"is cut short: {len(body):,} of its {length:,} bytes are there",
            )
        if zlib.crc32(body) != checksum:
            raise RecordingDamaged(self.offset, number, "is corrupt: its checksum does not match")
        self.offset += _FRAME.size + length
        return body

    def __iter__(self) -> Iterator[RecordedMessage]:
        while (body := self._body(self.messages + 1)) is not None:
            try:
                message = _read_message.decode(body)
            except msgspec.DecodeError as error:
                start = self.offset - _FRAME.size - len(body)
                self.offset = start
                raise RecordingDamaged(
                    start, self.messages + 1, f"does not decode: {error}"
                ) from None
            self.messages += 1
            yield message
