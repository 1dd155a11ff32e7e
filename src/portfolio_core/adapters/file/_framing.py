"""The record framing the file adapters' logs share (the event log and the config log).

A log is a magic header, then records::

    u32 little-endian payload length | u32 CRC-32 of the payload | payload

`RecordFormat` knows how to find, verify and decode one record in a log's bytes, how to
find the next intact record after a damaged one, and whether damaged bytes at the end of a
log are the trace of an interrupted write (a *torn tail*) rather than damage; each log
supplies only its payload decoder and the bytes every payload starts with. The bytes may
be a ``bytes`` object or an ``mmap`` of the file (so that a large log need not be read into
memory to diagnose it).
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Generic, TypeVar

HEADER = struct.Struct("<II")
DECODE_ERRORS = (ValueError, KeyError, TypeError, IndexError)

T = TypeVar("T")
LogBytes = bytes | mmap.mmap


def close_log(fd: int | None, fsync: str) -> None:
    """Close a log's descriptor (None: already closed), flushing it to disk first unless the
    log's ``fsync`` policy is ``never``; the descriptor is closed even when the flush fails."""
    if fd is None:
        return
    try:
        if fsync != "never":
            os.fsync(fd)
    finally:
        os.close(fd)


def frame(payload: bytes) -> bytes:
    """One record: ``payload`` behind its length and CRC-32."""
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class RecordFormat(Generic[T]):
    """The records of one kind of log.

    Args:
        payload_start: the bytes every payload starts with (a cheap filter when looking for
            the next intact record after a damaged one).
        decode: turns a verified payload into a record; raises one of ``DECODE_ERRORS``
            when it cannot.
    """

    def __init__(self, payload_start: bytes, decode: Callable[[bytes], T]) -> None:
        self.payload_start = payload_start
        self.decode = decode

    def record_at(self, data: LogBytes, offset: int) -> tuple[T, int] | None:
        """``(record, end)`` of the whole, checksummed, decodable record at ``offset``."""
        if offset < 0 or offset + HEADER.size > len(data):
            return None
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if length == 0 or start + length > len(data):
            return None
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            return None
        try:
            return self.decode(payload), start + length
        except DECODE_ERRORS:
            return None

    def next_record(self, data: LogBytes, after: int) -> int | None:
        """Offset of the first intact record starting after ``after``, if any."""
        probe = max(after + HEADER.size, HEADER.size)
        while True:
            found = data.find(self.payload_start, probe)
            if found < 0:
                return None
            offset = found - HEADER.size
            if offset > after and self.record_at(data, offset) is not None:
                return offset
            probe = found + 1

    def is_torn_tail(self, data: LogBytes, offset: int) -> bool:
        """Whether the bytes from ``offset`` (where the first bad record starts) are the trace
        of an interrupted write, which was never acknowledged: no intact record follows, and
        the tail is shorter than a header, or a header announcing more bytes than the file has
        (unless those bytes are the whole record with a damaged length field), or all zeros
        (space the file system allocated but never wrote)."""
        if self.next_record(data, offset) is not None:
            return False
        end = len(data)
        if offset + HEADER.size > end:
            return True
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if start + length > end:
            return bool(zlib.crc32(data[start:end]) != crc)
        return not data[offset:end].strip(b"\x00")


def scan_frames(f: BinaryIO, offset: int, end: int) -> Iterator[tuple[int, bytes, bytes]]:
    """``(offset, header, payload)`` of each record from ``offset`` of the open log ``f``
    (``end`` bytes long) whose length and checksum hold, reading sequentially (memory bounded
    by one record); stops at ``end`` or before the first record that does not hold."""
    f.seek(offset)
    while True:
        header = f.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        length, crc = HEADER.unpack(header)
        if length == 0 or offset + HEADER.size + length > end:
            return
        payload = f.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        yield offset, header, payload
        offset += HEADER.size + length
